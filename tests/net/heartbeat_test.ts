/**
 * Heartbeats: silent clients are pinged; one that never answers is closed after --pong-timeout;
 * one that answers (any browser-style client) stays.
 */
import { assert, assertEquals } from "@std/assert";
import { Opcode } from "../../src/protocol/opcode.ts";
import { clientFrame, RawClient } from "../support/raw_client.ts";
import { startTestServer } from "../support/server.ts";
import { TestSocket } from "../support/ws_client.ts";

const args = ["--ping-interval", "100ms", "--pong-timeout", "150ms", "--close-timeout", "200ms"];

Deno.test("a raw client that never answers pings is closed after the pong timeout", async () => {
  await using server = await startTestServer(args);
  await using client = await RawClient.open(server.wsAddr.port, "/echo");
  const started = performance.now();
  const ping = await client.nextOf("ping");
  assertEquals(ping.payload.length, 0);
  const close = await client.nextOf("close");
  assertEquals([close.code, close.reason], [1008, "ping timeout"]);
  assert(performance.now() - started >= 200, "not before interval + timeout");
  await client.waitForEof();
  await server.waitForLog("client.ping_timeout");
  assertEquals(server.metrics.pingTimeouts, 1);
});

Deno.test("a client that answers pings stays connected across many intervals", async () => {
  await using server = await startTestServer(args);
  await using client = await RawClient.open(server.wsAddr.port, "/echo");
  for (let i = 0; i < 5; i++) {
    const ping = await client.nextOf("ping");
    await client.write(clientFrame(Opcode.Pong, ping.payload));
  }
  await client.write(clientFrame(Opcode.Text, "alive"));
  assertEquals(await client.nextOf("text"), { type: "text", data: "alive" });
  assertEquals(server.metrics.pingTimeouts, 0);
});

Deno.test("Deno's WebSocket client answers pings by itself and is never dropped", async () => {
  await using server = await startTestServer(args);
  await using ws = new TestSocket(server.wsUrl + "/echo");
  await ws.opened;
  // Let several ping rounds pass: the pings are invisible to a browser-style client, so watch the
  // server's counter (a bounded poll: there is no event to await).
  const deadline = performance.now() + 5000;
  while (server.metrics.pingsSent < 3 && performance.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert(server.metrics.pingsSent >= 3, "the server pinged the silent client");
  ws.socket.send("still here");
  assertEquals(await ws.next(), "still here");
  assertEquals(server.metrics.pingTimeouts, 0);
});
