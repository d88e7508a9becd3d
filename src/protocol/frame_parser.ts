/**
 * An incremental RFC 6455 frame parser (§5.2): bytes in, frames out, no I/O.
 *
 * @module
 */
import { ProtocolError } from "./errors.ts";
import { isControlOpcode, isKnownOpcode } from "./opcode.ts";

/** One complete frame with its payload unmasked. */
export interface Frame {
  /** Whether this is the final fragment of a message. */
  fin: boolean;
  /** The 4-bit opcode (see `Opcode`). */
  opcode: number;
  /** The unmasked payload; owned by the receiver (never a view of the input chunk). */
  payload: Uint8Array;
}

/** Options of {@linkcode FrameParser}. */
export interface FrameParserOptions {
  /**
   * "server" parses frames sent by a client: they must be masked (§5.1).
   * "client" parses frames sent by a server: they must not be.
   */
  role: "server" | "client";
  /** The largest data-frame payload accepted; a larger announced length fails with 1009. */
  maxPayloadBytes: number;
}

const enum State {
  Header,
  Payload,
  Failed,
}

/** 2 fixed bytes + 8 extended length bytes + 4 mask bytes. */
const MAX_HEADER = 14;

/**
 * Parses frames from a byte stream split in any way. Call {@linkcode FrameParser.push} with each
 * chunk read from the socket; every complete frame is handed to `onFrame` synchronously, in order.
 *
 * It never sizes a buffer from an untrusted length: the announced payload length is checked
 * against {@linkcode FrameParser.maxPayloadBytes} before anything is allocated. The input chunk is
 * never retained, so the caller may reuse its read buffer.
 *
 * @example
 * ```ts
 * const parser = new FrameParser({ role: "client", maxPayloadBytes: 1 << 20 }, (frame) => {
 *   console.log(frame.opcode, new TextDecoder().decode(frame.payload)); // 1 "Hello"
 * });
 * parser.push(new Uint8Array([0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]));
 * ```
 */
export class FrameParser {
  /**
   * The largest data-frame payload accepted from now on. The message assembler lowers it while a
   * fragmented message grows, so a message over its limit fails before its excess is buffered.
   */
  maxPayloadBytes: number;

  readonly #masked: boolean;
  readonly #onFrame: (frame: Frame) => void;
  #state = State.Header;
  /** Header bytes, allocated at the first frame: idle connections hold no buffers. */
  #head: Uint8Array | null = null;
  #headLength = 0;
  #headNeeded = 2;
  #fin = false;
  #opcode = 0;
  #mask: Uint8Array | null = null;
  #payload = new Uint8Array(0);
  #payloadOffset = 0;

  /** Creates a parser that hands each complete frame to `onFrame`. */
  constructor(options: FrameParserOptions, onFrame: (frame: Frame) => void) {
    this.#masked = options.role === "server";
    this.maxPayloadBytes = options.maxPayloadBytes;
    this.#onFrame = onFrame;
  }

  /** Bytes held for a frame not yet complete (its header and payload so far). */
  get bufferedBytes(): number {
    return this.#headLength + this.#payload.length;
  }

  /**
   * Feeds the next chunk of the stream. Throws {@linkcode ProtocolError} when the peer broke the
   * protocol; the parser is unusable afterwards (the connection must be failed).
   */
  push(chunk: Uint8Array): void {
    if (this.#state === State.Failed) throw new Error("FrameParser used after a protocol error");
    try {
      let i = 0;
      while (i < chunk.length) {
        i = this.#state === State.Header ? this.#readHeader(chunk, i) : this.#readPayload(chunk, i);
      }
    } catch (err) {
      this.#state = State.Failed;
      throw err;
    }
  }

  #readHeader(chunk: Uint8Array, i: number): number {
    const take = Math.min(this.#headNeeded - this.#headLength, chunk.length - i);
    this.#head ??= new Uint8Array(MAX_HEADER);
    this.#head.set(chunk.subarray(i, i + take), this.#headLength);
    this.#headLength += take;
    i += take;
    if (this.#headLength < this.#headNeeded) return i;
    if (this.#headNeeded === 2) {
      this.#headNeeded = this.#checkFirstTwoBytes();
      if (this.#headLength < this.#headNeeded) return i;
    }
    this.#startPayload();
    return i;
  }

  /** Validates byte 0 and 1 (§5.2) and returns the full header length they announce. */
  #checkFirstTwoBytes(): number {
    const b0 = this.#head![0];
    const b1 = this.#head![1];
    if (b0 & 0x70) throw new ProtocolError("reserved-bits");
    const opcode = b0 & 0x0f;
    if (!isKnownOpcode(opcode)) throw new ProtocolError("unknown-opcode");
    const fin = (b0 & 0x80) !== 0;
    const masked = (b1 & 0x80) !== 0;
    const len7 = b1 & 0x7f;
    if (isControlOpcode(opcode)) {
      if (!fin) throw new ProtocolError("control-fragmented");
      if (len7 > 125) throw new ProtocolError("control-too-long");
    }
    if (masked !== this.#masked) throw new ProtocolError("unmasked-frame");
    this.#fin = fin;
    this.#opcode = opcode;
    const extended = len7 === 126 ? 2 : len7 === 127 ? 8 : 0;
    return 2 + extended + (masked ? 4 : 0);
  }

  #startPayload(): void {
    const head = this.#head!;
    const len7 = head[1] & 0x7f;
    let length: number;
    let at = 2;
    if (len7 === 126) {
      length = (head[2] << 8) | head[3];
      at = 4;
    } else if (len7 === 127) {
      const high = ((head[2] << 24) | (head[3] << 16) | (head[4] << 8) | head[5]) >>> 0;
      if (high & 0x80000000) throw new ProtocolError("length-top-bit");
      const low = ((head[6] << 24) | (head[7] << 16) | (head[8] << 8) | head[9]) >>> 0;
      length = high * 0x1_0000_0000 + low;
      at = 10;
    } else {
      length = len7;
    }
    if (!isControlOpcode(this.#opcode) && length > this.maxPayloadBytes) {
      throw new ProtocolError("message-too-big");
    }
    if (this.#masked) (this.#mask ??= new Uint8Array(4)).set(head.subarray(at, at + 4));
    this.#headLength = 0;
    this.#headNeeded = 2;
    this.#payload = new Uint8Array(length);
    this.#payloadOffset = 0;
    if (length === 0) this.#emit();
    else this.#state = State.Payload;
  }

  #readPayload(chunk: Uint8Array, i: number): number {
    const payload = this.#payload;
    const take = Math.min(payload.length - this.#payloadOffset, chunk.length - i);
    const start = this.#payloadOffset;
    if (this.#masked) {
      const mask = this.#mask!;
      for (let j = 0; j < take; j++) payload[start + j] = chunk[i + j] ^ mask[(start + j) & 3];
    } else {
      payload.set(chunk.subarray(i, i + take), start);
    }
    this.#payloadOffset += take;
    if (this.#payloadOffset === payload.length) {
      this.#state = State.Header;
      this.#emit();
    }
    return i + take;
  }

  #emit(): void {
    const frame: Frame = { fin: this.#fin, opcode: this.#opcode, payload: this.#payload };
    this.#payload = EMPTY;
    this.#onFrame(frame);
  }
}

const EMPTY = new Uint8Array(0);
