/**
 * The push endpoint and the echo endpoint through real sockets, with Deno's own WebSocket client.
 */
import { assertEquals, assertMatch, assertStringIncludes } from "@std/assert";
import { startTestServer } from "../support/server.ts";
import { TestSocket } from "../support/ws_client.ts";

Deno.test("a client of / receives demo pushes, and quit ends its loop with close 1000", async () => {
  await using server = await startTestServer(["--demo", "true", "--demo-interval", "10-30"]);
  await using ws = new TestSocket(server.wsUrl + "/");
  await ws.opened;
  for (let i = 0; i < 3; i++) {
    assertMatch(await ws.next() as string, /^I am waiting 0\.0[1-3]\d* seconds$/);
  }
  ws.socket.send("quit");
  const close = await ws.closed;
  assertEquals([close.code, close.reason, close.wasClean], [1000, "quit", true]);
  await server.waitForLog("client.quit client=1");
  const closed = await server.waitForLog("connection.closed client=1");
  assertStringIncludes(closed, "code_sent=1000");
  assertEquals(server.ws.clients.size, 0);
});

Deno.test("the push endpoint acknowledges other text messages and logs them", async () => {
  await using server = await startTestServer();
  await using ws = new TestSocket(server.wsUrl + "/");
  await ws.opened;
  ws.socket.send("hello there");
  assertEquals(await ws.next(), "Server received: hello there");
  await server.waitForLog('client.message client=1 text="hello there"');
  ws.socket.send(new Uint8Array([1, 2, 3]));
  assertEquals(await ws.next(), "Server received 3 bytes of binary data");
});

Deno.test("a client that opts out with ?demo=false gets no demo pushes", async () => {
  await using server = await startTestServer(["--demo", "true", "--demo-interval", "1"]);
  await using ws = new TestSocket(server.wsUrl + "/?demo=false");
  await ws.opened;
  ws.socket.send("ping-me");
  // The acknowledgement is the first message: no demo line was queued before it.
  assertEquals(await ws.next(), "Server received: ping-me");
});

Deno.test("a client that sends its own close frame ends its push loop", async () => {
  await using server = await startTestServer(["--demo", "true", "--demo-interval", "10-20"]);
  const ws = new TestSocket(server.wsUrl + "/");
  await ws.opened;
  await ws.next();
  ws.socket.close(4001, "bye");
  const close = await ws.closed;
  assertEquals([close.code, close.reason], [4001, "bye"]);
  const line = await server.waitForLog("connection.closed client=1");
  assertStringIncludes(line, "code_received=4001");
  assertStringIncludes(line, "code_sent=4001");
  assertEquals(server.ws.clients.size, 0);
});

Deno.test("the echo endpoint returns text and binary messages unchanged", async () => {
  await using server = await startTestServer(["--demo", "true"]);
  await using ws = new TestSocket(server.wsUrl + "/echo");
  await ws.opened;
  ws.socket.send("héllo ✓");
  assertEquals(await ws.next(), "héllo ✓");
  const big = new Uint8Array(200_000).map((_, i) => i % 251);
  ws.socket.send(big);
  assertEquals(new Uint8Array(await ws.next() as ArrayBuffer), big);
  ws.socket.send("");
  assertEquals(await ws.next(), "");
});

Deno.test("server shutdown sends 1001 going away to connected clients", async () => {
  const server = await startTestServer();
  const ws = new TestSocket(server.wsUrl + "/");
  await ws.opened;
  await server.shutdown(1000);
  const close = await ws.closed;
  assertEquals([close.code, close.reason], [1001, "going away"]);
});
