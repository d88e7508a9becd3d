/**
 * Message floods on the push endpoint (issue 11, item 3): `--max-client-rate` closes a client of
 * `/` that sends faster than the rate (after a burst of twice it) with 1008 "rate limit" and
 * counts it; `/echo` is not limited; free text is not logged at info level.
 */
import { assert, assertEquals, assertLessOrEqual, assertStringIncludes } from "@std/assert";
import { Opcode } from "../../src/protocol/opcode.ts";
import { concat } from "../support/bytes.ts";
import { clientFrame, RawClient } from "../support/raw_client.ts";
import { startTestServer } from "../support/server.ts";
import { TestSocket } from "../support/ws_client.ts";
import { waitForLogSince } from "../support/server_logs.ts";
import { delay, withDeadline } from "../support/async.ts";

/** `count` masked text frames "m0", "m1", … in one buffer: one write, one burst. */
function textFrames(count: number, prefix = "m"): Uint8Array {
  return concat(
    ...Array.from({ length: count }, (_, i) => clientFrame(Opcode.Text, prefix + i)),
  );
}

Deno.test("1000 messages at once over --max-client-rate 10: the burst is answered, then close 1008 rate limit", async () => {
  await using server = await startTestServer(["--max-client-rate", "10"]);
  await using client = await RawClient.open(server.wsAddr.port, "/");
  await client.write(textFrames(1000));
  const acks: string[] = [];
  let close: { code: number; reason: string } | undefined;
  while (close === undefined) {
    const event = await withDeadline(client.next(), 5000, "the close frame");
    if (event.type === "text") acks.push(event.data);
    else if (event.type === "close") close = event;
    else if (event.type === "eof") {
      throw new Error(`EOF before a close frame, after ${acks.length} acks`);
    }
  }
  assertEquals([close.code, close.reason], [1008, "rate limit"]);
  // The burst of 2 × 10 messages within the rate keeps its acknowledgements, in order.
  assertEquals(acks, Array.from({ length: 20 }, (_, i) => `Server received: m${i}`));
  assertEquals(server.metrics.rateLimited, 1);
  const metrics = await (await fetch(`${server.httpUrl}/metrics`)).text();
  assertStringIncludes(metrics, "\npush_rate_limited_total 1\n");
  const warn = await server.waitForLog("client.rate_limited");
  assertStringIncludes(warn, " warn ");
  assertStringIncludes(warn, "max_client_rate=10");
  await client.write(clientFrame(Opcode.Close, new Uint8Array([0x03, 0xf0])));
  await withDeadline(client.waitForEof(), 5000, "EOF after the close handshake");
});

Deno.test("only the client over --max-client-rate is closed: one within the rate, and /echo floods, are not", async () => {
  await using server = await startTestServer(["--max-client-rate", "10"]);
  await using steady = new TestSocket(server.wsUrl + "/");
  await using echo = await RawClient.open(server.wsAddr.port, "/echo");
  await using flooder = await RawClient.open(server.wsAddr.port, "/");
  await steady.opened;

  // /echo is the conformance peer: 1000 messages at once are all echoed.
  await echo.write(textFrames(1000));
  // The flooder on / is closed...
  await flooder.write(textFrames(1000));
  assertEquals(
    (await withDeadline(flooder.nextOf("close"), 5000, "the flooder's close")).code,
    1008,
  );
  for (let i = 0; i < 1000; i++) {
    const event = await withDeadline(echo.next(), 5000, `echo ${i}`);
    assertEquals(event, { type: "text", data: `m${i}` });
  }

  // ...while a neighbour that sends its whole burst (2 × 10) at once, then stays under 10/s,
  // keeps its connection. Time, not a race, is what this part is about: 8 messages, 150 ms apart.
  for (let i = 0; i < 20; i++) steady.socket.send(`burst ${i}`);
  for (let i = 0; i < 20; i++) {
    assertEquals(
      await withDeadline(steady.next(), 5000, `ack ${i}`),
      `Server received: burst ${i}`,
    );
  }
  for (let i = 0; i < 8; i++) {
    await delay(150);
    steady.socket.send(`steady ${i}`);
    assertEquals(
      await withDeadline(steady.next(), 5000, `ack ${i}`),
      `Server received: steady ${i}`,
    );
  }
  assertEquals(steady.socket.readyState, WebSocket.OPEN);
  assertEquals(server.metrics.rateLimited, 1, "only the flooder was rate-limited");
});

Deno.test("free text is acknowledged but not logged at info level", async () => {
  await using server = await startTestServer(["--log-level", "info"]);
  await using ws = new TestSocket(server.wsUrl + "/");
  await ws.opened;
  const from = server.logs.length;
  ws.socket.send("secret free text");
  assertEquals(await ws.next(), "Server received: secret free text");
  ws.socket.send(new Uint8Array([1, 2, 3]));
  assertEquals(await ws.next(), "Server received 3 bytes of binary data");
  // A command logged at info after them: once its line is there, theirs would be too.
  ws.socket.send("subscribe news");
  await waitForLogSince(server, from, "client.subscribe", 5000);
  const lines = server.logs.slice(from);
  assertEquals(lines.filter((l) => l.includes("client.message")), [], lines.join("\n"));
  assert(!lines.some((l) => l.includes("secret")), "the client's text is not in the log");
});

Deno.test("at debug level free text is logged cut to 200 characters", async () => {
  await using server = await startTestServer(); // debug level
  await using ws = new TestSocket(server.wsUrl + "/");
  await ws.opened;
  const from = server.logs.length;
  const text = "x".repeat(5000);
  ws.socket.send(text);
  assertEquals(await ws.next(), `Server received: ${text}`);
  const line = await waitForLogSince(server, from, "client.message", 5000);
  assertStringIncludes(line, " debug client.message ");
  const logged = /text=(x+)/.exec(line)?.[1] ?? "";
  assertEquals(logged.length, 200);
  assertStringIncludes(line, "text_chars=5000");
  assertLessOrEqual(line.length, 400);
});
