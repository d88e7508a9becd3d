/**
 * Message assembly (RFC 6455 §5.4–§5.6): frames in, messages and control events out.
 * Enforces the fragmentation rules, validates text as UTF-8 while its bytes arrive (so an
 * invalid byte fails the connection with 1007 at once, even in the middle of a frame) and
 * bounds message size and fragment count (1009).
 *
 * @module
 */
import { parseClosePayload } from "./close.ts";
import { maxCompressedBytes } from "./deflate.ts";
import { ProtocolError } from "./errors.ts";
import { FrameParser, type FrameSink, growBuffer, unmaskInto } from "./frame_parser.ts";
import { isControlOpcode, Opcode } from "./opcode.ts";
import { UTF8_BOUNDARY, UTF8_INVALID, validateUtf8 } from "./utf8.ts";

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
  /** The most frames one message may be split into; more fails with 1009 (default: no limit). */
  maxFragments?: number;
}

/**
 * Inflates permessage-deflate messages (RFC 7692) for a {@linkcode MessageReader}. The codec
 * lives outside the pure core (`src/net/deflate_codec.ts`); the reader only collects a
 * compressed message's payload and hands it over whole.
 */
export interface MessageInflater {
  /**
   * Inflates one compressed message: the unmasked payloads of its frames, joined, without the
   * `00 00 ff ff` tail. Returns the message's bytes; throws (with a `closeCode`) when the data is
   * bad (1007) or inflates beyond `maxMessageBytes` (1009), stopping as soon as it would.
   */
  inflateMessage(compressed: Uint8Array): Uint8Array;
}

const EMPTY: Uint8Array = new Uint8Array(0);

/**
 * Turns the byte stream of one connection into {@linkcode WebSocketEvent}s, handed to `onEvent`
 * synchronously and in order. Throws {@linkcode ProtocolError} (with its close code) when the
 * peer breaks the protocol. After a close event, any further bytes are ignored (§5.5.1).
 *
 * Every fragment of a message is written into one buffer that grows with the bytes received
 * (doubling, capped at the message limit), so a message costs about its size however it is
 * fragmented, and nothing is allocated for bytes a header merely announces. The buffer is let
 * go when the message is handed out: an idle reader holds no buffer.
 *
 * @example
 * ```ts
 * const reader = new MessageReader({ role: "client", maxMessageBytes: 1 << 20 }, (event) => {
 *   console.log(event); // { type: "text", data: "Hello" }
 * });
 * reader.push(new Uint8Array([0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f]));
 * ```
 */
export class MessageReader implements FrameSink {
  readonly #parser: FrameParser;
  readonly #maxMessageBytes: number;
  readonly #maxFragments: number;
  /** The largest compressed message (a bit above the inflated cap: see maxCompressedBytes). */
  readonly #maxCompressed: number;
  /** permessage-deflate was negotiated: compressed messages go to it. */
  readonly #inflater: MessageInflater | null;
  readonly #onEvent: (event: WebSocketEvent) => void;
  /** The opcode of the data message in progress, or 0 when none. */
  #messageOpcode = 0;
  /** Whether the message in progress is compressed (RSV1 on its first frame). */
  #compressed = false;
  /** Frames of the message in progress so far. */
  #fragments = 0;
  /** The message so far: its first `#length` bytes. */
  #buffer = EMPTY;
  #length = 0;
  /** How large the buffer may grow for the current frame: the message's size if it is final. */
  #growLimit = 0;
  /** The UTF-8 state of a text message so far (see `validateUtf8`). */
  #utf8 = UTF8_BOUNDARY;
  /** The opcode of the frame being read, and whether it is final. */
  #frameOpcode = 0;
  #frameFin = false;
  /** A control frame's payload while it arrives (at most 125 bytes, §5.5). */
  #control = EMPTY;
  #closed = false;
  /** Bytes inflated during the current push (see {@linkcode MessageReader.push}). */
  #inflatedInPush = 0;

  /**
   * Creates a reader that hands each event to `onEvent`. With an `inflater`, permessage-deflate
   * was negotiated: RSV1 marks compressed messages, whose payload goes to it whole once the
   * last frame is in; `maxMessageBytes` then bounds the inflated size (the inflater's job) and
   * the compressed bytes are capped just above it. Without one, RSV1 fails with 1002.
   */
  constructor(
    options: MessageReaderOptions,
    onEvent: (event: WebSocketEvent) => void,
    inflater: MessageInflater | null = null,
  ) {
    this.#maxMessageBytes = options.maxMessageBytes;
    this.#maxFragments = options.maxFragments ?? Infinity;
    this.#inflater = inflater;
    this.#maxCompressed = inflater === null
      ? options.maxMessageBytes
      : maxCompressedBytes(options.maxMessageBytes);
    this.#onEvent = onEvent;
    this.#parser = new FrameParser(
      { role: options.role, maxPayloadBytes: this.#maxCompressed, deflate: inflater !== null },
      this,
    );
  }

  /**
   * Bytes held for incomplete frames and messages, counted as buffer sizes (what they cost, not
   * only the payload in them): at most the message limit plus a control frame's 125 bytes.
   */
  get bufferedBytes(): number {
    return this.#parser.bufferedBytes + this.#buffer.length + this.#control.length;
  }

  /** Whether a close frame was received (later bytes are ignored). */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Feeds the next chunk read from the socket and returns how many of its bytes were consumed.
   * Throws {@linkcode ProtocolError}.
   *
   * Without an inflater that is always the whole chunk. With one, the push returns early, after
   * the compressed message that brought what it inflated to `maxMessageBytes`: the caller
   * handles those events, then pushes `chunk.subarray(consumed)`. A few KiB of compressed
   * messages can inflate to a thousand times their size, each under the cap; the events of one
   * push are held together until the caller handles them, so without this a 64 KiB read could
   * hold 64 messages of `maxMessageBytes` at once. With it, at most twice the cap.
   */
  push(chunk: Uint8Array): number {
    if (this.#closed) return chunk.length;
    this.#inflatedInPush = 0;
    return this.#parser.push(chunk);
  }

  /** Part of {@linkcode FrameSink}: checks a frame's header against the message in progress. */
  frameStart(fin: boolean, opcode: number, length: number, compressed: boolean): void {
    this.#frameOpcode = opcode;
    this.#frameFin = fin;
    if (isControlOpcode(opcode)) {
      // Bounded by §5.5 (the parser rejected more than 125 bytes), so allocated whole.
      this.#control = new Uint8Array(length);
      return;
    }
    // Checked on the header, before any payload byte is buffered.
    if (opcode === Opcode.Continuation) {
      if (this.#messageOpcode === 0) throw new ProtocolError("unexpected-continuation");
    } else {
      if (this.#messageOpcode !== 0) throw new ProtocolError("expected-continuation");
      this.#messageOpcode = opcode;
      this.#compressed = compressed;
    }
    if (++this.#fragments > this.#maxFragments) throw new ProtocolError("too-many-fragments");
    // The frame parser already capped a frame at #maxCompressed; an uncompressed message has
    // the exact cap, a compressed one the compressed cap (its inflated size is checked later).
    const max = this.#compressed ? this.#maxCompressed : this.#maxMessageBytes;
    if (length > max - this.#length) throw new ProtocolError("message-too-big");
    // A final frame says exactly how large the message ends up: growth stops there, so the
    // buffer ends full and is handed out without a trimming copy.
    this.#growLimit = fin ? this.#length + length : max;
  }

  /** Part of {@linkcode FrameSink}: stores payload bytes, checking text as they arrive. */
  framePayload(chunk: Uint8Array, from: number, count: number, key: number, offset: number): void {
    if (isControlOpcode(this.#frameOpcode)) {
      unmaskInto(this.#control, offset, chunk, from, count, key, offset);
      return;
    }
    const at = this.#length;
    const end = at + count;
    if (end > this.#buffer.length) {
      this.#buffer = growBuffer(this.#buffer, at, end, this.#growLimit);
    }
    unmaskInto(this.#buffer, at, chunk, from, count, key, offset);
    this.#length = end;
    // A text message whose bytes all came in this one piece is validated by the decoding
    // right after, in the same push: checking it twice would only cost time.
    if (
      this.#messageOpcode === Opcode.Text && !this.#compressed &&
      !(this.#frameFin && at === 0 && end === this.#growLimit)
    ) {
      const state = validateUtf8(this.#utf8, this.#buffer, at, end);
      if (state === UTF8_INVALID) throw new ProtocolError("bad-utf8");
      this.#utf8 = state;
    }
  }

  /** Part of {@linkcode FrameSink}: emits a control event, or the message after its last frame. */
  frameEnd(): void {
    const opcode = this.#frameOpcode;
    if (isControlOpcode(opcode)) {
      const payload = this.#control;
      this.#control = EMPTY;
      if (opcode === Opcode.Ping) return this.#onEvent({ type: "ping", payload });
      if (opcode === Opcode.Pong) return this.#onEvent({ type: "pong", payload });
      const parsed = parseClosePayload(payload);
      if ("error" in parsed) throw new ProtocolError(parsed.error);
      this.#closed = true;
      this.#parser.stop();
      return this.#onEvent({ type: "close", code: parsed.code, reason: parsed.reason });
    }
    if (!this.#frameFin) return;
    const buffer = this.#buffer;
    const length = this.#length;
    const text = this.#messageOpcode === Opcode.Text;
    const truncated = this.#utf8 !== UTF8_BOUNDARY;
    const compressed = this.#compressed;
    // Let go of the buffer first: the handler may keep the message, the reader keeps nothing.
    this.#messageOpcode = 0;
    this.#compressed = false;
    this.#fragments = 0;
    this.#buffer = EMPTY;
    this.#length = 0;
    this.#utf8 = UTF8_BOUNDARY;
    if (compressed) return this.#inflated(text, buffer.subarray(0, length));
    if (!text) {
      // A fragmented message may have outgrown its size (doubling): trim, not hold the slack.
      const data = buffer.length === length && length > 0 ? buffer : buffer.slice(0, length);
      return this.#onEvent({ type: "binary", data });
    }
    if (truncated) throw new ProtocolError("bad-utf8"); // the message ends inside a character
    let data: string;
    try {
      data = DECODER.decode(buffer.length === length ? buffer : buffer.subarray(0, length));
    } catch {
      throw new ProtocolError("bad-utf8");
    }
    this.#onEvent({ type: "text", data });
  }

  /** A compressed message is complete: inflate it, then check text as a whole. */
  #inflated(text: boolean, compressed: Uint8Array): void {
    const bytes = this.#inflater!.inflateMessage(compressed);
    this.#inflatedInPush += bytes.length;
    if (this.#inflatedInPush >= this.#maxMessageBytes) this.#parser.yieldChunk();
    if (!text) return this.#onEvent({ type: "binary", data: bytes });
    let data: string;
    try {
      data = DECODER.decode(bytes);
    } catch {
      throw new ProtocolError("bad-utf8");
    }
    this.#onEvent({ type: "text", data });
  }
}

/**
 * Decodes whole messages (and validates those that arrived in one piece). Shared by every
 * reader: a non-streaming `decode` keeps no state between calls, and one decoder per
 * connection would cost memory on every idle client.
 */
const DECODER = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
