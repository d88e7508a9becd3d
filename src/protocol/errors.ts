/**
 * Every way a peer can break the protocol, and the close code each one earns — in ONE place,
 * so the parser, the message assembler and the connection never pick codes on their own.
 *
 * @module
 */
import { CloseCode } from "./close.ts";

/** The close code and log text of each protocol failure, keyed by a stable identifier. */
export const PROTOCOL_FAILURES = {
  "unmasked-frame": [CloseCode.ProtocolError, "client frames must be masked"],
  "reserved-bits": [CloseCode.ProtocolError, "reserved bits set without an extension"],
  "unknown-opcode": [CloseCode.ProtocolError, "reserved opcode"],
  "control-too-long": [CloseCode.ProtocolError, "control frame payload over 125 bytes"],
  "control-fragmented": [CloseCode.ProtocolError, "fragmented control frame"],
  "length-top-bit": [CloseCode.ProtocolError, "64-bit length with the most significant bit set"],
  "unexpected-continuation": [CloseCode.ProtocolError, "continuation frame without a message"],
  "expected-continuation": [CloseCode.ProtocolError, "new message inside a fragmented one"],
  "bad-close-payload": [CloseCode.ProtocolError, "close frame with a 1-byte payload"],
  "bad-close-code": [CloseCode.ProtocolError, "invalid close code"],
  "bad-utf8": [CloseCode.InvalidPayload, "invalid UTF-8"],
  "message-too-big": [CloseCode.MessageTooBig, "message too big"],
  "too-many-fragments": [CloseCode.MessageTooBig, "too many fragments"],
} as const;

/** A stable identifier of a protocol failure (a key of {@linkcode PROTOCOL_FAILURES}). */
export type ProtocolFailure = keyof typeof PROTOCOL_FAILURES;

/**
 * Thrown by the sans-I/O core when the peer breaks RFC 6455. The connection answers with a close
 * frame carrying {@linkcode ProtocolError.closeCode} and {@linkcode ProtocolError.message} as
 * reason (§7.1.7 "Fail the WebSocket Connection").
 */
export class ProtocolError extends Error {
  /** The stable identifier, for logs and metrics. */
  readonly failure: ProtocolFailure;
  /** The close code to send: 1002, 1007 or 1009. */
  readonly closeCode: number;

  /** Creates the error for `failure`, with its close code and text from the one table. */
  constructor(failure: ProtocolFailure) {
    const [closeCode, text] = PROTOCOL_FAILURES[failure];
    super(text);
    this.name = "ProtocolError";
    this.failure = failure;
    this.closeCode = closeCode;
  }
}
