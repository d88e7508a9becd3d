/**
 * Message assembly (RFC 6455 §5.4–§5.6): frames in, messages and control events out.
 * Enforces the fragmentation rules, validates text as UTF-8 while it arrives (so invalid bytes
 * fail the connection with 1007 before the message ends) and bounds message size (1009).
 *
 * @module
 */
import { concatBytes } from "../bytes.ts";
import { parseClosePayload } from "./close.ts";
import { ProtocolError } from "./errors.ts";
import { type Frame, FrameParser } from "./frame_parser.ts";
import { Opcode } from "./opcode.ts";

/** What a peer's bytes turn into. Data messages are whole; control events carry their payload. */
export type WebSocketEvent =
  | { type: "text"; data: string }
  | { type: "binary"; data: Uint8Array }
  | { type: "ping"; payload: Uint8Array }
  | { type: "pong"; payload: Uint8Array }
  | { type: "close"; code: number; reason: string };

/** Options of {@linkcode MessageReader}. */
export interface MessageReaderOptions {
  /** Whose frames are read: "server" reads a client's (masked) frames. */
  role: "server" | "client";
  /** The largest message, summed over its fragments; more fails with 1009. */
  maxMessageBytes: number;
}

/**
 * Turns the byte stream of one connection into {@linkcode WebSocketEvent}s, handed to `onEvent`
 * synchronously and in order. Throws {@linkcode ProtocolError} (with its close code) when the
 * peer breaks the protocol. After a close event, any further bytes are ignored (§5.5.1).
 *
 * @example
 * ```ts
 * const reader = new MessageReader({ role: "client", maxMessageBytes: 1 << 20 }, (event) => {
 *   console.log(event); // { type: "text", data: "Hello" }
 * });
 * reader.push(new Uint8Array([0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f]));
 * ```
 */
export class MessageReader {
  readonly #parser: FrameParser;
  readonly #maxMessageBytes: number;
  readonly #onEvent: (event: WebSocketEvent) => void;
  /** The opcode of the fragmented message in progress, or 0 when none. */
  #messageOpcode = 0;
  #messageBytes = 0;
  #binaryParts: Uint8Array[] = [];
  #text = "";
  /** A streaming decoder, only while a fragmented text message arrives (idle readers hold none). */
  #decoder: TextDecoder | null = null;
  #closed = false;

  /** Creates a reader that hands each event to `onEvent`. */
  constructor(options: MessageReaderOptions, onEvent: (event: WebSocketEvent) => void) {
    this.#maxMessageBytes = options.maxMessageBytes;
    this.#onEvent = onEvent;
    this.#parser = new FrameParser(
      { role: options.role, maxPayloadBytes: options.maxMessageBytes },
      (frame) => this.#onFrame(frame),
    );
  }

  /** Bytes held for incomplete frames and messages: bounded by about twice the message limit. */
  get bufferedBytes(): number {
    return this.#parser.bufferedBytes + this.#messageBytes;
  }

  /** Whether a close frame was received (later bytes are ignored). */
  get closed(): boolean {
    return this.#closed;
  }

  /** Feeds the next chunk read from the socket. Throws {@linkcode ProtocolError}. */
  push(chunk: Uint8Array): void {
    if (this.#closed) return;
    try {
      this.#parser.push(chunk);
    } catch (err) {
      // Bytes after the close frame in the same chunk are ignored too, even if they are invalid.
      if (!(this.#closed && err instanceof ProtocolError)) throw err;
    }
  }

  #onFrame(frame: Frame): void {
    if (this.#closed) return;
    switch (frame.opcode) {
      case Opcode.Text:
      case Opcode.Binary:
        if (this.#messageOpcode !== 0) throw new ProtocolError("expected-continuation");
        if (frame.fin) return this.#emitWhole(frame.opcode, frame.payload);
        this.#messageOpcode = frame.opcode;
        return this.#addFragment(frame.payload, false);
      case Opcode.Continuation:
        if (this.#messageOpcode === 0) throw new ProtocolError("unexpected-continuation");
        return this.#addFragment(frame.payload, frame.fin);
      case Opcode.Ping:
        return this.#onEvent({ type: "ping", payload: frame.payload });
      case Opcode.Pong:
        return this.#onEvent({ type: "pong", payload: frame.payload });
      case Opcode.Close: {
        const parsed = parseClosePayload(frame.payload);
        if ("error" in parsed) throw new ProtocolError(parsed.error);
        this.#closed = true;
        return this.#onEvent({ type: "close", code: parsed.code, reason: parsed.reason });
      }
    }
  }

  #emitWhole(opcode: number, payload: Uint8Array): void {
    if (opcode === Opcode.Binary) return this.#onEvent({ type: "binary", data: payload });
    this.#onEvent({ type: "text", data: this.#decode(payload, false) });
  }

  #addFragment(payload: Uint8Array, fin: boolean): void {
    this.#messageBytes += payload.length;
    if (this.#messageOpcode === Opcode.Text) {
      // Decoding each fragment as it arrives fails fast on invalid bytes and holds no raw bytes;
      // `stream: true` keeps a sequence split across fragments pending until its next bytes.
      this.#text += this.#decode(payload, !fin);
    } else if (payload.length > 0) {
      this.#binaryParts.push(payload);
    }
    if (!fin) {
      this.#parser.maxPayloadBytes = this.#maxMessageBytes - this.#messageBytes;
      return;
    }
    const event: WebSocketEvent = this.#messageOpcode === Opcode.Text
      ? { type: "text", data: this.#text }
      : { type: "binary", data: concatBytes(this.#binaryParts, this.#messageBytes) };
    this.#messageOpcode = 0;
    this.#messageBytes = 0;
    this.#binaryParts = [];
    this.#text = "";
    this.#parser.maxPayloadBytes = this.#maxMessageBytes;
    this.#onEvent(event);
  }

  #decode(bytes: Uint8Array, stream: boolean): string {
    try {
      if (!stream && this.#decoder === null) return WHOLE_DECODER.decode(bytes);
      this.#decoder ??= new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
      const text = this.#decoder.decode(bytes, { stream });
      if (!stream) this.#decoder = null;
      return text;
    } catch {
      throw new ProtocolError("bad-utf8");
    }
  }
}

/**
 * Decodes whole messages. Shared by every reader: a non-streaming `decode` keeps no state
 * between calls, and one decoder per connection would cost memory on every idle client.
 */
const WHOLE_DECODER = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
