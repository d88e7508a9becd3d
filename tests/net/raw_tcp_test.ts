/**
 * The WebSocket port through raw TCP: handshake rejections, pipelined frames, malformed frames.
 */
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { Opcode } from "../../src/protocol/opcode.ts";
import { encodeFrame } from "../../src/protocol/frame_encoder.ts";
import { concat } from "../support/bytes.ts";
import { clientFrame, RawClient, upgradeRequest } from "../support/raw_client.ts";
import { startTestServer } from "../support/server.ts";
import { TestSocket } from "../support/ws_client.ts";

Deno.test("a handshake and a masked frame sent in one write get the accept and the echo", async () => {
  await using server = await startTestServer();
  await using client = await RawClient.connect(server.wsAddr.port);
  await client.write(concat(upgradeRequest("/echo"), clientFrame(Opcode.Text, "first frame")));
  const response = await client.readResponse();
  assertEquals(response.status, 101);
  assertEquals(response.headers.get("sec-websocket-accept"), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  assertEquals(response.headers.get("upgrade"), "websocket");
  assertEquals(await client.next(), { type: "text", data: "first frame" });
});

Deno.test("an unmasked client frame gets close 1002 and the TCP connection is closed", async () => {
  await using server = await startTestServer();
  await using client = await RawClient.open(server.wsAddr.port, "/echo");
  await client.write(encodeFrame(Opcode.Text, new TextEncoder().encode("unmasked")));
  const close = await client.nextOf("close");
  assertEquals(close.code, 1002);
  await client.waitForEof();
  await server.waitForLog("failure=unmasked-frame");
});

Deno.test("a plain HTTP GET on the WebSocket port gets 426 with a readable body", async () => {
  await using server = await startTestServer();
  const response = await fetch(`http://127.0.0.1:${server.wsAddr.port}/`);
  assertEquals(response.status, 426);
  assertEquals(response.headers.get("upgrade"), "websocket");
  assertStringIncludes(await response.text(), "WebSocket");
});

Deno.test("a wrong Sec-WebSocket-Version gets 426 with Sec-WebSocket-Version: 13", async () => {
  await using server = await startTestServer();
  await using client = await RawClient.connect(server.wsAddr.port);
  await client.write(upgradeRequest("/", { "Sec-WebSocket-Version": "8" }));
  const response = await client.readResponse();
  assertEquals(response.status, 426);
  assertEquals(response.headers.get("sec-websocket-version"), "13");
  await client.waitForEof();
});

Deno.test("a bad key gets 400 and a log line with the reason", async () => {
  await using server = await startTestServer();
  await using client = await RawClient.connect(server.wsAddr.port);
  await client.write(upgradeRequest("/", { "Sec-WebSocket-Key": "c2hvcnQ=" }));
  assertEquals((await client.readResponse()).status, 400);
  await server.waitForLog("handshake.rejected");
});

Deno.test("an unknown path gets 404", async () => {
  await using server = await startTestServer();
  await using client = await RawClient.connect(server.wsAddr.port);
  await client.write(upgradeRequest("/nope"));
  assertEquals((await client.readResponse()).status, 404);
});

Deno.test("a header block over --max-header-bytes gets 431 and is closed", async () => {
  await using server = await startTestServer(["--max-header-bytes", "8KiB"]);
  await using client = await RawClient.connect(server.wsAddr.port);
  await client.write(upgradeRequest("/", { "X-Padding": "a".repeat(64 * 1024) }));
  const response = await client.readResponse();
  assertEquals(response.status, 431);
  await client.waitForEof();
});

Deno.test("a handshake not finished within --handshake-timeout is closed", async () => {
  await using server = await startTestServer(["--handshake-timeout", "100ms"]);
  await using client = await RawClient.connect(server.wsAddr.port);
  await client.write("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n");
  const started = performance.now();
  await client.waitForEof();
  assert(performance.now() - started < 5000, "closed by the deadline, not by the test's end");
  await server.waitForLog("handshake.timeout");
});

Deno.test("--max-clients: connection N+1 gets 503 and existing clients are unaffected", async () => {
  await using server = await startTestServer(["--max-clients", "2"]);
  await using a = new TestSocket(server.wsUrl + "/echo");
  await using b = new TestSocket(server.wsUrl + "/echo");
  await Promise.all([a.opened, b.opened]);
  await using c = await RawClient.connect(server.wsAddr.port);
  await c.write(upgradeRequest("/echo"));
  const response = await c.readResponse();
  assertEquals(response.status, 503);
  assertStringIncludes(response.body, "full");
  await c.waitForEof();
  a.socket.send("still here");
  assertEquals(await a.next(), "still here");
  b.socket.send("me too");
  assertEquals(await b.next(), "me too");
});

Deno.test("a browser handshake from a foreign Origin gets 403", async () => {
  await using server = await startTestServer();
  await using client = await RawClient.connect(server.wsAddr.port);
  await client.write(upgradeRequest("/", { Origin: "http://evil.example" }));
  assertEquals((await client.readResponse()).status, 403);
  await server.waitForLog("Origin http://evil.example is not allowed");
});

Deno.test("a handshake from the page server's own origin is accepted", async () => {
  await using server = await startTestServer();
  await using client = await RawClient.connect(server.wsAddr.port);
  await client.write(
    upgradeRequest("/echo", { Origin: `http://127.0.0.1:${server.httpAddr.port}` }),
  );
  assertEquals((await client.readResponse()).status, 101);
});

Deno.test("DNS rebinding: a Host that is not a name of the server gets 403, counted", async () => {
  await using server = await startTestServer();
  const port = server.httpAddr.port;
  await using client = await RawClient.connect(server.wsAddr.port);
  // The attacker's page and its WebSocket share the attacker's name, now resolving to us: the
  // Origin matches the Host, so only the Host check can refuse it.
  await client.write(upgradeRequest("/", {
    Host: `rebind.attacker.example:${server.wsAddr.port}`,
    Origin: `http://rebind.attacker.example:${port}`,
  }));
  const response = await client.readResponse();
  assertEquals(response.status, 403);
  assertStringIncludes(response.body, "rebind.attacker.example");
  await server.waitForLog("is not a name of this server");
  assertStringIncludes(server.metrics.render(), 'push_handshakes_rejected_total{status="403"} 1');
});

Deno.test("127.0.0.1, localhost and [::1] are accepted out of the box, with their page origin", async () => {
  await using server = await startTestServer();
  const port = server.httpAddr.port;
  for (const host of ["127.0.0.1", "localhost", "[::1]", "LocalHost"]) {
    await using client = await RawClient.connect(server.wsAddr.port);
    await client.write(upgradeRequest("/echo", {
      Host: `${host}:${server.wsAddr.port}`,
      Origin: `http://${host.toLowerCase()}:${port}`,
    }));
    assertEquals((await client.readResponse()).status, 101, host);
  }
});

Deno.test("--public-hosts and the host of --public-ws-url are accepted on the WebSocket port", async () => {
  await using server = await startTestServer([
    "--public-hosts",
    "push.example,alt.example",
    "--public-ws-url",
    "wss://edge.example/ws/",
  ]);
  for (const host of ["push.example", "alt.example:443", "edge.example"]) {
    await using client = await RawClient.connect(server.wsAddr.port);
    await client.write(upgradeRequest("/echo", { Host: host }));
    assertEquals((await client.readResponse()).status, 101, host);
  }
  await using other = await RawClient.connect(server.wsAddr.port);
  await other.write(upgradeRequest("/echo", { Host: "evil.example" }));
  assertEquals((await other.readResponse()).status, 403);
});

Deno.test("a ping gets a pong with the same payload, and a client close is echoed", async () => {
  await using server = await startTestServer();
  await using client = await RawClient.open(server.wsAddr.port, "/echo");
  await client.write(clientFrame(Opcode.Ping, "are you there"));
  const pong = await client.nextOf("pong");
  assertEquals(new TextDecoder().decode(pong.payload), "are you there");
  await client.write(clientFrame(Opcode.Close, new Uint8Array([0x0f, 0xa1, 0x62, 0x79, 0x65])));
  assertEquals(await client.nextOf("close"), { type: "close", code: 4001, reason: "bye" });
  await client.waitForEof();
});

Deno.test("invalid UTF-8 in a text message gets close 1007", async () => {
  await using server = await startTestServer();
  await using client = await RawClient.open(server.wsAddr.port, "/echo");
  await client.write(clientFrame(Opcode.Text, new Uint8Array([0xce, 0xba, 0xff])));
  assertEquals((await client.nextOf("close")).code, 1007);
  await client.waitForEof();
});

Deno.test("a message over --max-message-bytes gets close 1009", async () => {
  await using server = await startTestServer(["--max-message-bytes", "1024"]);
  await using client = await RawClient.open(server.wsAddr.port, "/echo");
  await client.write(clientFrame(Opcode.Binary, new Uint8Array(1025)));
  assertEquals((await client.nextOf("close")).code, 1009);
  await client.waitForEof();
});

Deno.test("a client whose TCP connection drops without a close frame is removed", async () => {
  await using server = await startTestServer(["--demo", "true", "--demo-interval", "10"]);
  const client = await RawClient.open(server.wsAddr.port, "/");
  await client.nextOf("text");
  client.close();
  const line = await server.waitForLog("connection.closed client=1");
  assertStringIncludes(line, 'reason="peer closed TCP"');
  assertEquals(server.ws.clients.size, 0);
});
