/**
 * Hand-crafted client frames for the RFC 6455 conformance suite (tests/conformance/): the
 * opcodes, frames bit by bit (RSV bits, reserved opcodes, unmasked), fragmented messages, close
 * payloads, and the accept key computed independently of the source under test.
 *
 * @module
 */
import { concat, utf8 } from "./bytes.ts";
import { clientFrame, TEST_MASK } from "./raw_client.ts";

/** The opcodes of RFC 6455 §5.2, spelled out here so the suite does not trust the source's. */
export const Op = {
  Continuation: 0x0,
  Text: 0x1,
  Binary: 0x2,
  Close: 0x8,
  Ping: 0x9,
  Pong: 0xa,
} as const;

/** The magic GUID of RFC 6455 §1.3. */
const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/** `length` printable ASCII characters, every offset different modulo 95. */
export function asciiText(length: number): string {
  let s = "";
  const alphabet = Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i)).join("");
  while (s.length < length) s += alphabet;
  return s.slice(0, length);
}

/** A 2-byte close code followed by a UTF-8 (or raw) reason: a close frame's payload. */
export function closePayload(code: number, reason: string | Uint8Array = ""): Uint8Array {
  const r = typeof reason === "string" ? utf8(reason) : reason;
  return concat(new Uint8Array([code >> 8, code & 0xff]), r);
}

/** Options of {@linkcode rawFrame}. */
export interface RawFrameOptions {
  fin?: boolean;
  /** The three RSV bits as a number 0–7 (4 = RSV1, 2 = RSV2, 1 = RSV3). */
  rsv?: number;
  /** Whether to mask (default true, as a client must). */
  masked?: boolean;
}

/**
 * Builds a client frame bit by bit, for what {@linkcode clientFrame} cannot express: RSV bits,
 * reserved opcodes, unmasked frames. Lengths use the shortest form (§5.2), mask is TEST_MASK.
 */
export function rawFrame(
  opcode: number,
  payload: Uint8Array | string = new Uint8Array(0),
  options: RawFrameOptions = {},
): Uint8Array {
  const data = typeof payload === "string" ? utf8(payload) : payload;
  const { fin = true, rsv = 0, masked = true } = options;
  const head = rawHeader(opcode, data.length, { fin, rsv, masked });
  const body = new Uint8Array(data.length);
  for (let i = 0; i < data.length; i++) body[i] = masked ? data[i] ^ TEST_MASK[i & 3] : data[i];
  return concat(head, body);
}

/** The header alone (with TEST_MASK when masked) of a frame announcing `length` payload bytes. */
export function rawHeader(opcode: number, length: number, options: RawFrameOptions = {}) {
  const { fin = true, rsv = 0, masked = true } = options;
  const b0 = (fin ? 0x80 : 0) | (rsv << 4) | opcode;
  const m = masked ? 0x80 : 0;
  let head: Uint8Array;
  if (length < 126) head = new Uint8Array([b0, m | length]);
  else if (length < 0x10000) head = new Uint8Array([b0, m | 126, length >> 8, length & 0xff]);
  else {
    head = new Uint8Array(10);
    head[0] = b0;
    head[1] = m | 127;
    new DataView(head.buffer).setBigUint64(2, BigInt(length));
  }
  return masked ? concat(head, TEST_MASK) : head;
}

/** Splits `bytes` into fragments of `size` bytes (the last may be shorter; none when empty). */
export function chunks(bytes: Uint8Array, size: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; i += size) out.push(bytes.subarray(i, i + size));
  return out;
}

/**
 * Encodes `parts` as one fragmented message: the first frame with `opcode`, the others as
 * continuations, FIN on the last only.
 */
export function fragmented(opcode: number, parts: (Uint8Array | string)[]): Uint8Array {
  return concat(
    ...parts.map((part, i) =>
      clientFrame(i === 0 ? opcode : Op.Continuation, part, i === parts.length - 1)
    ),
  );
}

/** Sec-WebSocket-Accept computed independently of the source under test (§4.2.2 step 5.4). */
export async function expectedAccept(key: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-1", utf8(key + GUID));
  return btoa(String.fromCharCode(...new Uint8Array(digest)));
}
