/**
 * A seeded, reproducible fuzz test of the sans-I/O reader (FrameParser + MessageReader, role
 * "server"). Thousands of generated, faulty, mutated and random client streams per run, each fed
 * whole, in random chunks through one reused read buffer (as the connection does), and byte by
 * byte. Properties:
 *
 * - (a) only ProtocolError is ever thrown, with the close code PROTOCOL_FAILURES gives its failure
 *   (1002, 1007 or 1009);
 * - (b) the bytes held (reader.bufferedBytes) never exceed 2 × maxMessageBytes + 14, after any
 *   chunk and inside any event callback;
 * - (c) every split yields the same events and the same failure, detected at the same byte;
 * - (d) generated streams yield exactly the expected events, and streams with one fault fail with
 *   that fault, detected within the expected bytes: a header fault (fragmentation rules and the
 *   fragment limit included) before any payload byte, invalid UTF-8 on the invalid byte itself
 *   even mid-frame, other frame faults on the frame's last byte.
 *
 * Replay a failure with the seed it prints:
 * `PUSH_FUZZ_SEED=<seed> deno test --allow-env=PUSH_FUZZ_SEED tests/protocol/fuzz_test.ts`.
 */
import { assertEquals, assertGreater, fail } from "@std/assert";
import { PROTOCOL_FAILURES, ProtocolError } from "../../src/protocol/errors.ts";
import { MessageReader, type WebSocketEvent } from "../../src/protocol/message.ts";
import { mutate, randomChunks } from "../support/fuzz_mutate.ts";
import { hexPreview } from "../support/bytes.ts";
import { generateRandomFrames } from "../support/fuzz_frames.ts";
import {
  FUZZ_MAX_FRAGMENTS,
  type GeneratedStream,
  generateFaultyStream,
  generateValidStream,
} from "../support/fuzz_streams.ts";
import { deriveSeed, fuzzSeeds, Rng } from "../support/rng.ts";

const { seeds, source } = fuzzSeeds();
/** Streams at most this long are also fed one byte at a time. */
const BYTE_BY_BYTE_MAX = 16 * 1024;
const CLOSE_CODES = new Set([1002, 1007, 1009]);

/** What one feeding of a stream produced. */
interface Outcome {
  events: WebSocketEvent[];
  /** The failure thrown, or null when every chunk was accepted. */
  failure: string | null;
  /** The byte offsets [first, last] of the chunk that threw. */
  errorRange: [number, number] | null;
  /** The most bytes the reader held at any point. */
  maxBuffered: number;
}

/** Context for failure messages, built only when something fails. */
type Context = () => string;

function describe(
  seed: number,
  iteration: number,
  limit: number,
  notes: string[],
  bytes: Uint8Array,
) {
  return () =>
    `seed=${seed} (${source}; replay with PUSH_FUZZ_SEED=${seed}) iteration=${iteration} ` +
    `limit=${limit} stream=[${notes.join(" ")}] bytes=${hexPreview(bytes)}`;
}

/** Asserts property (a) for a thrown value and returns it as a ProtocolError. */
function checkThrown(err: unknown, ctx: Context, how: string): ProtocolError {
  if (!(err instanceof ProtocolError)) {
    fail(`${ctx()} (${how}): threw ${err instanceof Error ? err.stack : String(err)}`);
  }
  const entry = PROTOCOL_FAILURES[err.failure];
  if (
    entry === undefined || err.closeCode !== entry[0] || err.message !== entry[1] ||
    !CLOSE_CODES.has(err.closeCode)
  ) {
    fail(
      `${ctx()} (${how}): ${err.failure} came with close code ${err.closeCode} "${err.message}"`,
    );
  }
  return err;
}

/**
 * Feeds `chunks` to a new server-role reader. With `reuse`, every chunk is copied into one read
 * buffer that is scribbled over after each push, as the connection reuses its buffer: events
 * must not keep views of it.
 */
function feed(
  chunks: Uint8Array[],
  limit: number,
  ctx: Context,
  how: string,
  reuse: boolean,
): Outcome {
  const events: WebSocketEvent[] = [];
  const bound = 2 * limit + 14;
  let maxBuffered = 0;
  let worst = "";
  const sample = (where: string) => {
    const held = reader.bufferedBytes;
    if (held > maxBuffered) {
      maxBuffered = held;
      if (held > bound && worst === "") worst = `${held} bytes held ${where}`;
    }
  };
  const reader: MessageReader = new MessageReader(
    { role: "server", maxMessageBytes: limit, maxFragments: FUZZ_MAX_FRAGMENTS },
    (e) => {
      events.push(e);
      sample(`in the callback of event ${events.length}`);
    },
  );
  let scratch = new Uint8Array(0);
  if (reuse) {
    let longest = 0;
    for (const c of chunks) longest = Math.max(longest, c.length);
    scratch = new Uint8Array(longest);
  }
  let offset = 0;
  let failure: string | null = null;
  let errorRange: [number, number] | null = null;
  for (const chunk of chunks) {
    let input = chunk;
    if (reuse) {
      scratch.set(chunk);
      input = scratch.subarray(0, chunk.length);
    }
    try {
      reader.push(input);
    } catch (err) {
      failure = checkThrown(err, ctx, how).failure;
      errorRange = [offset, offset + chunk.length - 1];
      break;
    } finally {
      if (reuse) scratch.fill(0xa5, 0, chunk.length);
    }
    sample(`after the chunk ending at byte ${offset + chunk.length}`);
    offset += chunk.length;
  }
  if (worst !== "") fail(`${ctx()} (${how}): memory bound ${bound} exceeded: ${worst}`);
  return { events, failure, errorRange, maxBuffered };
}

/** The offset of the byte on which the reader fails, by bisecting over prefixes fed whole. */
function errorOffset(bytes: Uint8Array, limit: number, ctx: Context): number {
  const throwsOn = (length: number) =>
    feed([bytes.subarray(0, length)], limit, ctx, `prefix ${length}`, false).failure !== null;
  let lo = 1;
  let hi = bytes.length; // the whole stream throws
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (throwsOn(mid)) hi = mid;
    else lo = mid + 1;
  }
  return lo - 1;
}

function sameEvents(
  actual: WebSocketEvent[],
  expected: WebSocketEvent[],
  ctx: Context,
  how: string,
) {
  try {
    assertEquals(actual, expected);
  } catch (err) {
    fail(`${ctx()} (${how}): events differ:\n${(err as Error).message}`);
  }
}

/**
 * Feeds `bytes` whole, in random chunks through a reused buffer, and byte by byte when short;
 * checks properties (a)–(c) and returns the whole-stream outcome with the failing byte's offset.
 */
function checkStream(
  rng: Rng,
  bytes: Uint8Array,
  limit: number,
  ctx: Context,
): Outcome & { errorAt: number | null } {
  const whole = feed([bytes], limit, ctx, "whole", false);
  const feedings: [string, Outcome][] = [];
  for (let i = 0; i < 2; i++) {
    const chunks = randomChunks(rng, bytes);
    const label = `random split ${i + 1} (${chunks.map((c) => c.length).join(",")})`;
    feedings.push([label, feed(chunks, limit, ctx, label, true)]);
  }
  let errorAt: number | null = null;
  if (bytes.length <= BYTE_BY_BYTE_MAX) {
    const single: Uint8Array[] = [];
    for (let i = 0; i < bytes.length; i++) single.push(bytes.subarray(i, i + 1));
    const outcome = feed(single, limit, ctx, "byte by byte", true);
    feedings.push(["byte by byte", outcome]);
    if (outcome.errorRange) errorAt = outcome.errorRange[0];
  } else if (whole.failure !== null) {
    errorAt = errorOffset(bytes, limit, ctx);
  }
  for (const [label, outcome] of feedings) {
    sameEvents(outcome.events, whole.events, ctx, label);
    if (outcome.failure !== whole.failure) {
      fail(`${ctx()} (${label}): failure ${outcome.failure}, whole stream: ${whole.failure}`);
    }
    if (errorAt !== null) {
      const [first, last] = outcome.errorRange!;
      if (errorAt < first || errorAt > last) {
        fail(`${ctx()} (${label}): failed on bytes ${first}..${last}, not on byte ${errorAt}`);
      }
    }
  }
  return { ...whole, errorAt };
}

/** Checks (d): a generated stream's outcome is the one its generator expects. */
function checkExpected(
  generated: GeneratedStream,
  outcome: Outcome & { errorAt: number | null },
  ctx: Context,
) {
  const { expected } = generated;
  sameEvents(outcome.events, expected.events, ctx, "expected events");
  if (outcome.failure !== (expected.failure ?? null)) {
    fail(`${ctx()}: failure ${outcome.failure}, expected ${expected.failure ?? "none"}`);
  }
  if (expected.failAt) {
    const [first, last] = expected.failAt;
    const at = outcome.errorAt;
    if (at === null || at < first || at > last) {
      fail(
        `${ctx()}: ${outcome.failure} detected at byte ${at}, expected within ${first}..${last}`,
      );
    }
  }
}

function pickLimit(rng: Rng): number {
  return rng.weighted([[8, 4096], [1, 125], [1, 65536 + 16]]);
}

/** Runs `iterations` streams per seed, each from its own derived seed; returns how many ran. */
function runFuzz(
  kind: number,
  iterations: number,
  one: (rng: Rng, limit: number, seed: number, iteration: number) => void,
): number {
  let ran = 0;
  for (const seed of seeds) {
    for (let i = 0; i < iterations; i++) {
      const rng = new Rng(deriveSeed(deriveSeed(seed, kind), i));
      one(rng, pickLimit(rng), seed, i);
      ran++;
    }
  }
  return ran;
}

Deno.test("fuzz: valid client streams yield exactly the expected events however they are split", () => {
  let messages = 0;
  const ran = runFuzz(1, 600, (rng, limit, seed, i) => {
    const generated = generateValidStream(rng, limit);
    const ctx = describe(seed, i, limit, generated.notes, generated.bytes);
    const outcome = checkStream(rng, generated.bytes, limit, ctx);
    checkExpected(generated, outcome, ctx);
    messages += outcome.events.length;
  });
  assertGreater(messages, ran, "the generator produced events");
});

Deno.test("fuzz: streams with one fault fail with its close code, on the expected bytes, however split", () => {
  const seen = new Set<string>();
  runFuzz(2, 800, (rng, limit, seed, i) => {
    const generated = generateFaultyStream(rng, limit);
    const ctx = describe(seed, i, limit, generated.notes, generated.bytes);
    const outcome = checkStream(rng, generated.bytes, limit, ctx);
    checkExpected(generated, outcome, ctx);
    seen.add(outcome.failure!);
  });
  assertEquals(
    [...seen].sort(),
    Object.keys(PROTOCOL_FAILURES).sort(),
    "every failure of the table was exercised",
  );
});

Deno.test("fuzz: mutated streams only fail with a ProtocolError, within the memory bound, whatever the split", () => {
  const failures = new Map<string, number>();
  runFuzz(3, 1200, (rng, limit, seed, i) => {
    const base = rng.chance(0.5)
      ? generateValidStream(rng, limit)
      : generateFaultyStream(rng, limit);
    const { bytes, notes } = mutate(rng, base.bytes);
    const ctx = describe(seed, i, limit, [...base.notes, "mutated:", ...notes], bytes);
    const outcome = checkStream(rng, bytes, limit, ctx);
    const key = outcome.failure ?? "none";
    failures.set(key, (failures.get(key) ?? 0) + 1);
  });
  console.log(
    `seeds ${seeds.join(", ")} (${source}); mutated outcomes: ${JSON.stringify([...failures])}`,
  );
  assertGreater(failures.get("none") ?? 0, 0, "some mutated streams stay acceptable");
  assertGreater(failures.size, 5, `mutations reach many failures: ${[...failures.keys()]}`);
});

Deno.test("fuzz: random frames and random bytes only fail with a ProtocolError, whatever the split", () => {
  runFuzz(4, 800, (rng, limit, seed, i) => {
    const bytes = rng.chance(0.6) ? generateRandomFrames(rng, limit) : rng.bytes(rng.int(600));
    const ctx = describe(seed, i, limit, ["random"], bytes);
    checkStream(rng, bytes, limit, ctx);
  });
});
