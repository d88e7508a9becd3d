/**
 * Frame encoding (RFC 6455 §5.2): one buffer per frame, the length in its shortest form.
 * Server frames are never masked; {@linkcode encodeMaskedFrame} exists for clients (tests and
 * the benchmark's load client).
 *
 * @module
 */
import { encodeClosePayload } from "./close.ts";
import { Opcode } from "./opcode.ts";

const encoder = new TextEncoder();

/** The header length of an unmasked frame carrying `payloadLength` bytes: 2, 4 or 10. */
export function headerLength(payloadLength: number): number {
  return payloadLength < 126 ? 2 : payloadLength < 0x10000 ? 4 : 10;
}

/** Writes the header of a frame into `out` at 0 and returns its length (mask bit not set). */
function writeHeader(out: Uint8Array, opcode: number, fin: boolean, length: number): number {
  out[0] = (fin ? 0x80 : 0) | opcode;
  if (length < 126) {
    out[1] = length;
    return 2;
  }
  if (length < 0x10000) {
    out[1] = 126;
    out[2] = length >>> 8;
    out[3] = length & 0xff;
    return 4;
  }
  out[1] = 127;
  const high = Math.floor(length / 0x1_0000_0000);
  const view = new DataView(out.buffer, out.byteOffset, 10);
  view.setUint32(2, high);
  view.setUint32(6, length >>> 0);
  return 10;
}

/**
 * Encodes one unmasked frame (a server's frame) into a single new buffer.
 *
 * @example
 * ```ts
 * encodeFrame(Opcode.Text, new TextEncoder().encode("Hello"));
 * // Uint8Array [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]
 * ```
 */
export function encodeFrame(opcode: number, payload: Uint8Array, fin = true): Uint8Array {
  const out = new Uint8Array(headerLength(payload.length) + payload.length);
  out.set(payload, writeHeader(out, opcode, fin, payload.length));
  return out;
}

/** Encodes a text message as one unmasked frame. */
export function encodeTextFrame(text: string): Uint8Array {
  return encodeFrame(Opcode.Text, encoder.encode(text));
}

/** Encodes a close frame with `code` and a reason cut to fit 125 bytes (1005 → empty payload). */
export function encodeCloseFrame(code: number, reason = ""): Uint8Array {
  return encodeFrame(Opcode.Close, encodeClosePayload(code, reason));
}

/**
 * Encodes one masked frame, as a client must send it (§5.3). `mask` is the 4-byte masking key;
 * pass `crypto.getRandomValues(new Uint8Array(4))` outside tests.
 *
 * @example
 * ```ts
 * encodeMaskedFrame(Opcode.Text, new TextEncoder().encode("Hello"), new Uint8Array([0x37, 0xfa, 0x21, 0x3d]));
 * // Uint8Array [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
 * ```
 */
export function encodeMaskedFrame(
  opcode: number,
  payload: Uint8Array,
  mask: Uint8Array,
  fin = true,
): Uint8Array {
  const head = headerLength(payload.length);
  const out = new Uint8Array(head + 4 + payload.length);
  writeHeader(out, opcode, fin, payload.length);
  out[1] |= 0x80;
  out.set(mask.subarray(0, 4), head);
  const at = head + 4;
  for (let i = 0; i < payload.length; i++) out[at + i] = payload[i] ^ mask[i & 3];
  return out;
}
