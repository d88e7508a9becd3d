/**
 * Fuzz building blocks: an independent client frame encoder (it can lie in every header field),
 * the edge values the generators pick from, random text of an exact UTF-8 length, and random
 * frames with no expected outcome.
 *
 * @module
 */
import { concat } from "./bytes.ts";
import type { Rng } from "./rng.ts";

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

/** Payload sizes at the edges of the length forms. */
const BOUNDARY_SIZES = [0, 1, 2, 125, 126, 127, 128, 65535, 65536];
/** Close codes a peer may send. */
export const VALID_CLOSE_CODES = [
  1000,
  1001,
  1002,
  1003,
  1007,
  1008,
  1009,
  1010,
  1011,
  3000,
  4000,
  4999,
];
/** Close codes a peer must not send. */
export const INVALID_CLOSE_CODES = [
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
export const VALID_CLOSE_CODE = (code: number) =>
  (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
  (code >= 3000 && code <= 4999);
/** The opcodes RFC 6455 reserves. */
export const RESERVED_OPCODES = [3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf];
/** Byte sequences that are not UTF-8 wherever they stand (after a complete character). */
export const INVALID_UTF8: readonly number[][] = [
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
export const TRUNCATED_UTF8: readonly number[][] = [[0xc3], [0xe2, 0x82], [0xf0, 0x9f, 0x98], [
  0xf4,
]];

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
export function splitInto(rng: Rng, bytes: Uint8Array, count: number): Uint8Array[] {
  const cuts = [0, bytes.length];
  for (let i = 1; i < count; i++) cuts.push(rng.int(bytes.length + 1));
  cuts.sort((a, b) => a - b);
  const parts: Uint8Array[] = [];
  for (let i = 0; i < count; i++) parts.push(bytes.slice(cuts[i], cuts[i + 1]));
  return parts;
}

/** A random masking key (now and then all zero). */
export function randomMask(rng: Rng): Uint8Array {
  return rng.chance(0.05) ? new Uint8Array(4) : rng.bytes(4);
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
  return concat(...parts);
}
