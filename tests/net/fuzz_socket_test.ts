/**
 * Fuzzing through a real socket: seeded random bytes, random frames and mutated valid streams sent
 * to `/echo` after a good handshake (or in the same write as the handshake). The server must do
 * exactly what its own sans-I/O reader predicts for those bytes — echo the messages and answer the
 * pings of a valid stream and stay open, wait on an incomplete frame, echo a client's close, or
 * fail with the predicted close code and close — while a healthy client on `/` keeps receiving its
 * demo pushes and no error is logged.
 *
 * Replay a failure with the seed it prints:
 * `PUSH_FUZZ_SEED=<seed> deno test --allow-net=127.0.0.1 --allow-read=. --allow-env=PUSH_FUZZ_SEED tests/net/fuzz_socket_test.ts`.
 */
import { assert, assertEquals, assertGreater, fail } from "@std/assert";
import type { WebSocketEvent } from "../../src/protocol/message.ts";
import { withDeadline } from "../support/async.ts";
import { serverClientId, waitForLogSince } from "../support/server_logs.ts";
import { predict } from "../support/fuzz_predict.ts";
import { mutate } from "../support/fuzz_mutate.ts";
import { generateFaultyStream, generateValidStream } from "../support/fuzz_streams.ts";
import { encodeSpec, generateRandomFrames } from "../support/fuzz_frames.ts";
import { deriveSeed, fuzzSeeds, Rng } from "../support/rng.ts";
import { concat, hexPreview } from "../support/bytes.ts";
import { RawClient } from "../support/raw_client.ts";
import { startTestServer } from "../support/server.ts";

const ITERATIONS = 300;
const LIMIT = 4096;
/** Generous per-step deadline: a step that takes this long means the server is stuck. */
const STEP_MS = 5000;
const DEMO_LINE = /^I am waiting 0\.0(0[5-9]|1) seconds$/;

type Data = { type: "text"; data: string } | { type: "binary"; data: Uint8Array };
type Pong = { type: "pong"; payload: Uint8Array };

/** The echoes and pongs a stream's events must earn on `/echo`. */
function replies(events: WebSocketEvent[]): { data: Data[]; pongs: Pong[] } {
  const data: Data[] = [];
  const pongs: Pong[] = [];
  for (const e of events) {
    if (e.type === "text" || e.type === "binary") data.push(e);
    else if (e.type === "ping") pongs.push({ type: "pong", payload: e.payload });
  }
  return { data, pongs };
}

function samePayload(a: Pong, b: Pong): boolean {
  return a.payload.length === b.payload.length &&
    a.payload.every((byte, i) => byte === b.payload[i]);
}

/**
 * Whether `pongs` answer the pings of `expected` as RFC 6455 §5.5.3 allows: the server may skip
 * a ping whose pong had not been written when a newer one came (only the most recent need be
 * answered), so the pongs are an in-order subsequence of the pings' payloads, and, when
 * `complete`, they end with the pong of the last ping.
 */
function isPongSubsequence(pongs: Pong[], expected: Pong[], complete: boolean): boolean {
  let at = 0;
  for (const pong of pongs) {
    while (at < expected.length && !samePayload(pong, expected[at])) at++;
    if (at === expected.length) return false;
    at++;
  }
  if (!complete || expected.length === 0) return true;
  return pongs.length > 0 && samePayload(pongs.at(-1)!, expected.at(-1)!);
}

function isPrefix<T>(prefix: T[], whole: T[]): boolean {
  if (prefix.length > whole.length) return false;
  try {
    assertEquals(prefix, whole.slice(0, prefix.length));
    return true;
  } catch {
    return false;
  }
}

Deno.test("fuzz: hostile bytes on /echo get the predicted echo or close, and never disturb a healthy client", async () => {
  const seed = fuzzSeeds(0).seeds[0];
  await using server = await startTestServer([
    "--demo",
    "true",
    "--demo-interval",
    "5-10",
    "--max-message-bytes",
    String(LIMIT),
    "--close-timeout",
    "3s",
  ]);

  // The healthy client: Deno's own WebSocket on the demo feed.
  const healthy = new WebSocket(server.wsUrl + "/");
  let pushes = 0;
  const strange: string[] = [];
  let onPush: (() => void) | null = null;
  healthy.addEventListener("message", (e) => {
    pushes++;
    if (typeof e.data !== "string" || !DEMO_LINE.test(e.data)) strange.push(String(e.data));
    onPush?.();
  });
  const healthyClosed = new Promise<CloseEvent>((resolve) =>
    healthy.addEventListener("close", resolve, { once: true })
  );
  await withDeadline(
    new Promise((resolve, reject) => {
      healthy.addEventListener("open", resolve, { once: true });
      healthy.addEventListener("error", reject, { once: true });
    }),
    STEP_MS,
    "the healthy client's handshake",
  );
  /** Resolves once the healthy client receives a push after this call. */
  const nextPush = (what: string) => {
    const before = pushes;
    return withDeadline(
      new Promise<void>((resolve) => {
        onPush = () => {
          if (pushes > before) {
            onPush = null;
            resolve();
          }
        };
      }),
      STEP_MS,
      `a demo push to the healthy client ${what}`,
    );
  };
  await nextPush("before the fuzzing");
  const pushesBefore = pushes;

  const outcomes = new Map<string, number>();
  const started = performance.now();
  for (let i = 0; i < ITERATIONS; i++) {
    const rng = new Rng(deriveSeed(seed, i));
    // The stream: random bytes, random frames, or a valid or faulty stream, mutated or not.
    let bytes: Uint8Array;
    let notes: string;
    const kind = rng.weighted(
      [[2, "bytes"], [2, "frames"], [3, "mutated"], [2, "valid"], [1, "faulty"]] as const,
    );
    if (kind === "bytes") {
      bytes = rng.bytes(rng.int(300));
      notes = "random bytes";
    } else if (kind === "frames") {
      bytes = generateRandomFrames(rng, LIMIT);
      notes = "random frames";
    } else {
      const base = rng.chance(0.6)
        ? generateValidStream(rng, LIMIT)
        : generateFaultyStream(rng, LIMIT);
      bytes = base.bytes;
      notes = base.notes.join(" ");
      if (kind === "mutated") {
        const m = mutate(rng, bytes);
        bytes = m.bytes;
        notes += ` mutated: ${m.notes.join(" ")}`;
      }
    }
    let prediction = predict(bytes, LIMIT);
    // After a valid close frame the server ends the connection: bytes after it would only race
    // with its TCP close (the protocol fuzz test covers that they are ignored).
    if (prediction.closedAt !== null) bytes = bytes.slice(0, prediction.closedAt);
    // A stream that stops between frames gets a probe: finish any message in progress, then a
    // text message whose echo proves every earlier reply was sent and the connection is usable.
    const probeText = `probe ${i}`;
    let probe: Uint8Array | null = null;
    if (prediction.atBoundary && prediction.error === null && prediction.closedAt === null) {
      const mask = rng.bytes(4);
      probe = concat(
        prediction.messageOpen
          ? encodeSpec({ fin: true, opcode: 0x0, payload: new Uint8Array(0), mask })
          : new Uint8Array(0),
        encodeSpec({ fin: true, opcode: 0x1, payload: new TextEncoder().encode(probeText), mask }),
      );
      prediction = predict(concat(bytes, probe), LIMIT);
    }
    const expected = replies(prediction.events);
    const ctx = (what: string) =>
      `seed=${seed} (replay with PUSH_FUZZ_SEED=${seed}) iteration=${i} kind=${kind} [${notes}] ` +
      `bytes=${hexPreview(bytes)}: ${what}`;

    const from = server.logs.length;
    const inHandshake = rng.chance(0.25) && bytes.length > 0;
    const client = await withDeadline(
      RawClient.open(server.wsAddr.port, "/echo", inHandshake ? bytes : undefined),
      STEP_MS,
      ctx("handshake"),
    );
    try {
      const id = await serverClientId(server, from, client.conn.localAddr.port, STEP_MS);
      if (!inHandshake) {
        // In up to four writes split at random points.
        const cuts = [0, bytes.length];
        for (let k = rng.int(4); k > 0; k--) cuts.push(rng.int(bytes.length + 1));
        cuts.sort((a, b) => a - b);
        for (let k = 0; k + 1 < cuts.length; k++) {
          if (cuts[k + 1] > cuts[k]) await client.write(bytes.subarray(cuts[k], cuts[k + 1]));
        }
      }
      if (probe) await client.write(probe);

      const data: Data[] = [];
      const pongs: Pong[] = [];
      const read = async (until: (e: Awaited<ReturnType<RawClient["next"]>>) => boolean) => {
        while (true) {
          const e = await withDeadline(client.next(), STEP_MS, ctx("the server's next frame"));
          if (e.type === "text" || e.type === "binary") data.push(e);
          else if (e.type === "pong") pongs.push(e);
          if (until(e)) return e;
          if (e.type === "eof") return e;
        }
      };

      let outcome: string;
      if (prediction.error !== null) {
        // The server fails the connection: close with the predicted code, then EOF. Replies to
        // earlier messages may be dropped (a failure discards waiting data), never reordered.
        outcome = `close ${prediction.error.closeCode}`;
        const last = await read((e) => e.type === "close");
        if (last.type !== "close") {
          fail(ctx(`expected close ${prediction.error.closeCode}, got EOF`));
        }
        assertEquals(last.code, prediction.error.closeCode, ctx("close code"));
        assert(isPrefix(data, expected.data), ctx("echoes before the failure are in order"));
        assert(
          isPongSubsequence(pongs, expected.pongs, false),
          ctx("pongs before the failure are in order"),
        );
        assertEquals((await read(() => false)).type, "eof", ctx("EOF after the close frame"));
      } else if (prediction.closedAt !== null) {
        // The client closed: every reply, then its close code echoed, then EOF.
        outcome = "client close";
        const close = prediction.events.at(-1) as { type: "close"; code: number; reason: string };
        const last = await read((e) => e.type === "close");
        if (last.type !== "close") fail(ctx("expected the close echo, got EOF"));
        assertEquals([last.code, last.reason], [close.code, close.reason], ctx("close echo"));
        assertEquals(data, expected.data, ctx("every echo before the close"));
        assert(
          isPongSubsequence(pongs, expected.pongs, true),
          ctx("pongs in order, the last ping answered, before the close"),
        );
        assertEquals((await read(() => false)).type, "eof", ctx("EOF after the close echo"));
      } else if (probe) {
        // A valid stream: every echo in order, the probe last, every pong, and still open.
        outcome = "echoed";
        const last = await read((e) => e.type === "text" && e.data === probeText);
        if (last.type === "eof") fail(ctx("connection closed before the probe's echo"));
        assertEquals(data, expected.data, ctx("every echo, in order"));
        assert(
          isPongSubsequence(pongs, expected.pongs, true),
          ctx("pongs in order, the last ping answered"),
        );
      } else {
        // The stream ends inside a frame: the server answers what came before, then waits.
        outcome = "waiting";
        if (expected.data.length + expected.pongs.length > 0) {
          const lastPong = expected.pongs.at(-1);
          const last = await read(() =>
            data.length >= expected.data.length &&
            (lastPong === undefined || (pongs.length > 0 && samePayload(pongs.at(-1)!, lastPong)))
          );
          if (last.type === "eof") fail(ctx("connection closed while a frame was incomplete"));
        }
        assertEquals(data, expected.data, ctx("the echoes of complete messages"));
        assert(
          isPongSubsequence(pongs, expected.pongs, true),
          ctx("the pongs of complete pings, in order, the last one answered"),
        );
      }
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
      client.close();
      const closed = await waitForLogSince(
        server,
        from,
        `connection.closed client=${id} `,
        STEP_MS,
      );
      assert(!closed.includes("internal"), ctx(closed));
    } finally {
      client.close();
    }
    if (i % 25 === 24) await nextPush(ctx(`after iteration ${i}`));
  }
  const elapsed = performance.now() - started;

  await nextPush("after the fuzzing");
  assertGreater(pushes, pushesBefore, "demo pushes kept arriving");
  assertEquals(strange, [], "the healthy client only got demo lines");
  assertEquals(healthy.readyState, WebSocket.OPEN, "the healthy client is still connected");
  assertEquals(server.ws.clients.size, 1, "only the healthy client is left");
  const errors = server.logs.filter((line) => / (error|fatal) /.test(line.slice(0, 40)));
  assertEquals(errors, [], "no error was logged");
  for (const outcome of ["echoed", "waiting", "close 1002"]) {
    assertGreater(
      outcomes.get(outcome) ?? 0,
      0,
      `some iterations ended "${outcome}": ${[...outcomes]}`,
    );
  }
  healthy.close();
  await healthyClosed;
  console.log(
    `fuzz_socket: seed=${seed} ${ITERATIONS} connections in ${Math.round(elapsed)} ms, ` +
      `${pushes - pushesBefore} demo pushes meanwhile, outcomes ${JSON.stringify([...outcomes])}`,
  );
});
