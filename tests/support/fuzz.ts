/**
 * Fuzzing support: a seeded PRNG, generators of client frame streams that know the outcome the
 * server must reach (events, or the failure and the bytes where it must be detected), mutators,
 * random chunkings, and the socket helpers the fuzz and hostile-client tests share.
 *
 * Everything here is deterministic given a seed, so a failure prints a seed that reproduces it:
 * `PUSH_FUZZ_SEED=<seed> deno test --allow-env=PUSH_FUZZ_SEED ...`.
 *
 * The generators encode frames with their own encoder and check UTF-8 with their own validator
 * (from the Unicode well-formed byte table), so a bug in the code under test is not mirrored in
 * the oracle.
 *
 * @module
 */
import { ProtocolError, type ProtocolFailure } from "../../src/protocol/errors.ts";
import { type Frame, FrameParser } from "../../src/protocol/frame_parser.ts";
import { MessageReader, type WebSocketEvent } from "../../src/protocol/message.ts";
import type { TestServer } from "./server.ts";

const encoder = new TextEncoder();

// ---------------------------------------------------------------------------------------------
// Seeds and the PRNG

/** The seed used when `PUSH_FUZZ_SEED` is not set. */
export const DEFAULT_FUZZ_SEED = 0x5eed2026;

/**
 * A seeded PRNG (mulberry32): fast, 32-bit state, good enough to drive a fuzzer, and the same
 * sequence on every machine.
 */
export class Rng {
  /** The seed this generator started from. */
  readonly seed: number;
  #state: number;

  /** Creates a generator from a 32-bit seed. */
  constructor(seed: number) {
    this.seed = seed >>> 0;
    this.#state = this.seed;
  }

  /** A 32-bit unsigned integer. */
  uint32(): number {
    let t = (this.#state = (this.#state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    return this.uint32() / 4294967296;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** An integer in [min, max]. */
  range(min: number, max: number): number {
    return min + this.int(max - min + 1);
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.next() < p;
  }

  /** One element of `items`. */
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }

  /** One value of `[weight, value]` pairs, chosen in proportion to the weights. */
  weighted<T>(entries: readonly (readonly [number, T])[]): T {
    let total = 0;
    for (const [w] of entries) total += w;
    let r = this.next() * total;
    for (const [w, v] of entries) {
      if ((r -= w) < 0) return v;
    }
    return entries[entries.length - 1][1];
  }

  /** `n` random bytes. */
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i += 4) {
      let word = this.uint32();
      for (let j = i; j < i + 4 && j < n; j++, word >>>= 8) out[j] = word & 0xff;
    }
    return out;
  }
}

/** A well-mixed 32-bit seed for sub-run `index` of `seed` (so one iteration can be replayed). */
export function deriveSeed(seed: number, index: number): number {
  let h = (seed ^ Math.imul(index + 1, 0x9e3779b9)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * The seeds of a fuzz run: `PUSH_FUZZ_SEED` alone when it is set (decimal or 0x-hex; reading it
 * needs `--allow-env=PUSH_FUZZ_SEED`, and a missing permission counts as unset), else
 * {@linkcode DEFAULT_FUZZ_SEED} and `extra` seeds derived from it.
 */
export function fuzzSeeds(extra = 3): { seeds: number[]; source: string } {
  let value: string | undefined;
  try {
    value = Deno.env.get("PUSH_FUZZ_SEED");
  } catch {
    value = undefined; // no env permission: use the defaults
  }
  if (value !== undefined && value.trim() !== "") {
    const seed = Number(value.trim());
    if (!Number.isSafeInteger(seed) || seed < 0) {
      throw new Error(`PUSH_FUZZ_SEED must be a non-negative integer, got "${value}"`);
    }
    return { seeds: [seed >>> 0], source: "PUSH_FUZZ_SEED" };
  }
  const seeds = [DEFAULT_FUZZ_SEED];
  for (let i = 0; i < extra; i++) seeds.push(deriveSeed(DEFAULT_FUZZ_SEED, 1000 + i));
  return { seeds, source: "default" };
}

// ---------------------------------------------------------------------------------------------
// An independent UTF-8 validator (Unicode Table 3-7, the WHATWG decoder's error points)

/**
 * A streaming UTF-8 validator: {@linkcode Utf8Validator.feed} returns the index of the first
 * byte at which the stream stops being well-formed, the byte where a fatal decoder fails.
 */
export class Utf8Validator {
  #need = 0;
  #lower = 0x80;
  #upper = 0xbf;

  /** Index in `bytes` of the first ill-formed byte, or -1 when all is well so far. */
  feed(bytes: Uint8Array): number {
    for (let i = 0; i < bytes.length; i++) {
      const b = bytes[i];
      if (this.#need === 0) {
        if (b <= 0x7f) continue;
        if (b >= 0xc2 && b <= 0xdf) {
          this.#need = 1;
        } else if (b >= 0xe0 && b <= 0xef) {
          this.#need = 2;
          if (b === 0xe0) this.#lower = 0xa0;
          if (b === 0xed) this.#upper = 0x9f;
        } else if (b >= 0xf0 && b <= 0xf4) {
          this.#need = 3;
          if (b === 0xf0) this.#lower = 0x90;
          if (b === 0xf4) this.#upper = 0x8f;
        } else {
          return i;
        }
      } else {
        if (b < this.#lower || b > this.#upper) return i;
        this.#lower = 0x80;
        this.#upper = 0xbf;
        this.#need--;
      }
    }
    return -1;
  }

  /** Whether the stream ends on a character boundary. */
  get complete(): boolean {
    return this.#need === 0;
  }
}

/** Whether `bytes` are well-formed UTF-8. */
export function isUtf8(bytes: Uint8Array): boolean {
  const v = new Utf8Validator();
  return v.feed(bytes) === -1 && v.complete;
}

// ---------------------------------------------------------------------------------------------
// An independent client frame encoder

/** Everything a client frame header can say, including lies. */
export interface FrameSpec {
  /** The FIN bit. */
  fin: boolean;
  /** The 4-bit opcode, reserved ones included. */
  opcode: number;
  /** The bytes sent after the header (before masking). */
  payload: Uint8Array;
  /** The three RSV bits (0–7). */
  rsv?: number;
  /** The MASK bit (default true); when false, no masking key is sent. */
  masked?: boolean;
  /** The masking key (default 4 zero bytes). */
  mask?: Uint8Array;
  /** The announced payload length when it differs from `payload.length`. */
  claimedLength?: bigint;
}

/** The header length of `spec` as encoded (2 + extended length + mask). */
export function specHeaderLength(spec: FrameSpec): number {
  const length = spec.claimedLength ?? BigInt(spec.payload.length);
  const ext = length < 126n ? 0 : length < 0x10000n ? 2 : 8;
  return 2 + ext + (spec.masked === false ? 0 : 4);
}

/** Encodes `spec` with the minimal length form for its announced length. */
export function encodeSpec(spec: FrameSpec): Uint8Array {
  const length = spec.claimedLength ?? BigInt(spec.payload.length);
  const masked = spec.masked !== false;
  const head = specHeaderLength(spec);
  const out = new Uint8Array(head + spec.payload.length);
  out[0] = (spec.fin ? 0x80 : 0) | ((spec.rsv ?? 0) & 7) << 4 | (spec.opcode & 0x0f);
  const view = new DataView(out.buffer);
  let at = 2;
  if (length < 126n) {
    out[1] = Number(length);
  } else if (length < 0x10000n) {
    out[1] = 126;
    view.setUint16(2, Number(length));
    at = 4;
  } else {
    out[1] = 127;
    view.setBigUint64(2, length);
    at = 10;
  }
  if (masked) {
    out[1] |= 0x80;
    const mask = spec.mask ?? new Uint8Array(4);
    out.set(mask.subarray(0, 4), at);
    for (let i = 0; i < spec.payload.length; i++) out[head + i] = spec.payload[i] ^ mask[i & 3];
  } else {
    out.set(spec.payload, head);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Streams with a known outcome

/** What a server-role reader must make of a generated stream. */
export interface Expected {
  /** Every event, in order (before the failure, if any). */
  events: WebSocketEvent[];
  /** The failure the stream must end with, if any. */
  failure?: ProtocolFailure;
  /** The byte offsets [first, last] (inclusive) between which the failure must be detected. */
  failAt?: [number, number];
}

/** A generated client byte stream and what must come of it. */
export interface GeneratedStream {
  /** The bytes a client sends after the handshake. */
  bytes: Uint8Array;
  /** What the reader must yield. */
  expected: Expected;
  /** A short description of what was generated, for failure messages. */
  notes: string[];
}

/**
 * The fragment limit the fuzzed readers run with: low enough that a generated fault reaches it
 * in a few frames, above the 8 frames a generated message has before its fault (7 when valid).
 */
export const FUZZ_MAX_FRAGMENTS = 16;

const BOUNDARY_SIZES = [0, 1, 2, 125, 126, 127, 128, 65535, 65536];
const VALID_CLOSE_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4000, 4999];
const INVALID_CLOSE_CODES = [
  0,
  1,
  999,
  1004,
  1005,
  1006,
  1012,
  1013,
  1014,
  1015,
  1016,
  2000,
  2999,
  5000,
  0xffff,
];
/** The close codes a peer may send (README: 1000–1003, 1007–1011, 3000–4999). */
const VALID_CLOSE_CODE = (code: number) =>
  (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
  (code >= 3000 && code <= 4999);
const RESERVED_OPCODES = [3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf];
/** Byte sequences that are not UTF-8 wherever they stand (after a complete character). */
const INVALID_UTF8: readonly number[][] = [
  [0x80],
  [0xbf],
  [0xc0, 0x80],
  [0xc1, 0xbf],
  [0xe0, 0x80, 0x80],
  [0xe0, 0x9f, 0xbf],
  [0xed, 0xa0, 0x80],
  [0xed, 0xbf, 0xbf],
  [0xf0, 0x80, 0x80, 0x80],
  [0xf0, 0x8f, 0xbf, 0xbf],
  [0xf4, 0x90, 0x80, 0x80],
  [0xf5, 0x80, 0x80, 0x80],
  [0xf8, 0x88, 0x80, 0x80, 0x80],
  [0xfe],
  [0xff],
  [0xe2, 0x41],
  [0xf0, 0x9f, 0x41],
  [0xc3, 0xc3],
];
/** Sequences that are only wrong because the message ends inside them. */
const TRUNCATED_UTF8: readonly number[][] = [[0xc3], [0xe2, 0x82], [0xf0, 0x9f, 0x98], [0xf4]];

/** A payload size biased to the edges: length-form boundaries and the message limit. */
export function pickSize(rng: Rng, limit: number, max = limit): number {
  const size = rng.weighted<() => number>([
    [3, () => rng.pick(BOUNDARY_SIZES)],
    [2, () => rng.pick([limit - 1, limit, limit + 1, limit >> 1])],
    [4, () => rng.int(130)],
    [2, () => rng.int(limit + 1)],
  ])();
  return size < 0 ? 0 : size > max ? rng.int(max + 1) : size;
}

const SPECIAL_3 = [0x800, 0xd7ff, 0xe000, 0xfeff, 0xfffd, 0xfffe, 0xffff];
const SPECIAL_4 = [0x10000, 0x1f600, 0x10ffff];

/** One random code point whose UTF-8 takes at most `room` bytes (room ≥ 1). */
function randomCodePoint(rng: Rng, room: number): number {
  const r = rng.int(10);
  const width = Math.min(room, r < 5 ? 1 : r < 7 ? 2 : r < 9 ? 3 : 4);
  const special = rng.int(10) < 2;
  switch (width) {
    case 1:
      return special ? rng.pick([0, 0x7f]) : rng.range(0x20, 0x7e);
    case 2:
      return special ? rng.pick([0x80, 0x7ff]) : rng.range(0x80, 0x7ff);
    case 3: {
      const c = special ? rng.pick(SPECIAL_3) : rng.range(0x800, 0xffff);
      return c >= 0xd800 && c <= 0xdfff ? 0xfeff : c; // no lone surrogates: they are not UTF-8
    }
    default:
      return special ? rng.pick(SPECIAL_4) : rng.range(0x10000, 0x10ffff);
  }
}

/** A random string whose UTF-8 encoding is exactly `bytes` long (BOMs and edges included). */
export function randomText(rng: Rng, bytes: number): string {
  const codes: number[] = [];
  let room = bytes;
  if (room >= 3 && rng.chance(0.1)) {
    codes.push(0xfeff); // a leading BOM must be kept, not stripped
    room -= 3;
  }
  while (room > 0) {
    const code = randomCodePoint(rng, room);
    codes.push(code);
    room -= code < 0x80 ? 1 : code < 0x800 ? 2 : code < 0x10000 ? 3 : 4;
  }
  let out = "";
  for (let i = 0; i < codes.length; i += 4096) {
    out += String.fromCodePoint(...codes.slice(i, i + 4096));
  }
  return out;
}

/** Splits `bytes` into `count` parts at random points (empty parts allowed). */
function splitInto(rng: Rng, bytes: Uint8Array, count: number): Uint8Array[] {
  const cuts = [0, bytes.length];
  for (let i = 1; i < count; i++) cuts.push(rng.int(bytes.length + 1));
  cuts.sort((a, b) => a - b);
  const parts: Uint8Array[] = [];
  for (let i = 0; i < count; i++) parts.push(bytes.slice(cuts[i], cuts[i + 1]));
  return parts;
}

function randomMask(rng: Rng): Uint8Array {
  return rng.chance(0.05) ? new Uint8Array(4) : rng.bytes(4);
}

/** Builds a stream frame by frame, tracking offsets and the events each frame yields. */
class StreamBuilder {
  readonly parts: Uint8Array[] = [];
  readonly events: WebSocketEvent[] = [];
  readonly notes: string[] = [];
  length = 0;
  /** The fragmented message in progress. */
  open: { opcode: number; bytes: number; utf8: Utf8Validator; parts: Uint8Array[] } | null = null;

  constructor(readonly rng: Rng, readonly limit: number) {}

  /** Appends a frame; returns its start offset and header end (exclusive). */
  frame(spec: FrameSpec): { start: number; end: number } {
    const bytes = encodeSpec({ mask: randomMask(this.rng), ...spec });
    const start = this.length;
    this.parts.push(bytes);
    this.length += bytes.length;
    return { start, end: start + specHeaderLength(spec) };
  }

  raw(bytes: Uint8Array): void {
    this.parts.push(bytes);
    this.length += bytes.length;
  }

  /** A valid ping or pong. */
  control(): void {
    const opcode = this.rng.chance(0.6) ? 0x9 : 0xa;
    const payload = this.rng.bytes(
      this.rng.chance(0.3) ? this.rng.pick([0, 125]) : this.rng.int(126),
    );
    this.frame({ fin: true, opcode, payload });
    this.events.push(opcode === 0x9 ? { type: "ping", payload } : { type: "pong", payload });
    this.notes.push(`${opcode === 0x9 ? "ping" : "pong"}(${payload.length})`);
  }

  /** A valid close frame; later bytes must be ignored. */
  close(): void {
    if (this.rng.chance(0.2)) {
      this.frame({ fin: true, opcode: 0x8, payload: new Uint8Array(0) });
      this.events.push({ type: "close", code: 1005, reason: "" });
      this.notes.push("close()");
      return;
    }
    const code = this.rng.pick(VALID_CLOSE_CODES);
    const reason = randomText(this.rng, this.rng.chance(0.2) ? 123 : this.rng.int(40));
    const payload = new Uint8Array(2 + encoder.encode(reason).length);
    new DataView(payload.buffer).setUint16(0, code);
    payload.set(encoder.encode(reason), 2);
    this.frame({ fin: true, opcode: 0x8, payload });
    this.events.push({ type: "close", code, reason });
    this.notes.push(`close(${code}, ${payload.length - 2} bytes)`);
  }

  /**
   * A valid data message of `size` bytes, whole or fragmented, with controls between fragments.
   * With `leaveOpen`, the last fragment is not sent and the message stays in progress.
   */
  message(size: number, leaveOpen = false): void {
    const rng = this.rng;
    const opcode = rng.chance(0.5) ? 0x1 : 0x2;
    const text = opcode === 0x1 ? randomText(rng, size) : "";
    const data = opcode === 0x1 ? encoder.encode(text) : rng.bytes(size);
    const count = leaveOpen ? rng.range(1, 4) : rng.chance(0.5) ? 1 : rng.range(2, 7);
    const parts = splitInto(rng, data, count);
    this.notes.push(
      `${opcode === 1 ? "text" : "binary"}(${size} in ${count}${leaveOpen ? "+" : ""})`,
    );
    const utf8 = new Utf8Validator();
    for (let i = 0; i < parts.length; i++) {
      const fin = !leaveOpen && i === parts.length - 1;
      this.frame({ fin, opcode: i === 0 ? opcode : 0x0, payload: parts[i] });
      utf8.feed(parts[i]);
      if (!fin && rng.chance(0.3)) this.control();
    }
    if (leaveOpen) {
      this.open = { opcode, bytes: size, utf8, parts };
    } else {
      this.events.push(opcode === 0x1 ? { type: "text", data: text } : { type: "binary", data });
    }
  }

  /** A valid item: a message (biased sizes, never over the limit) or a ping/pong. */
  item(): void {
    if (this.rng.chance(0.7)) this.message(pickSize(this.rng, this.limit));
    else this.control();
  }

  /** Random trailing bytes: junk, or frames (valid or not). */
  trailer(): void {
    const rng = this.rng;
    if (rng.chance(0.5)) {
      this.raw(rng.bytes(rng.range(1, 64)));
    } else {
      this.raw(encodeSpec({
        fin: rng.chance(0.8),
        opcode: rng.pick([0, 1, 2, 3, 8, 9, 0xa, 0xf]),
        payload: rng.bytes(rng.int(200)),
        masked: rng.chance(0.8),
        mask: rng.bytes(4),
        rsv: rng.chance(0.8) ? 0 : rng.range(1, 7),
      }));
    }
    this.notes.push("trailer");
  }

  bytes(): Uint8Array {
    const out = new Uint8Array(this.length);
    let at = 0;
    for (const p of this.parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }
}

/**
 * A valid client stream: messages (text with edge characters, binary, whole or fragmented with
 * pings and pongs between the fragments, sizes biased to 0/125/126/127/65535/65536 and the
 * limit), standalone pings and pongs, and maybe a close frame followed by bytes to ignore.
 */
export function generateValidStream(rng: Rng, limit: number): GeneratedStream {
  const b = new StreamBuilder(rng, limit);
  const items = rng.range(0, 8);
  for (let i = 0; i < items; i++) b.item();
  if (rng.chance(0.3)) {
    b.close();
    if (rng.chance(0.5)) b.trailer();
  }
  return { bytes: b.bytes(), expected: { events: b.events }, notes: b.notes };
}

type FaultKind =
  | "reserved-bits"
  | "unknown-opcode"
  | "control-fragmented"
  | "control-too-long"
  | "unmasked-frame"
  | "length-top-bit"
  | "message-too-big"
  | "unexpected-continuation"
  | "expected-continuation"
  | "bad-utf8-text"
  | "bad-close-payload"
  | "bad-close-code"
  | "bad-utf8-close"
  | "too-many-fragments";

const FAULTS: readonly FaultKind[] = [
  "reserved-bits",
  "unknown-opcode",
  "control-fragmented",
  "control-too-long",
  "unmasked-frame",
  "length-top-bit",
  "message-too-big",
  "unexpected-continuation",
  "expected-continuation",
  "bad-utf8-text",
  "bad-close-payload",
  "bad-close-code",
  "bad-utf8-close",
  "too-many-fragments",
];

/**
 * A stream that is valid up to exactly one fault, with the failure it must end in and the
 * bytes where it must be detected: a header fault no later than the end of that frame's header
 * (so nothing of an oversized payload is buffered), a frame fault on the frame's last byte.
 */
export function generateFaultyStream(rng: Rng, limit: number): GeneratedStream {
  const b = new StreamBuilder(rng, limit);
  const items = rng.range(0, 4);
  for (let i = 0; i < items; i++) b.item();
  if (rng.chance(0.4)) b.message(pickSize(rng, limit), true);
  const open = b.open;
  let kind = rng.pick(FAULTS);
  const remaining = limit - (open?.bytes ?? 0);
  if (kind === "expected-continuation" && !open) kind = "unexpected-continuation";
  else if (kind === "unexpected-continuation" && open) kind = "expected-continuation";
  if (kind === "bad-utf8-text" && ((open && open.opcode !== 0x1) || remaining < 5)) {
    kind = "bad-utf8-close"; // the invalid bytes must fit the message budget
  }
  b.notes.push(`fault:${kind}`);
  const small = () => rng.bytes(Math.min(remaining, rng.int(40)));
  /** A valid frame of a random kind that fits here (data type depends on the open message). */
  const anyFrame = (): FrameSpec => {
    const which = rng.int(3);
    if (which === 0) {
      return { fin: true, opcode: rng.pick([0x8, 0x9, 0xa]), payload: new Uint8Array(0) };
    }
    return { fin: rng.chance(0.5), opcode: open ? 0x0 : rng.pick([0x1, 0x2]), payload: small() };
  };
  let failure: ProtocolFailure;
  let failAt: [number, number];
  const headerFault = (spec: FrameSpec) => {
    const { start, end } = b.frame(spec);
    failAt = [start, end - 1];
  };
  const frameFault = (spec: FrameSpec) => {
    b.frame(spec);
    failAt = [b.length - 1, b.length - 1];
  };
  switch (kind) {
    case "reserved-bits":
      failure = kind;
      headerFault({ ...anyFrame(), rsv: rng.range(1, 7) });
      break;
    case "unknown-opcode":
      failure = kind;
      headerFault({ fin: rng.chance(0.7), opcode: rng.pick(RESERVED_OPCODES), payload: small() });
      break;
    case "control-fragmented":
      failure = kind;
      headerFault({
        fin: false,
        opcode: rng.pick([0x8, 0x9, 0xa]),
        payload: rng.bytes(rng.int(126)),
      });
      break;
    case "control-too-long": {
      failure = kind;
      const opcode = rng.pick([0x8, 0x9, 0xa]);
      if (rng.chance(0.5)) {
        headerFault({ fin: true, opcode, payload: rng.bytes(rng.range(126, 300)) });
      } else {headerFault({
          fin: true,
          opcode,
          payload: new Uint8Array(0),
          claimedLength: 1n << 40n,
        });}
      break;
    }
    case "unmasked-frame":
      failure = kind;
      headerFault({ ...anyFrame(), masked: false });
      break;
    case "length-top-bit":
      failure = kind;
      headerFault({
        fin: rng.chance(0.5),
        opcode: open ? 0x0 : rng.pick([0x1, 0x2]),
        payload: new Uint8Array(0),
        claimedLength: (1n << 63n) | BigInt(rng.int(0x7fffffff)),
      });
      break;
    case "message-too-big": {
      failure = kind;
      const opcode = open ? 0x0 : rng.pick([0x1, 0x2]);
      const fin = rng.chance(0.5);
      const over = remaining + 1 + (rng.chance(0.5) ? 0 : rng.int(100));
      if (rng.chance(0.5) && over <= 70_000) {
        headerFault({ fin, opcode, payload: rng.bytes(over) });
      } else {
        const claimed = rng.pick([BigInt(over), 65536n, 1n << 32n, 1n << 62n, (1n << 63n) - 1n]);
        headerFault({
          fin,
          opcode,
          payload: new Uint8Array(0),
          claimedLength: claimed > BigInt(remaining) ? claimed : BigInt(over),
        });
      }
      break;
    }
    // The fragmentation rules are checked on the header: the payload of a frame that cannot
    // belong where it stands is never buffered.
    case "unexpected-continuation":
      failure = kind;
      headerFault({ fin: rng.chance(0.5), opcode: 0x0, payload: small() });
      break;
    case "expected-continuation":
      failure = kind;
      headerFault({ fin: rng.chance(0.5), opcode: rng.pick([0x1, 0x2]), payload: small() });
      break;
    case "too-many-fragments": {
      failure = kind;
      // Frames valid on their own up to the limit (tiny or empty payloads within the budget),
      // then one more: its header is the fault.
      const opcode = open?.opcode ?? rng.pick([0x1, 0x2]);
      let frames = open ? open.parts.length : 0;
      let budget = remaining;
      while (frames < FUZZ_MAX_FRAGMENTS) {
        // Binary fragments carry a byte or two (so the growing buffer is exercised); text ones
        // are empty, as the open text may stop inside a character.
        const size = opcode === 0x2 ? Math.min(budget, rng.int(3)) : 0;
        budget -= size;
        b.frame({ fin: false, opcode: frames === 0 ? opcode : 0x0, payload: rng.bytes(size) });
        frames++;
        if (rng.chance(0.1)) b.control();
      }
      headerFault({
        fin: rng.chance(0.5),
        opcode: 0x0,
        payload: rng.bytes(Math.min(budget, rng.int(40))),
      });
      break;
    }
    case "bad-utf8-text": {
      failure = "bad-utf8";
      const truncated = rng.chance(0.3);
      const bad = Uint8Array.from(rng.pick(truncated ? TRUNCATED_UTF8 : INVALID_UTF8));
      const room = Math.max(0, remaining - bad.length);
      const before = encoder.encode(randomText(rng, rng.int(Math.min(room, 60) + 1)));
      const after = truncated
        ? new Uint8Array(0)
        : encoder.encode(randomText(rng, rng.int(Math.min(room - before.length, 60) + 1)));
      const data = new Uint8Array(before.length + bad.length + after.length);
      data.set(before);
      data.set(bad, before.length);
      data.set(after, before.length + bad.length);
      const utf8 = open?.utf8 ?? new Utf8Validator();
      const parts = splitInto(rng, data, rng.range(1, 4));
      for (let i = 0; i < parts.length; i++) {
        const fin = i === parts.length - 1;
        const opcode = open || i > 0 ? 0x0 : 0x1;
        const bad = utf8.feed(parts[i]);
        if (bad !== -1 || (fin && !utf8.complete)) {
          // Text is checked as its bytes arrive: detected on the first invalid byte itself,
          // in the middle of the frame if need be; a character cut short by the end of the
          // message, on the frame's last byte.
          const { end } = b.frame({ fin, opcode, payload: parts[i] });
          const at = bad !== -1 ? end + bad : b.length - 1;
          failAt = [at, at];
          break;
        }
        b.frame({ fin, opcode, payload: parts[i] });
        if (!fin && rng.chance(0.3)) b.control();
      }
      if (!failAt!) throw new Error("generator bug: the invalid UTF-8 was not detected");
      break;
    }
    case "bad-close-payload":
      failure = kind;
      frameFault({ fin: true, opcode: 0x8, payload: rng.bytes(1) });
      break;
    case "bad-close-code": {
      failure = kind;
      const code = rng.chance(0.7) ? rng.pick(INVALID_CLOSE_CODES) : rng.int(0x10000);
      if (VALID_CLOSE_CODE(code)) {
        // A random code that happens to be valid: make it a bad payload instead.
        failure = "bad-close-payload";
        frameFault({ fin: true, opcode: 0x8, payload: Uint8Array.of(code >> 8) });
        break;
      }
      const reason = encoder.encode(randomText(rng, rng.int(20)));
      const payload = new Uint8Array(2 + reason.length);
      new DataView(payload.buffer).setUint16(0, code);
      payload.set(reason, 2);
      frameFault({ fin: true, opcode: 0x8, payload });
      break;
    }
    case "bad-utf8-close": {
      failure = "bad-utf8";
      const bad = rng.pick([...INVALID_UTF8, ...TRUNCATED_UTF8]);
      const before = encoder.encode(randomText(rng, rng.int(60)));
      const payload = new Uint8Array(2 + before.length + bad.length);
      new DataView(payload.buffer).setUint16(0, rng.pick(VALID_CLOSE_CODES));
      payload.set(before, 2);
      payload.set(bad, 2 + before.length);
      frameFault({ fin: true, opcode: 0x8, payload });
      break;
    }
  }
  if (rng.chance(0.5)) b.trailer();
  return {
    bytes: b.bytes(),
    expected: { events: b.events, failure: failure!, failAt: failAt! },
    notes: b.notes,
  };
}

/**
 * Random frames with random header fields (reserved opcodes, RSV bits, missing masks, every
 * length form including non-minimal ones, lengths larger than the bytes that follow): no
 * expected outcome, but far likelier than random bytes to get past the first header checks.
 */
export function generateRandomFrames(rng: Rng, limit: number): Uint8Array {
  const parts: Uint8Array[] = [];
  const count = rng.range(1, 8);
  for (let i = 0; i < count; i++) {
    const opcode = rng.chance(0.8) ? rng.pick([0, 1, 2, 8, 9, 0xa]) : rng.int(16);
    const size = pickSize(rng, limit, 70_000);
    const b0 = (rng.chance(0.6) ? 0x80 : 0) | (rng.chance(0.9) ? 0 : rng.range(1, 7) << 4) | opcode;
    const masked = rng.chance(0.9);
    const form = rng.weighted([[8, "minimal"], [1, "16"], [1, "64"]] as const);
    const head: number[] = [b0];
    const m = masked ? 0x80 : 0;
    if (form === "16" || (form === "minimal" && size >= 126 && size < 0x10000)) {
      head.push(m | 126, (size >> 8) & 0xff, size & 0xff);
    } else if (form === "64" || (form === "minimal" && size >= 0x10000)) {
      head.push(
        m | 127,
        0,
        0,
        0,
        0,
        (size >>> 24) & 0xff,
        (size >> 16) & 0xff,
        (size >> 8) & 0xff,
        size & 0xff,
      );
    } else {
      head.push(m | size);
    }
    if (masked) head.push(...rng.bytes(4));
    parts.push(Uint8Array.from(head));
    const sent = rng.chance(0.85) ? size : rng.int(size + 1);
    parts.push(rng.bytes(sent));
  }
  return concatAll(parts);
}

/** Joins byte arrays. */
export function concatAll(parts: readonly Uint8Array[]): Uint8Array {
  let total = 0;
  for (const p of parts) total += p.length;
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Mutators and chunkings

/** Applies 1–4 random mutations: bit flips, truncation, insertions, deletions, overwrites. */
export function mutate(rng: Rng, input: Uint8Array): { bytes: Uint8Array; notes: string[] } {
  let bytes: Uint8Array = input.slice();
  const notes: string[] = [];
  const count = rng.range(1, 4);
  for (let m = 0; m < count; m++) {
    const at = rng.int(bytes.length + 1);
    const op = bytes.length === 0 ? "insert" : rng.pick([
      "flip",
      "flip",
      "flip-header",
      "truncate",
      "insert",
      "delete",
      "overwrite",
      "duplicate",
    ]);
    notes.push(`${op}@${at}`);
    switch (op) {
      case "flip": {
        const i = Math.min(at, bytes.length - 1);
        bytes[i] ^= 1 << rng.int(8);
        break;
      }
      case "flip-header": {
        // The first two bytes of a frame decide the most: flip a bit there.
        const i = rng.int(Math.min(2, bytes.length));
        bytes[i] ^= 1 << rng.int(8);
        break;
      }
      case "truncate":
        bytes = bytes.slice(0, at);
        break;
      case "insert": {
        const extra = rng.bytes(rng.range(1, 16));
        bytes = concatAll([bytes.subarray(0, at), extra, bytes.subarray(at)]);
        break;
      }
      case "delete":
        bytes = concatAll([bytes.subarray(0, at), bytes.subarray(at + rng.range(1, 16))]);
        break;
      case "overwrite":
        bytes.set(rng.bytes(Math.min(rng.range(1, 8), bytes.length - at)), at);
        break;
      case "duplicate": {
        const end = Math.min(bytes.length, at + rng.range(1, 64));
        bytes = concatAll([bytes.subarray(0, end), bytes.subarray(at, end), bytes.subarray(end)]);
        break;
      }
    }
  }
  return { bytes, notes };
}

/** Splits `bytes` into random chunks (mostly small, some large, some empty). */
export function randomChunks(rng: Rng, bytes: Uint8Array): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  let at = 0;
  while (at < bytes.length) {
    const size = rng.weighted<() => number>([
      [1, () => 0],
      [6, () => rng.range(1, 4)],
      [6, () => rng.range(1, 64)],
      [3, () => rng.range(1, 2048)],
      [1, () => bytes.length - at],
    ])();
    chunks.push(bytes.subarray(at, at + size));
    at += size;
  }
  return chunks;
}

/** Lower-case hex of up to `max` bytes, for failure messages. */
export function hexPreview(bytes: Uint8Array, max = 64): string {
  const shown = Array.from(bytes.subarray(0, max), (b) => b.toString(16).padStart(2, "0"));
  return shown.join(" ") + (bytes.length > max ? ` … (${bytes.length} bytes)` : "");
}

// ---------------------------------------------------------------------------------------------
// Predicting a server from its own sans-I/O reader (for the socket fuzz)

/** The frames a byte stream holds: the end offset of each complete frame, and any remainder. */
export function frameEnds(bytes: Uint8Array): { ends: number[]; rest: number } {
  const ends: number[] = [];
  let at = 0;
  while (at < bytes.length) {
    if (bytes.length - at < 2) break;
    const len7 = bytes[at + 1] & 0x7f;
    const ext = len7 === 126 ? 2 : len7 === 127 ? 8 : 0;
    const head = 2 + ext + (bytes[at + 1] & 0x80 ? 4 : 0);
    if (bytes.length - at < head) break;
    let length = len7;
    if (len7 === 126) length = (bytes[at + 2] << 8) | bytes[at + 3];
    if (len7 === 127) {
      const view = new DataView(bytes.buffer, bytes.byteOffset + at + 2, 8);
      length = Number(view.getBigUint64(0));
    }
    if (bytes.length - at - head < length) break;
    at += head + length;
    ends.push(at);
  }
  return { ends, rest: bytes.length - at };
}

/** What a `/echo` connection must do with a stream, according to the sans-I/O reader. */
export interface Prediction {
  /** The reader's events up to the failure or the close. */
  events: WebSocketEvent[];
  /** The protocol error the stream ends in, if any. */
  error: ProtocolError | null;
  /** The offset just past the client's close frame, when the stream holds a valid one. */
  closedAt: number | null;
  /** Whether the stream ends exactly between frames (the server then waits for the next). */
  atBoundary: boolean;
  /** Whether a fragmented data message is still in progress at the end. */
  messageOpen: boolean;
}

/**
 * Runs `bytes` through a server-role reader frame by frame, with the server's limits (the
 * fragment limit defaults to the server's `--max-fragments` default). Rethrows non-protocol
 * errors.
 */
export function predict(
  bytes: Uint8Array,
  maxMessageBytes: number,
  maxFragments = 1024,
): Prediction {
  const events: WebSocketEvent[] = [];
  const reader = new MessageReader(
    { role: "server", maxMessageBytes, maxFragments },
    (e) => events.push(e),
  );
  const { ends, rest } = frameEnds(bytes);
  let from = 0;
  let messageOpen = false;
  const pieces = rest > 0 ? [...ends, bytes.length] : ends;
  for (const end of pieces) {
    try {
      reader.push(bytes.subarray(from, end));
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      return { events, error: err, closedAt: null, atBoundary: false, messageOpen };
    }
    if (reader.closed) return { events, error: null, closedAt: end, atBoundary: true, messageOpen };
    if (end - from >= 2 && (end !== bytes.length || rest === 0)) {
      const opcode = bytes[from] & 0x0f;
      const fin = (bytes[from] & 0x80) !== 0;
      if (opcode === 0x1 || opcode === 0x2) messageOpen = !fin;
      else if (opcode === 0x0 && fin) messageOpen = false;
    }
    from = end;
  }
  return { events, error: null, closedAt: null, atBoundary: rest === 0, messageOpen };
}

// ---------------------------------------------------------------------------------------------
// Socket helpers

/**
 * Resolves or rejects like `promise`, or rejects with "timed out: `what`" after `ms` (the timer
 * is always cleared, so test sanitizers stay quiet).
 */
export async function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves after `ms`, or at once when `signal` aborts (the timer is cleared either way). */
export function delay(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done);
  });
}

/**
 * The first log line at index `from` or later that contains `text`, waiting for it up to `ms`.
 * Waits on the server's log event; falls back to a bounded poll only when an older line also
 * matches (the server's `waitForLog` would return that one at once).
 */
export async function waitForLogSince(
  server: TestServer,
  from: number,
  text: string,
  ms: number,
): Promise<string> {
  const find = () => {
    for (let i = from; i < server.logs.length; i++) {
      if (server.logs[i].includes(text)) return server.logs[i];
    }
    return undefined;
  };
  const found = find();
  if (found !== undefined) return found;
  const deadline = performance.now() + ms;
  const line = await withDeadline(server.waitForLog(text), ms, `log line "${text}"`);
  if (server.logs.indexOf(line, from) !== -1) return line;
  while (performance.now() < deadline) {
    const again = find();
    if (again !== undefined) return again;
    await delay(5);
  }
  throw new Error(`timed out after ${ms} ms: log line "${text}" after line ${from}`);
}

/** Polls `condition` every `everyMs` until it holds, failing with `what` after `ms`. */
export async function pollUntil(
  condition: () => boolean,
  ms: number,
  what: string,
  everyMs = 10,
): Promise<void> {
  const deadline = performance.now() + ms;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${ms} ms: ${what}`);
    await delay(everyMs);
  }
}

/** The server's client id for the raw connection whose local port is `port` (from its log). */
export async function serverClientId(
  server: TestServer,
  from: number,
  port: number,
  ms = 3000,
): Promise<number> {
  // Only handshake.accepted lines have a path after the remote address.
  const line = await waitForLogSince(server, from, ` remote=127.0.0.1:${port} path=`, ms);
  const m = /client=(\d+)/.exec(line);
  if (!m) throw new Error(`no client id in ${line}`);
  return Number(m[1]);
}

/** Counts the log lines that contain `text`. */
export function countLogs(server: TestServer, text: string): number {
  let n = 0;
  for (const line of server.logs) if (line.includes(text)) n++;
  return n;
}

/** Reads `conn` until EOF (or a reset), up to `maxBytes`; returns the bytes and how it ended. */
export async function readToEnd(
  conn: Deno.Conn,
  maxBytes = 1 << 20,
): Promise<{ bytes: Uint8Array; end: "eof" | "reset" | "limit"; at: number }> {
  const parts: Uint8Array[] = [];
  const buffer = new Uint8Array(16 * 1024);
  let total = 0;
  while (total < maxBytes) {
    let n: number | null;
    try {
      n = await conn.read(buffer);
    } catch {
      return { bytes: concatAll(parts), end: "reset", at: performance.now() };
    }
    if (n === null) return { bytes: concatAll(parts), end: "eof", at: performance.now() };
    parts.push(buffer.slice(0, n));
    total += n;
  }
  return { bytes: concatAll(parts), end: "limit", at: performance.now() };
}

/** Every frame in a server's (unmasked) byte stream, close frames and what follows included. */
export function serverFrames(bytes: Uint8Array): Frame[] {
  const frames: Frame[] = [];
  new FrameParser({ role: "client", maxPayloadBytes: 1 << 30 }, (f) => frames.push(f)).push(bytes);
  return frames;
}
