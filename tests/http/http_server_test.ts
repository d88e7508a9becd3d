/**
 * The page server: the page, its assets and /config.json with correct content types.
 */
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { requestHost, webSocketUrl } from "../../src/http/http_server.ts";
import { STATIC_FILES } from "../../src/http/static_files.ts";
import { Opcode } from "../../src/protocol/opcode.ts";
import { clientFrame, RawClient } from "../support/raw_client.ts";
import { startRedisServer } from "../support/redis_server.ts";
import { startTestServer } from "../support/server.ts";

/** Sends one raw HTTP/1.1 request with `host` (fetch cannot set Host) and reads the answer. */
async function requestWithHost(port: number, path: string, host: string) {
  await using client = await RawClient.connect(port);
  await client.write(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
  return await client.readResponse();
}

/** Polls `url` until it answers `status` (bounded): readiness is a state, not an event. */
async function waitForStatus(url: string, status: number): Promise<Response> {
  const deadline = performance.now() + 10_000;
  while (true) {
    const response = await fetch(url);
    if (response.status === status) return response;
    await response.body?.cancel();
    if (performance.now() > deadline) throw new Error(`${url} never answered ${status}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

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

Deno.test("DNS rebinding: an unknown Host gets a JSON 421 on every path, counted", async () => {
  await using server = await startTestServer();
  const port = server.httpAddr.port;
  for (const path of ["/", "/config.json", "/metrics", "/healthz", "/publish?channel=c"]) {
    const response = await requestWithHost(port, path, `rebind.attacker.example:${port}`);
    assertEquals(response.status, 421, path);
    assertEquals(response.headers.get("content-type"), "application/json; charset=utf-8");
    assertStringIncludes(JSON.parse(response.body).error, "rebind.attacker.example");
  }
  assertStringIncludes(server.metrics.render(), 'push_http_rejected_total{status="421"} 5');
  await server.waitForLog("http.rejected");
});

Deno.test("/config.json keeps deriving the WebSocket URL from an allowed Host", async () => {
  await using server = await startTestServer(["--public-hosts", "push.example"]);
  const port = server.httpAddr.port;
  const ws = server.wsAddr.port;
  for (
    const [host, name] of [["localhost", "localhost"], ["[::1]", "[::1]"], [
      "Push.Example",
      "push.example",
    ]]
  ) {
    const response = await requestWithHost(port, "/config.json", `${host}:${port}`);
    assertEquals(response.status, 200, host);
    assertEquals(JSON.parse(response.body).wsUrl, `ws://${name}:${ws}/`);
  }
});

Deno.test("/readyz answers 200 ready normally, and /healthz stays ok", async () => {
  await using server = await startTestServer();
  const ready = await fetch(server.httpUrl + "/readyz");
  assertEquals([ready.status, await ready.json()], [200, { status: "ready" }]);
  assertEquals(await (await fetch(server.httpUrl + "/healthz")).json(), { status: "ok" });
});

Deno.test("/readyz answers 503 draining during the shutdown's drain, while a client lingers", async () => {
  const server = await startTestServer();
  // A client that gets the close 1001 and does not answer it keeps the drain window open.
  const client = await RawClient.open(server.wsAddr.port, "/echo");
  const stopped = server.shutdown(30_000);
  const event = await client.next();
  assertEquals(event.type, "close");
  const response = await fetch(server.httpUrl + "/readyz");
  assertEquals(response.status, 503);
  assertEquals((await response.json()).status, "draining");
  const health = await fetch(server.httpUrl + "/healthz");
  assertEquals(health.status, 200, "liveness is unaffected");
  await health.body?.cancel();
  await client.write(clientFrame(Opcode.Close, new Uint8Array([0x03, 0xe9])));
  await stopped;
  await client[Symbol.asyncDispose]();
});

Deno.test("/readyz answers 503 while Redis is unreachable, 200 again once it is back", async () => {
  await using redis = await startRedisServer();
  await using server = await startTestServer(["--redis", redis.url]);
  await (await waitForStatus(server.httpUrl + "/readyz", 200)).body?.cancel();
  await redis.stop();
  const down = await waitForStatus(server.httpUrl + "/readyz", 503);
  const body = await down.json();
  assertEquals(body.status, "unready");
  assertStringIncludes(body.reason, "Redis");
  const health = await fetch(server.httpUrl + "/healthz");
  assertEquals(health.status, 200, "liveness stays 200");
  assertEquals((await health.json()).status, "degraded");
  await redis.restart();
  await (await waitForStatus(server.httpUrl + "/readyz", 200)).body?.cancel();
});

Deno.test("the README's proxy example forwards the page's files and nothing of the API", async () => {
  const readme = await Deno.readTextFile(new URL("../../README.md", import.meta.url));
  const m = /location ~ (\^\/\S+\$) \{/.exec(readme);
  assert(m, "the nginx example has a location regex for the page");
  const page = new RegExp(m[1]);
  for (const path of Object.keys(STATIC_FILES)) assert(page.test(path), `${path} is proxied`);
  for (const path of ["/publish", "/metrics", "/healthz", "/readyz", "/echo", "/x/client.js"]) {
    assert(!page.test(path), `${path} is not proxied`);
  }
});

Deno.test("requestHost: the Host header, else HTTP/2's authority; Deno's stand-in is no host", () => {
  const withHost = new Request("http://localhost:8080/", { headers: { host: "push.example" } });
  assertEquals(requestHost(withHost, 8080), "push.example");
  // HTTP/2 carries the host in :authority, which Deno puts in the URL; there is no Host header.
  assertEquals(
    requestHost(new Request("https://push.example:8443/config.json"), 8443),
    "push.example:8443",
  );
  // Not skipped as the stand-in: checked, and refused as no host name.
  assertEquals(
    requestHost(new Request("https://localhost:1@evil.example/"), 8080),
    "localhost:1@evil.example",
  );
  // Without any Host, Deno makes up localhost:<our port>: nothing a browser could have sent.
  assertEquals(requestHost(new Request("http://localhost:8080/"), 8080), null);
  assertEquals(requestHost(new Request("http://localhost:9999/"), 8080), "localhost:9999");
});
