/**
 * The page server: the page, its assets and /config.json with correct content types.
 */
import { assertEquals, assertStringIncludes } from "@std/assert";
import { webSocketUrl } from "../../src/http/http_server.ts";
import { startTestServer } from "../support/server.ts";

Deno.test("the page server serves the page and its assets with their content types", async () => {
  await using server = await startTestServer();
  const cases: [string, string, string][] = [
    ["/", "text/html; charset=utf-8", "<html"],
    ["/client.js", "text/javascript; charset=utf-8", "config.json"],
    ["/style.css", "text/css; charset=utf-8", "{"],
  ];
  for (const [path, type, snippet] of cases) {
    const response = await fetch(server.httpUrl + path);
    assertEquals(response.status, 200, path);
    assertEquals(response.headers.get("content-type"), type, path);
    assertStringIncludes(await response.text(), snippet, path);
  }
});

Deno.test("/config.json gives the WebSocket URL on the host the page was fetched from", async () => {
  await using server = await startTestServer();
  const response = await fetch(server.httpUrl + "/config.json");
  assertEquals(response.headers.get("content-type"), "application/json; charset=utf-8");
  const config = await response.json();
  assertEquals(config.wsUrl, `ws://127.0.0.1:${server.wsAddr.port}/`);
  assertEquals(config.demo, false);
});

Deno.test("unknown paths get a JSON 404 and other methods a 405", async () => {
  await using server = await startTestServer();
  const missing = await fetch(server.httpUrl + "/missing");
  assertEquals(missing.status, 404);
  assertStringIncludes((await missing.json()).error, "/missing");
  const post = await fetch(server.httpUrl + "/", { method: "DELETE" });
  assertEquals(post.status, 405);
  await post.body?.cancel();
});

Deno.test("webSocketUrl keeps the browser's host name and brackets IPv6 addresses", () => {
  assertEquals(webSocketUrl("localhost:8080", "127.0.0.1", 9000), "ws://localhost:9000/");
  assertEquals(webSocketUrl("[::1]:8080", "127.0.0.1", 9000), "ws://[::1]:9000/");
  assertEquals(webSocketUrl(null, "::1", 9000), "ws://[::1]:9000/");
  assertEquals(webSocketUrl("bad host:1", "127.0.0.1", 9000), "ws://127.0.0.1:9000/");
});

Deno.test("--public-ws-url replaces the derived WebSocket URL in /config.json", async () => {
  await using server = await startTestServer(["--public-ws-url", "wss://push.example/ws/"]);
  const config = await (await fetch(server.httpUrl + "/config.json")).json();
  assertEquals(config.wsUrl, "wss://push.example/ws/");
});
