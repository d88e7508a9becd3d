/**
 * Byte helpers for the protocol tests: hex literals, concatenation, masked frames and the ways
 * of splitting a byte stream into the chunks a socket might deliver.
 *
 * @module
 */
import { encodeMaskedFrame } from "../../src/protocol/frame_encoder.ts";

const encoder = new TextEncoder();

/**
 * Parses hex digits into bytes, ignoring whitespace: `hex("81 05 48")` → `[0x81, 0x05, 0x48]`.
 *
 * @throws {Error} when the string holds an odd number of digits or a non-hex character.
 */
export function hex(digits: string): Uint8Array {
  const clean = digits.replace(/\s+/g, "");
  if (clean.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(clean)) {
    throw new Error(`not a hex string: ${JSON.stringify(digits)}`);
  }
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** Formats bytes as space-separated lower-case hex pairs, for readable assertion messages. */
export function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(" ");
}

/** {@linkcode toHex} of up to `max` bytes, saying how many there were when cut: for failure messages. */
export function hexPreview(bytes: Uint8Array, max = 64): string {
  return toHex(bytes.subarray(0, max)) + (bytes.length > max ? ` … (${bytes.length} bytes)` : "");
}

/** Encodes `text` as UTF-8. */
export function utf8(text: string): Uint8Array<ArrayBuffer> {
  return encoder.encode(text);
}

/** Joins byte arrays (or plain byte lists) into one new buffer. */
export function concat(...parts: (Uint8Array | readonly number[])[]): Uint8Array {
  const total = parts.reduce((sum, part) => sum + part.length, 0);
  const out = new Uint8Array(total);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** Whether `a` and `b` hold the same bytes (fast enough to run once per split of 64 KiB). */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** `length` bytes counting up from 0 and wrapping at 256: a payload whose every offset differs. */
export function patternBytes(length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = i & 0xff;
  return out;
}

/** The masking key of RFC 6455 §5.7's masked examples. */
export const RFC_MASK: Uint8Array = hex("37 fa 21 3d");

/** Options of {@linkcode maskedFrame}. */
export interface MaskedFrameOptions {
  /** The FIN bit (default `true`). */
  fin?: boolean;
  /** The 4-byte masking key (default {@linkcode RFC_MASK}). */
  mask?: Uint8Array;
}

/**
 * Encodes one client-to-server (masked) frame with `encodeMaskedFrame` from the source under
 * test. A string payload is encoded as UTF-8.
 */
export function maskedFrame(
  opcode: number,
  payload: Uint8Array | string,
  options: MaskedFrameOptions = {},
): Uint8Array {
  const bytes = typeof payload === "string" ? utf8(payload) : payload;
  return encodeMaskedFrame(opcode, bytes, options.mask ?? RFC_MASK, options.fin ?? true);
}

/** One way of delivering a byte stream: a label for failure messages and the chunks in order. */
export interface Feeding {
  /** Describes the split, e.g. "split at 3" or "byte by byte". */
  label: string;
  /** The chunks, whose concatenation is the original stream. */
  chunks: Uint8Array[];
}

/** Yields `bytes` as two chunks split at every offset from 0 to `bytes.length` inclusive. */
export function* splitsAtEveryOffset(bytes: Uint8Array): Generator<Feeding> {
  for (let at = 0; at <= bytes.length; at++) {
    yield { label: `split at ${at}`, chunks: [bytes.subarray(0, at), bytes.subarray(at)] };
  }
}

/** Returns `bytes` as one chunk per byte. */
export function byteByByte(bytes: Uint8Array): Feeding {
  const chunks: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; i++) chunks.push(bytes.subarray(i, i + 1));
  return { label: "byte by byte", chunks };
}

/**
 * Yields every delivery of `bytes` the tests exercise: whole, split in two at every offset
 * (including the empty first and last chunks), then one byte at a time.
 */
export function* everyFeeding(bytes: Uint8Array): Generator<Feeding> {
  yield { label: "whole", chunks: [bytes] };
  yield* splitsAtEveryOffset(bytes);
  yield byteByByte(bytes);
}
