/**
 * The load client's cheap frame reader. A benchmark client that decodes every payload would
 * measure itself; this one walks frame headers, skips payloads, and looks only at the first
 * bytes of each text payload for the broadcast's `"id":` and the `"ts":` at the start of its
 * data — enough to check order and measure latency at millions of frames per second.
 *
 * @module
 */

import { DEFLATE_PEEK_BYTES, deflatePeek } from "./deflate_peek.ts";

/** Bytes of each payload that are looked at; everything after is skipped unread. */
export const PEEK_BYTES = 192;

/** What a {@linkcode FrameScanner} found, handed over synchronously in stream order. */
export interface FrameSink {
  /**
   * A text message: its `"id":` (or -1 when absent), the `"ts":` number at the start of its
   * data (NaN when absent), and the `"seq":` number right after `ts` (the order the load client
   * sent the publishes in; -1 when absent). `length` is the whole payload length.
   * `compressed`: it came as a permessage-deflate frame (RSV1), and was read from its inflated
   * start.
   */
  onText(id: number, ts: number, length: number, seq: number, compressed: boolean): void;
  /** A close frame: its code (1005 when it has none) and reason. */
  onClose(code: number, reason: string): void;
  /** A ping: its payload (copied; at most 125 bytes) must be answered with a pong. */
  onPing(payload: Uint8Array): void;
  /** Any other frame (binary, fragment, pong, or a masked server frame): a protocol surprise. */
  onOther(opcode: number, fin: boolean): void;
}

const Q = 0x22; // "
const COLON = 0x3a;
const DIGIT0 = 0x30;
const DOT = 0x2e;
const MINUS = 0x2d;
/** `"id":` */
const ID_KEY = [Q, 0x69, 0x64, Q, COLON];
/** `,"data":{"ts":` — the published body is `{"ts":…}`, embedded as the data value. */
const DATA_TS = [...',"data":{"ts":'].map((c) => c.charCodeAt(0));
/** `,"seq":` — right after the `ts` number in the published body. */
const SEQ_KEY = [...',"seq":'].map((c) => c.charCodeAt(0));
const decoder = new TextDecoder();

/**
 * Scans one connection's server-to-client byte stream, split into reads of any size.
 *
 * @example
 * ```ts
 * const scanner = new FrameScanner(sink);
 * const n = await conn.read(buffer);
 * if (n !== null) scanner.push(buffer, n);
 * ```
 */
export class FrameScanner {
  readonly #sink: FrameSink;
  /** Payload bytes still to skip from the current frame. */
  #skip = 0;
  /** The start of a frame split across reads: its header and up to PEEK_BYTES of payload. */
  readonly #carry = new Uint8Array(14 + DEFLATE_PEEK_BYTES);
  #carryLength = 0;
  /** Set by #need: the current frame's header length and payload length. */
  #head = 0;
  #length = 0;
  /** Where `"id":` ends in a payload; the prefix before it is fixed per channel, so cache it. */
  #idAt = -1;

  /** Creates a scanner that reports to `sink`. */
  constructor(sink: FrameSink) {
    this.#sink = sink;
  }

  /** Feeds `bytes[0..n)`; the caller may reuse `bytes` once this returns. */
  push(bytes: Uint8Array, n: number): void {
    let i = 0;
    while (i < n) {
      if (this.#skip > 0) {
        const take = Math.min(this.#skip, n - i);
        this.#skip -= take;
        i += take;
        continue;
      }
      if (this.#carryLength > 0) {
        i = this.#fillCarry(bytes, i, n);
        if (this.#carryLength > 0) return; // still incomplete: the read is used up
        continue;
      }
      const need = this.#need(bytes, i, n - i);
      if (n - i >= need) {
        this.#frame(bytes, i);
        i += need;
      } else {
        this.#carry.set(bytes.subarray(i, n));
        this.#carryLength = n - i;
        i = n;
      }
    }
  }

  /** Moves bytes into the carry until the frame start is complete, then handles that frame. */
  #fillCarry(bytes: Uint8Array, i: number, n: number): number {
    const carry = this.#carry;
    while (true) {
      const need = this.#need(carry, 0, this.#carryLength);
      if (this.#carryLength >= need) {
        this.#carryLength = 0;
        this.#frame(carry, 0);
        return i;
      }
      if (i === n) return i;
      const take = Math.min(need - this.#carryLength, n - i);
      carry.set(bytes.subarray(i, i + take), this.#carryLength);
      this.#carryLength += take;
      i += take;
    }
  }

  /**
   * The bytes needed from `o` to handle the frame starting there: its header plus up to
   * PEEK_BYTES of payload. With fewer than that available it returns what is needed next (the
   * 2 fixed bytes, then the full header), so callers just retry with more.
   */
  #need(b: Uint8Array, o: number, available: number): number {
    if (available < 2) return 2;
    const b1 = b[o + 1];
    const len7 = b1 & 0x7f;
    const head = (len7 < 126 ? 2 : len7 === 126 ? 4 : 10) + (b1 & 0x80 ? 4 : 0);
    if (available < head) return head;
    let length = len7;
    if (len7 === 126) length = (b[o + 2] << 8) | b[o + 3];
    else if (len7 === 127) {
      length = ((b[o + 6] << 24) | (b[o + 7] << 16) | (b[o + 8] << 8) | b[o + 9]) >>> 0;
      length += (((b[o + 4] << 8) | b[o + 5]) >>> 0) * 0x1_0000_0000;
    }
    this.#head = head;
    this.#length = length;
    return head + Math.min(length, peekOf(b[o]));
  }

  /** Handles a frame whose header and peeked payload start are at `b[o..]`. */
  #frame(b: Uint8Array, o: number): void {
    const head = this.#head;
    const length = this.#length;
    const b0 = b[o];
    const peek = Math.min(length, peekOf(b0));
    this.#skip = length - peek;
    const opcode = b0 & 0x0f;
    const fin = (b0 & 0x80) !== 0;
    const p = o + head;
    if (b[o + 1] & 0x80) {
      this.#sink.onOther(opcode, fin); // a masked server frame is a protocol error
    } else if (b0 === 0x81) {
      this.#text(b, p, peek, length, false);
    } else if (b0 === 0xc1) {
      // permessage-deflate (RSV1): read the inflated start instead.
      const plain = deflatePeek.prefix(b, p, peek, length);
      this.#text(plain, 0, Math.min(plain.length, PEEK_BYTES), length, true);
    } else if (opcode === 8) {
      const code = peek >= 2 ? (b[p] << 8) | b[p + 1] : 1005;
      this.#sink.onClose(code, peek > 2 ? decoder.decode(b.subarray(p + 2, p + peek)) : "");
    } else if (opcode === 9) {
      this.#sink.onPing(b.slice(p, p + peek));
    } else {
      this.#sink.onOther(opcode, fin);
    }
  }

  #text(b: Uint8Array, p: number, peek: number, length: number, compressed: boolean): void {
    let at = this.#idAt;
    if (at < 0 || at > peek || !matches(b, p + at - ID_KEY.length, ID_KEY)) {
      at = find(b, p, peek, ID_KEY);
      if (at < 0) return this.#sink.onText(-1, NaN, length, -1, compressed);
      this.#idAt = at;
    }
    const end = p + peek;
    let i = p + at;
    let id = 0;
    let c = b[i];
    while (i < end && c >= DIGIT0 && c <= DIGIT0 + 9) {
      id = id * 10 + (c - DIGIT0);
      c = b[++i];
    }
    let ts = NaN;
    let seq = -1;
    if (i + DATA_TS.length < end && matches(b, i, DATA_TS)) {
      i += DATA_TS.length;
      ts = parseNumber(b, i, end);
      while (
        i < end && ((b[i] >= DIGIT0 && b[i] <= DIGIT0 + 9) || b[i] === DOT || b[i] === MINUS)
      ) {
        i++;
      }
      if (i + SEQ_KEY.length < end && matches(b, i, SEQ_KEY)) {
        i += SEQ_KEY.length;
        const start = i;
        seq = 0;
        while (i < end && b[i] >= DIGIT0 && b[i] <= DIGIT0 + 9) seq = seq * 10 + (b[i++] - DIGIT0);
        if (i === start) seq = -1;
      }
    }
    this.#sink.onText(id, ts, length, seq, compressed);
  }
}

/** How much of a payload is looked at: more of a compressed one (its start inflates to less). */
function peekOf(b0: number): number {
  return b0 === 0xc1 ? DEFLATE_PEEK_BYTES : PEEK_BYTES;
}

function matches(b: Uint8Array, at: number, pattern: number[]): boolean {
  if (at < 0) return false;
  for (let k = 0; k < pattern.length; k++) if (b[at + k] !== pattern[k]) return false;
  return true;
}

/** The offset (from `p`) just past `pattern` in `b[p..p+length)`, or -1. */
function find(b: Uint8Array, p: number, length: number, pattern: number[]): number {
  for (let k = 0; k + pattern.length <= length; k++) {
    if (matches(b, p + k, pattern)) return k + pattern.length;
  }
  return -1;
}

/** Parses a JSON number without exponent (`-12.5`) from `b[i..end)`; NaN when there is none. */
export function parseNumber(b: Uint8Array, i: number, end: number): number {
  let sign = 1;
  if (b[i] === MINUS) {
    sign = -1;
    i++;
  }
  const start = i;
  let value = 0;
  while (i < end && b[i] >= DIGIT0 && b[i] <= DIGIT0 + 9) value = value * 10 + (b[i++] - DIGIT0);
  if (i === start) return NaN;
  if (i < end && b[i] === DOT) {
    // Whole fraction digits first, one division last: no error accumulates digit by digit.
    let fraction = 0;
    let scale = 1;
    i++;
    while (i < end && b[i] >= DIGIT0 && b[i] <= DIGIT0 + 9 && scale < 1e15) {
      fraction = fraction * 10 + (b[i++] - DIGIT0);
      scale *= 10;
    }
    value += fraction / scale;
  }
  return sign * value;
}
