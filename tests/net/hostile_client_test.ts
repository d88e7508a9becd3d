/**
 * Hostile clients through real sockets: slowloris handshakes, huge header blocks, frames that
 * claim absurd lengths, messages that never end, clients that never read, mass resets
 * mid-frame, and the edges of the closing handshake. Each must cost the server bounded time and
 * memory and leave other clients alone.
 */
import { assert, assertEquals, assertGreater, assertLess, assertStringIncludes } from "@std/assert";
import { Opcode } from "../../src/protocol/opcode.ts";
import { serverFrames } from "../support/fuzz_predict.ts";
import { encodeSpec } from "../support/fuzz_frames.ts";
import { delay, pollUntil, withDeadline } from "../support/async.ts";
import { countLogs, serverClientId, waitForLogSince } from "../support/server_logs.ts";
import { concat } from "../support/bytes.ts";
import {
  clientFrame,
  RawClient,
  readToEnd,
  TEST_MASK,
  upgradeRequest,
} from "../support/raw_client.ts";
import { startTestServer } from "../support/server.ts";
import { TestSocket } from "../support/ws_client.ts";

const decoder = new TextDecoder();

/** A close frame payload: 2-byte code and UTF-8 reason. */
function closePayload(code: number, reason = ""): Uint8Array {
  const text = new TextEncoder().encode(reason);
  const out = new Uint8Array(2 + text.length);
  new DataView(out.buffer).setUint16(0, code);
  out.set(text, 2);
  return out;
}

Deno.test("slowloris: a handshake dribbled a byte every 20 ms is closed at --handshake-timeout", async () => {
  const deadline = 300;
  const pace = 20;
  await using server = await startTestServer(["--handshake-timeout", `${deadline}ms`]);
  const request = upgradeRequest("/echo", { "X-Padding": "p".repeat(100) });
  const dribble = request.length * pace; // about 5 s
  const started = performance.now(); // before connecting: the server's deadline starts later
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.wsAddr.port });
  try {
    const ended = readToEnd(conn);
    const stop = new AbortController();
    ended.then(() => stop.abort());
    let sent = 0;
    while (sent < request.length && !stop.signal.aborted) {
      try {
        await conn.write(request.subarray(sent, sent + 1));
      } catch {
        break; // the server is gone
      }
      sent++;
      await delay(pace, stop.signal);
    }
    const result = await withDeadline(ended, dribble, "the server to close the slow handshake");
    const elapsed = result.at - started;
    assertEquals(result.end, "eof", "the server closes the socket");
    assertEquals(decoder.decode(result.bytes), "", "no response is sent to a timed-out handshake");
    assert(elapsed >= deadline, `closed after ${elapsed} ms, before the ${deadline} ms deadline`);
    assertLess(
      elapsed,
      Math.min(dribble / 2, 2000),
      "closed at the deadline, not when the dribble ends",
    );
    assertLess(sent, request.length, "the request was never completed");
    await withDeadline(server.waitForLog("handshake.timeout"), 2000, "the handshake.timeout log");
    assertEquals(server.ws.clients.size, 0);
  } finally {
    conn.close();
  }
});

Deno.test("a 64 KiB header block gets 431 and the connection is closed", async () => {
  await using server = await startTestServer(["--max-header-bytes", "8KiB"]);
  await using client = await RawClient.connect(server.wsAddr.port);
  const headers: Record<string, string> = {};
  for (let i = 0; i < 640; i++) headers[`X-Filler-${i}`] = "f".repeat(90);
  const request = upgradeRequest("/echo", headers);
  assert(request.length >= 64 * 1024, `the header block is ${request.length} bytes`);
  // Write and read at once: the server answers after 8 KiB and drains the rest.
  const [, response] = await withDeadline(
    Promise.all([client.write(request).catch(() => {}), client.readResponse()]),
    5000,
    "the 431 response",
  );
  assertEquals(response.status, 431);
  await withDeadline(client.waitForEof(), 5000, "EOF after the 431");
  const line = await withDeadline(
    server.waitForLog("handshake.rejected"),
    2000,
    "the rejection log",
  );
  assertStringIncludes(line, "status=431");
  assertEquals(server.ws.clients.size, 0);
});

Deno.test("a frame claiming 2^62 bytes gets close 1009 at once, before any payload, and is closed", async () => {
  await using server = await startTestServer(["--close-timeout", "5s"]);
  await using client = await RawClient.open(server.wsAddr.port, "/echo");
  const header = encodeSpec({
    fin: true,
    opcode: Opcode.Binary,
    payload: new Uint8Array(0),
    claimedLength: 1n << 62n,
    mask: TEST_MASK,
  });
  assertEquals(header.length, 14);
  const started = performance.now();
  await client.write(header); // the header only: not one payload byte
  const close = await withDeadline(client.nextOf("close"), 2000, "close 1009");
  assertEquals(close.code, 1009);
  // The server half-closes right after its close frame: EOF long before the 5 s close timeout.
  await withDeadline(client.waitForEof(), 2000, "EOF after close 1009");
  assertLess(performance.now() - started, 2000);
  const error = await server.waitForLog("connection.protocol_error");
  assertStringIncludes(error, "failure=message-too-big code=1009");
  client.close();
  const closed = await withDeadline(
    server.waitForLog("connection.closed client=1 "),
    2000,
    "connection.closed",
  );
  assertStringIncludes(closed, "code_sent=1009");
  assertEquals(server.ws.clients.size, 0);
});

Deno.test("a fragmented message that never ends gets close 1009 once it passes --max-message-bytes", async () => {
  const limit = 64 * 1024;
  const size = 4 * 1024;
  await using server = await startTestServer([
    "--max-message-bytes",
    "64KiB",
    "--close-timeout",
    "2s",
  ]);
  await using client = await RawClient.open(server.wsAddr.port, "/echo");
  const fragment = (i: number) =>
    clientFrame(i === 0 ? Opcode.Binary : Opcode.Continuation, new Uint8Array(size).fill(i), false);
  let sent = 0;
  for (; sent * size < limit; sent++) await client.write(fragment(sent));
  assertEquals(sent * size, limit);
  // Exactly at the limit: nothing is wrong yet, and the connection still answers a ping.
  await client.write(clientFrame(Opcode.Ping, "still within the limit"));
  const pong = await withDeadline(client.nextOf("pong"), 2000, "the pong at the limit");
  assertEquals(decoder.decode(pong.payload), "still within the limit");
  // Keep going: the next fragment's header passes the limit.
  let closeSeen = false;
  const closing = client.nextOf("close").then(
    (close) => {
      closeSeen = true;
      return close;
    },
    (err: Error) => err,
  );
  while (!closeSeen && sent < 64) {
    try {
      await client.write(fragment(sent));
    } catch {
      break; // the server may have closed by now
    }
    sent++;
  }
  const close = await withDeadline(closing, 2000, "close 1009");
  assert(!(close instanceof Error), `expected a close frame: ${close}`);
  assertEquals(close.code, 1009);
  await withDeadline(client.waitForEof(), 3000, "EOF after close 1009");
  const error = await server.waitForLog("connection.protocol_error");
  assertStringIncludes(error, "failure=message-too-big code=1009");
});

Deno.test("a client that never reads is dropped as a slow consumer while a healthy client echoes", async () => {
  const maxQueue = 64 * 1024;
  await using server = await startTestServer([
    "--max-queue-bytes",
    "64KiB",
    "--send-timeout",
    "1s",
    "--close-timeout",
    "300ms",
  ]);
  await using healthy = new TestSocket(server.wsUrl + "/echo");
  await withDeadline(healthy.opened, 2000, "the healthy client's handshake");
  const from = server.logs.length;
  await using hostile = await RawClient.open(server.wsAddr.port, "/echo");
  const id = await serverClientId(server, from, hostile.conn.localAddr.port);
  const connection = [...server.ws.clients].find((c) => c.id === id);
  assert(connection, "the hostile client is registered");

  let maxQueued = 0;
  const sample = () => {
    for (const c of server.ws.clients) maxQueued = Math.max(maxQueued, c.queuedBytes);
  };
  // Sample every queue between the test's own steps and on a 1 ms ticker.
  const sampler = setInterval(sample, 1);
  let gone = false;
  const closedLine = waitForLogSince(server, from, `connection.closed client=${id} `, 30_000)
    .finally(() => gone = true);

  // The healthy client keeps echoing all along.
  const healthyLoop = (async () => {
    let echoes = 0;
    while (!gone) {
      const text = `healthy ${echoes}`;
      healthy.socket.send(text);
      assertEquals(await withDeadline(healthy.next(), 5000, "a healthy echo"), text);
      echoes++;
      sample();
    }
    return echoes;
  })().catch((err: Error) => err); // checked below, after the flood

  // The hostile client floods /echo and never reads: the echoes pile up in the socket buffers,
  // then in its queue, until the server gives up on it.
  const frame = clientFrame(Opcode.Binary, new Uint8Array(16 * 1024).fill(0x5a));
  let flooded = 0;
  const maxFlood = 512 * 1024 * 1024;
  while (!gone && flooded < maxFlood) {
    try {
      await withDeadline(hostile.write(frame), 10_000, "a write of the hostile client");
    } catch {
      break; // reset by the server
    }
    flooded += frame.length;
    sample();
  }
  let closed: string;
  let echoes: number | Error;
  try {
    closed = await withDeadline(closedLine, 30_000, "the hostile client's removal");
    echoes = await healthyLoop;
  } finally {
    clearInterval(sampler);
    hostile.close();
  }

  const slow = server.logs.find((l) => l.includes(`client.slow_consumer client=${id} `));
  const stalled = server.logs.find((l) => l.includes(`client.send_timeout client=${id}`));
  assert(slow || stalled, `expected slow_consumer or send_timeout, got: ${closed}`);
  if (slow) {
    assertEquals(connection.closeSent?.code, 1008, "a slow consumer gets close 1008");
    const queued = Number(/queued_bytes=(\d+)/.exec(slow)?.[1]);
    assert(queued <= maxQueue, `the queue held ${queued} bytes when it overflowed: ${slow}`);
    assertStringIncludes(slow, `max_queue_bytes=${maxQueue}`);
  }
  assert(![...server.ws.clients].some((c) => c.id === id), "the hostile client was removed");
  assert(maxQueued <= maxQueue, `a queue held ${maxQueued} bytes, over ${maxQueue}`);
  if (echoes instanceof Error) throw echoes;
  assertGreater(echoes, 0, "the healthy client echoed meanwhile");
  healthy.socket.send("after");
  assertEquals(await withDeadline(healthy.next(), 5000, "an echo after the removal"), "after");
  console.log(
    `slow consumer: flooded ${(flooded / 1048576).toFixed(1)} MiB, max queue ${maxQueued} B, ` +
      `${echoes} healthy echoes, ${slow ? "slow_consumer" : "send_timeout"}; ${closed}`,
  );
});

Deno.test("a slow but steadily reading client is not cut off by --send-timeout", async () => {
  // --send-timeout is "a write that makes no progress this long" (README, config.ts): a client
  // that keeps reading, however slowly, must keep its connection. One 8 MiB echo is one write of
  // the server; the client reads 64 KiB every 5 ms, so that write progresses every few ms but
  // takes far longer than the 500 ms timeout in total.
  const size = 8 * 1024 * 1024;
  await using server = await startTestServer([
    "--send-timeout",
    "500ms",
    "--max-message-bytes",
    "8MiB",
    "--max-queue-bytes",
    "16MiB",
  ]);
  await using client = await RawClient.open(server.wsAddr.port, "/echo");
  const payload = new Uint8Array(size).fill(0x42);
  const writing = client.write(clientFrame(Opcode.Binary, payload)).catch((err) => err);
  const expected = size + 10; // the echo: a 10-byte header and the payload
  const buffer = new Uint8Array(64 * 1024);
  let received = 0;
  let longestGap = 0;
  let last = performance.now();
  const started = last;
  while (received < expected && performance.now() - started < 20_000) {
    const n = await withDeadline(client.conn.read(buffer), 5000, "the next part of the echo");
    if (n === null) break;
    const now = performance.now();
    longestGap = Math.max(longestGap, now - last);
    last = now;
    received += n;
    await delay(5); // a slow reader: pace the reads
  }
  await writing;
  const timedOut = server.logs.find((l) => l.includes("client.send_timeout"));
  assertEquals(
    received,
    expected,
    `the whole echo arrives (got ${received} bytes in ${Math.round(last - started)} ms, ` +
      `at most ${Math.round(longestGap)} ms between reads; ${timedOut ?? "no send_timeout"})`,
  );
  assertEquals(timedOut, undefined, "no send timeout for a client that keeps reading");
});

Deno.test("a client that floods /echo without reading is paused, not dropped, and gets every echo once it reads", async () => {
  // Its echoes fill the socket buffers, then its queue: past half of --max-queue-bytes the
  // server stops reading from it (its TCP window fills and its writes block) instead of
  // answering, so its own replies never make it a slow consumer.
  const maxQueue = 256 * 1024;
  await using server = await startTestServer(["--max-queue-bytes", "256KiB"]);
  const from = server.logs.length;
  await using client = await RawClient.open(server.wsAddr.port, "/echo");
  const id = await serverClientId(server, from, client.conn.localAddr.port);
  const connection = [...server.ws.clients].find((c) => c.id === id)!;
  const messages = 16 * 1024;
  const frames = concat(...Array.from(
    { length: messages },
    (_, i) => clientFrame(Opcode.Binary, new Uint8Array(1024).fill(i & 0xff)),
  ));
  let maxQueued = 0;
  const sampler = setInterval(() => maxQueued = Math.max(maxQueued, connection.queuedBytes), 1);
  const writing = client.write(frames).then(() => "written", (err: Error) => err);
  try {
    // (Without the pause, the queue overflows instead and the client is closed as slow.)
    await pollUntil(
      () => server.metrics.readsPaused > 0 || connection.state !== "open",
      10_000,
      "reading from the flooder paused",
    );
    assertEquals(connection.state, "open", "the flooder is not dropped");
    // Now it reads: every echo arrives, in order.
    for (let i = 0; i < messages; i++) {
      const event = await withDeadline(client.next(), 5000, `echo ${i}`);
      if (event.type !== "binary") throw new Error(`echo ${i}: got ${event.type}`);
      assertEquals([event.data.length, event.data[0]], [1024, i & 0xff], `echo ${i}`);
    }
    assertEquals(await writing, "written", "the flooder's writes all went through");
  } finally {
    clearInterval(sampler);
  }
  await client.write(clientFrame(Opcode.Text, "still here"));
  assertEquals(await withDeadline(client.next(), 5000, "the last echo"), {
    type: "text",
    data: "still here",
  });
  assertEquals(countLogs(server, "client.slow_consumer"), 0, "no slow consumer");
  assert(maxQueued <= maxQueue, `the queue held ${maxQueued} bytes, over ${maxQueue}`);
  console.log(
    `echo flood: ${messages} KiB through a 256 KiB queue; reading paused ` +
      `${server.metrics.readsPaused} times; queue at most ${maxQueued} B`,
  );
});

Deno.test("a paused flooder that never reads is ended by --send-timeout, and its connection finishes", async () => {
  await using server = await startTestServer([
    "--max-queue-bytes",
    "256KiB",
    "--send-timeout",
    "500ms",
    "--close-timeout",
    "300ms",
  ]);
  const from = server.logs.length;
  await using client = await RawClient.open(server.wsAddr.port, "/echo");
  const id = await serverClientId(server, from, client.conn.localAddr.port);
  const connection = [...server.ws.clients].find((c) => c.id === id)!;
  const frame = clientFrame(Opcode.Binary, new Uint8Array(16 * 1024));
  const flooding = (async () => {
    try {
      while (true) await client.write(frame);
    } catch {
      // Reset by the server.
    }
  })();
  // Paused with no read pending: only the writer's deadline can end it, and ending it must end
  // the paused read loop too, or the connection would never finish.
  await pollUntil(
    () => server.metrics.readsPaused > 0 || connection.state !== "open",
    10_000,
    "reading from the flooder paused",
  );
  assertGreater(server.metrics.readsPaused, 0, "reading paused");
  assertEquals(connection.state, "open", "paused, not dropped as slow");
  await withDeadline(connection.finished, 10_000, "the paused connection's end");
  await waitForLogSince(server, from, `client.send_timeout client=${id}`, 1000);
  assert(![...server.ws.clients].some((c) => c.id === id), "the flooder was removed");
  client.close();
  await flooding;
});

Deno.test("1,000 connections reset mid-frame leave no client, no error and no unhandled rejection", async () => {
  const total = 1000;
  const batch = 50;
  await using server = await startTestServer(["--close-timeout", "1s"]);
  const rejections: unknown[] = [];
  const onRejection = (e: PromiseRejectionEvent) => {
    e.preventDefault();
    rejections.push(e.reason);
  };
  globalThis.addEventListener("unhandledrejection", onRejection);
  try {
    for (let start = 0; start < total; start += batch) {
      await Promise.all(Array.from({ length: batch }, async (_, k) => {
        const i = start + k;
        // A 300-byte binary frame cut inside its header or its payload.
        const frame = clientFrame(Opcode.Binary, new Uint8Array(300).fill(i & 0xff));
        const partial = frame.subarray(0, 1 + (i * 7) % (frame.length - 1));
        let client: RawClient;
        switch (i % 3) {
          case 0: // mid-frame after the handshake, then FIN
            client = await RawClient.open(server.wsAddr.port, "/echo");
            await client.write(partial);
            break;
          case 1: {
            // In the handshake's write; once the server has sent its 101, close without reading
            // it: unread bytes make the close a TCP reset (which Deno's read reports as EOF).
            const from = server.logs.length;
            client = await RawClient.connect(server.wsAddr.port);
            await client.write(concat(upgradeRequest("/echo"), partial));
            await serverClientId(server, from, client.conn.localAddr.port, 5000);
            break;
          }
          default: // in the handshake's write, closed at once (racing the handshake)
            client = await RawClient.connect(server.wsAddr.port);
            await client.write(concat(upgradeRequest("/echo"), partial));
        }
        client.close();
      }));
    }
    const settled = () => {
      const accepted = countLogs(server, "handshake.accepted");
      const ended = countLogs(server, "handshake.failed") +
        countLogs(server, "handshake.abandoned");
      return accepted + ended === total && countLogs(server, "connection.closed") === accepted &&
        server.ws.clients.size === 0;
    };
    // No single event says "all 1,000 are done": poll the server's observable state, bounded.
    await pollUntil(settled, 15_000, "every connection handled and closed");
  } finally {
    globalThis.removeEventListener("unhandledrejection", onRejection);
  }
  assertEquals(rejections, [], "no unhandled rejection");
  assertGreater(countLogs(server, "handshake.accepted"), (total * 2) / 3 - 1);
  const errors = server.logs.filter((line) => / (error|fatal) /.test(line.slice(0, 40)));
  assertEquals(errors, [], "no error was logged");
  assertEquals(server.ws.clients.size, 0);
});

Deno.test("a server-initiated close waits --close-timeout for the peer's close, then closes TCP", async () => {
  await using server = await startTestServer(["--close-timeout", "200ms"]);
  await using client = await RawClient.open(server.wsAddr.port, "/");
  await client.write(clientFrame(Opcode.Text, "quit"));
  const close = await withDeadline(client.nextOf("close"), 2000, "close 1000");
  const received = performance.now();
  assertEquals([close.code, close.reason], [1000, "quit"]);
  // No answer from this client: the server waits for the close timeout, then closes TCP.
  await withDeadline(client.waitForEof(), 3000, "EOF after the close timeout");
  const elapsed = performance.now() - received;
  assert(elapsed >= 150, `EOF ${elapsed} ms after the close frame, before the 200 ms timeout`);
  assertLess(elapsed, 2000);
  const line = await withDeadline(server.waitForLog("connection.closed client=1 "), 2000, "log");
  assertStringIncludes(line, "code_sent=1000");
  assertStringIncludes(line, 'reason="close timeout"');
  assert(!line.includes("code_received"), line);
});

Deno.test("a server-initiated close answered by the peer ends TCP at once, not at the timeout", async () => {
  await using server = await startTestServer(["--close-timeout", "5s"]);
  await using client = await RawClient.open(server.wsAddr.port, "/");
  await client.write(clientFrame(Opcode.Text, "quit"));
  const close = await withDeadline(client.nextOf("close"), 2000, "close 1000");
  assertEquals([close.code, close.reason], [1000, "quit"]);
  const answered = performance.now();
  await client.write(clientFrame(Opcode.Close, closePayload(1000)));
  await withDeadline(client.waitForEof(), 3000, "EOF after answering the close");
  assertLess(performance.now() - answered, 1000, "EOF came long before the 5 s close timeout");
  const line = await withDeadline(server.waitForLog("connection.closed client=1 "), 2000, "log");
  assertStringIncludes(line, "code_sent=1000 code_received=1000 reason=closed");
});

Deno.test("simultaneous close: quit and the client's close in one write get one close frame, then EOF", async () => {
  for (const withHandshake of [false, true]) {
    await using server = await startTestServer(["--close-timeout", "5s"]);
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.wsAddr.port });
    try {
      const frames = concat(
        clientFrame(Opcode.Text, "quit"),
        clientFrame(Opcode.Close, closePayload(4000, "bye")),
      );
      let bytes: Uint8Array;
      if (withHandshake) {
        await conn.write(concat(upgradeRequest("/"), frames));
        bytes = (await withDeadline(readToEnd(conn), 3000, "the whole answer")).bytes;
      } else {
        await conn.write(upgradeRequest("/"));
        // Read the 101 head (the server sends nothing after it until we write).
        let head: Uint8Array = new Uint8Array(0);
        while (!decoder.decode(head).includes("\r\n\r\n")) {
          const buffer = new Uint8Array(1024);
          const n = await withDeadline(conn.read(buffer), 2000, "the 101 response");
          assert(n !== null, "closed before the 101");
          head = concat(head, buffer.subarray(0, n));
        }
        await conn.write(frames);
        const rest = await withDeadline(readToEnd(conn), 3000, "EOF after the close exchange");
        assertEquals(rest.end, "eof");
        bytes = concat(head, rest.bytes);
      }
      const text = decoder.decode(bytes);
      const headEnd = text.indexOf("\r\n\r\n") + 4;
      assert(text.startsWith("HTTP/1.1 101 "), text.slice(0, 40));
      const frameBytes = bytes.subarray(new TextEncoder().encode(text.slice(0, headEnd)).length);
      const received = serverFrames(frameBytes);
      const closes = received.filter((f) => f.opcode === Opcode.Close);
      assertEquals(closes.length, 1, `exactly one close frame (handshake write: ${withHandshake})`);
      assertEquals(received.at(-1), closes[0], "nothing after the close frame");
      assertEquals(
        [
          new DataView(closes[0].payload.buffer).getUint16(0),
          decoder.decode(closes[0].payload.subarray(2)),
        ],
        [1000, "quit"],
      );
      const line = await withDeadline(
        server.waitForLog("connection.closed client=1 "),
        2000,
        "log",
      );
      assertStringIncludes(line, "code_sent=1000 code_received=4000");
      assertStringIncludes(line, "reason=closed");
    } finally {
      conn.close();
    }
  }
});
