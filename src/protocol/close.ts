/**
 * Close codes and close-frame payloads (RFC 6455 §5.5.1, §7.4).
 *
 * @module
 */

/** Close codes this server sends or must recognise (RFC 6455 §7.4.1). */
export const CloseCode = {
  /** The purpose of the connection was fulfilled. */
  Normal: 1000,
  /** The server is shutting down. */
  GoingAway: 1001,
  /** The peer broke the protocol. */
  ProtocolError: 1002,
  /** A data type the endpoint cannot accept. */
  UnsupportedData: 1003,
  /** Reserved: a close frame without a code (never sent on the wire). */
  NoStatus: 1005,
  /** Reserved: the connection dropped without a close frame (never sent on the wire). */
  Abnormal: 1006,
  /** A text message was not valid UTF-8. */
  InvalidPayload: 1007,
  /** A policy was violated (slow consumer, forbidden command). */
  PolicyViolation: 1008,
  /** A message exceeded the size limit. */
  MessageTooBig: 1009,
  /** The server hit an unexpected condition. */
  InternalError: 1011,
} as const;

/** One of the values of {@linkcode CloseCode}. */
export type CloseCode = typeof CloseCode[keyof typeof CloseCode];

/**
 * Whether `code` may appear in a close frame on the wire.
 *
 * Valid: 1000–1003, 1007–1011 (defined by RFC 6455), 3000–4999 (registered and private use).
 * 1004–1006 and 1015 are reserved and must never be sent; 1012–2999 are unassigned for this
 * server (the same rule as Autobahn|Testsuite's case 7.9); 0–999 and 5000+ are not close codes.
 */
export function isValidCloseCode(code: number): boolean {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
    (code >= 3000 && code <= 4999);
}

/** A parsed close payload. `code` is 1005 (no status) when the payload was empty. */
export interface ClosePayload {
  /** The close code, or 1005 when the frame carried none. */
  code: number;
  /** The UTF-8 reason, possibly empty. */
  reason: string;
}

/** Why a close payload could not be parsed: the close code to fail the connection with. */
export type ClosePayloadError = { error: "bad-close-code" | "bad-close-payload" | "bad-utf8" };

const strictDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const encoder = new TextEncoder();

/**
 * Parses the payload of a received close frame (§5.5.1).
 *
 * @example
 * ```ts
 * parseClosePayload(new Uint8Array([0x03, 0xe8])); // { code: 1000, reason: "" }
 * ```
 */
export function parseClosePayload(payload: Uint8Array): ClosePayload | ClosePayloadError {
  if (payload.length === 0) return { code: CloseCode.NoStatus, reason: "" };
  if (payload.length === 1) return { error: "bad-close-payload" };
  const code = (payload[0] << 8) | payload[1];
  if (!isValidCloseCode(code)) return { error: "bad-close-code" };
  try {
    return { code, reason: strictDecoder.decode(payload.subarray(2)) };
  } catch {
    return { error: "bad-utf8" };
  }
}

/**
 * Encodes a close payload: a 2-byte big-endian code and a UTF-8 reason, cut so the whole
 * payload fits the 125 bytes a control frame allows (never inside a UTF-8 sequence).
 * Code 1005 (no status) yields an empty payload.
 *
 * @example
 * ```ts
 * encodeClosePayload(1000, "bye"); // Uint8Array [0x03, 0xe8, 0x62, 0x79, 0x65]
 * ```
 */
export function encodeClosePayload(code: number, reason = ""): Uint8Array {
  if (code === CloseCode.NoStatus) return new Uint8Array(0);
  const out = new Uint8Array(125);
  out[0] = code >> 8;
  out[1] = code & 0xff;
  const { written } = encoder.encodeInto(reason, out.subarray(2));
  return out.subarray(0, 2 + written);
}
