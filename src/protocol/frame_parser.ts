/**
 * An incremental RFC 6455 frame parser (§5.2): bytes in, frames out, no I/O.
 *
 * @module
 */
import { startsCompressedMessage } from "./deflate.ts";
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
  /** RSV1 was set (permessage-deflate, first frame of a compressed message); only with `deflate`. */
  compressed?: true;
}

/**
 * Receives frames as their bytes arrive, for a consumer that stores payloads its own way (the
 * message assembler writes every fragment into one buffer and checks text as it comes). Each
 * method may throw a {@linkcode ProtocolError} to fail the stream at that byte.
 */
export interface FrameSink {
  /**
   * A frame's header is complete; none of its `length` payload bytes has been read.
   * `compressed`: RSV1 is set, the first frame of a permessage-deflate message (only ever true
   * when the parser was made with `deflate`).
   */
  frameStart(fin: boolean, opcode: number, length: number, compressed: boolean): void;
  /**
   * The next `count` payload bytes of the frame: `chunk[from, from + count)`, still masked with
   * `key`, starting at payload offset `offset`. Copy them out with {@linkcode unmaskInto}; the
   * chunk is the caller's read buffer and must not be kept.
   */
  framePayload(chunk: Uint8Array, from: number, count: number, key: number, offset: number): void;
  /** The frame's payload is complete. */
  frameEnd(): void;
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
  /**
   * permessage-deflate was negotiated: RSV1 is allowed on the first frame of a data message
   * (RFC 7692 §6), and reported to the sink. Default false: any RSV bit fails with 1002.
   */
  deflate?: boolean;
}

const enum State {
  Header,
  Payload,
  Stopped,
  Failed,
}

/** The smallest buffer {@linkcode growBuffer} makes, so byte-sized reads do not regrow it often. */
const MIN_BUFFER = 256;

/**
 * Parses frames from a byte stream split in any way. Call {@linkcode FrameParser.push} with each
 * chunk read from the socket; every frame is handed on synchronously, in order: whole to an
 * `onFrame` callback, or piece by piece to a {@linkcode FrameSink}.
 *
 * It never sizes a buffer from an untrusted length: the announced payload length is checked
 * against {@linkcode FrameParser.maxPayloadBytes}, and a payload buffer grows with the bytes that
 * actually arrived (a 14-byte header announcing 1 MiB costs nothing). Between frames it holds no
 * buffer at all: the header is decoded into numbers. The input chunk is never retained, so the
 * caller may reuse its read buffer.
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
  /** The largest data-frame payload accepted. */
  maxPayloadBytes: number;

  readonly #masked: boolean;
  readonly #deflate: boolean;
  readonly #sink: FrameSink;
  /** Set when frames go to an `onFrame` callback: it assembles each payload. */
  readonly #assembler: FrameAssembler | null = null;
  #state = State.Header;
  /** Header bytes read so far, and how many this header has (known after its 2nd byte). */
  #headLength = 0;
  #headNeeded = 2;
  /** The first header byte: FIN, RSV and opcode. */
  #b0 = 0;
  /** The payload length: accumulated from the header, then counted down as payload arrives. */
  #remaining = 0;
  /** The masking key, big-endian in one number (no per-connection array). */
  #key = 0;
  /** Payload bytes of the current frame read so far (the masking key's phase). */
  #offset = 0;
  /** Set by {@linkcode FrameParser.yieldChunk}: the current push returns after this frame. */
  #yield = false;

  /** Creates a parser that hands frames to `sink`, or each whole frame to an `onFrame` callback. */
  constructor(options: FrameParserOptions, sink: FrameSink | ((frame: Frame) => void)) {
    this.#masked = options.role === "server";
    this.#deflate = options.deflate ?? false;
    this.maxPayloadBytes = options.maxPayloadBytes;
    if (typeof sink === "function") {
      this.#assembler = new FrameAssembler(sink);
      this.#sink = this.#assembler;
    } else {
      this.#sink = sink;
    }
  }

  /** Bytes held for a frame not yet complete: its header so far, or its payload buffer. */
  get bufferedBytes(): number {
    return this.#headLength + (this.#assembler?.bufferedBytes ?? 0);
  }

  /**
   * Feeds the next chunk of the stream and returns how many of its bytes were consumed: all of
   * them, unless the sink called {@linkcode FrameParser.yieldChunk}; the caller then pushes the
   * rest (`chunk.subarray(consumed)`) later. Throws {@linkcode ProtocolError} when the peer
   * broke the protocol; the parser is unusable afterwards (the connection must be failed).
   */
  push(chunk: Uint8Array): number {
    if (this.#state === State.Failed) throw new Error("FrameParser used after a protocol error");
    this.#yield = false;
    try {
      let i = 0;
      while (i < chunk.length && this.#state !== State.Stopped) {
        i = this.#state === State.Header ? this.#readHeader(chunk, i) : this.#readPayload(chunk, i);
        if (this.#yield) return i;
      }
      return chunk.length;
    } catch (err) {
      this.#state = State.Failed;
      throw err;
    }
  }

  /**
   * Makes the push in progress return after the frame being handed on, with the rest of its
   * chunk unconsumed (a sink calls it from `frameEnd`): the caller handles what was produced so
   * far before it feeds more. The message reader uses it to bound what one push inflates.
   */
  yieldChunk(): void {
    this.#yield = true;
  }

  /**
   * Ignores the rest of the stream from here on, including the rest of the chunk being pushed
   * (a sink calls it after a close frame, §5.5.1: nothing after it is read).
   */
  stop(): void {
    if (this.#state !== State.Failed) this.#state = State.Stopped;
  }

  #readHeader(chunk: Uint8Array, i: number): number {
    const end = chunk.length;
    while (i < end) {
      const b = chunk[i++];
      const at = this.#headLength++;
      if (at === 0) {
        this.#b0 = b;
      } else if (at === 1) {
        this.#headNeeded = this.#checkFirstTwoBytes(b);
      } else if (at < this.#headNeeded - (this.#masked ? 4 : 0)) {
        // Extended length, big-endian. A set top bit (§5.2: it MUST be 0) becomes Infinity,
        // which no limit admits and the remaining bytes cannot change.
        const top = at === 2 && this.#headNeeded - (this.#masked ? 4 : 0) === 10 && b >= 0x80;
        this.#remaining = top ? Infinity : this.#remaining * 256 + b;
      } else {
        this.#key = (this.#key << 8) | b;
      }
      if (this.#headLength === this.#headNeeded) {
        this.#startPayload();
        return i;
      }
    }
    return i;
  }

  /** Validates bytes 0 and 1 (§5.2) and returns the full header length they announce. */
  #checkFirstTwoBytes(b1: number): number {
    const b0 = this.#b0;
    // RSV2/RSV3 always, RSV1 unless deflate applies to this frame: 1002 (RFC 7692 §6.1).
    if (b0 & 0x70) startsCompressedMessage(b0, this.#deflate);
    const opcode = b0 & 0x0f;
    if (!isKnownOpcode(opcode)) throw new ProtocolError("unknown-opcode");
    const masked = (b1 & 0x80) !== 0;
    const len7 = b1 & 0x7f;
    if (isControlOpcode(opcode)) {
      if (!(b0 & 0x80)) throw new ProtocolError("control-fragmented");
      if (len7 > 125) throw new ProtocolError("control-too-long");
    }
    if (masked !== this.#masked) throw new ProtocolError("unmasked-frame");
    this.#remaining = len7 < 126 ? len7 : 0;
    this.#key = 0;
    const extended = len7 === 126 ? 2 : len7 === 127 ? 8 : 0;
    return 2 + extended + (masked ? 4 : 0);
  }

  #startPayload(): void {
    const length = this.#remaining;
    if (length === Infinity) throw new ProtocolError("length-top-bit");
    const opcode = this.#b0 & 0x0f;
    if (!isControlOpcode(opcode) && length > this.maxPayloadBytes) {
      throw new ProtocolError("message-too-big");
    }
    this.#headLength = 0;
    this.#headNeeded = 2;
    this.#offset = 0;
    this.#sink.frameStart((this.#b0 & 0x80) !== 0, opcode, length, (this.#b0 & 0x40) !== 0);
    if (length === 0) this.#sink.frameEnd();
    else this.#state = State.Payload;
  }

  #readPayload(chunk: Uint8Array, i: number): number {
    const take = Math.min(this.#remaining, chunk.length - i);
    this.#sink.framePayload(chunk, i, take, this.#key, this.#offset);
    this.#offset += take;
    this.#remaining -= take;
    if (this.#remaining === 0) {
      // Set before the sink runs, so a stop() in frameEnd is not overwritten.
      this.#state = State.Header;
      this.#sink.frameEnd();
    }
    return i + take;
  }
}

/**
 * Copies `count` bytes of `chunk` from `from` to `target` at `at`, unmasking them (§5.3) with
 * the big-endian masking `key` from payload offset `offset` (key 0: a plain copy).
 */
export function unmaskInto(
  target: Uint8Array,
  at: number,
  chunk: Uint8Array,
  from: number,
  count: number,
  key: number,
  offset: number,
): void {
  if (key === 0) {
    target.set(
      from === 0 && count === chunk.length ? chunk : chunk.subarray(from, from + count),
      at,
    );
    return;
  }
  // The key rotated so its first byte applies at `at`; then four bytes per step.
  const shift = (offset & 3) * 8;
  const k = shift === 0 ? key : (key << shift) | (key >>> (32 - shift));
  const k0 = (k >>> 24) & 0xff, k1 = (k >>> 16) & 0xff, k2 = (k >>> 8) & 0xff, k3 = k & 0xff;
  let j = 0;
  for (; j + 3 < count; j += 4) {
    target[at + j] = chunk[from + j] ^ k0;
    target[at + j + 1] = chunk[from + j + 1] ^ k1;
    target[at + j + 2] = chunk[from + j + 2] ^ k2;
    target[at + j + 3] = chunk[from + j + 3] ^ k3;
  }
  if (j < count) target[at + j] = chunk[from + j] ^ k0;
  if (j + 1 < count) target[at + j + 1] = chunk[from + j + 1] ^ k1;
  if (j + 2 < count) target[at + j + 2] = chunk[from + j + 2] ^ k2;
}

/**
 * A buffer of at least `needed` bytes holding the first `used` bytes of `buffer`: double the
 * old size (at least {@linkcode MIN_BUFFER}) or `needed` if more, but never more than `limit`.
 * Growing with the bytes that arrived, not with an announced length, keeps what a peer can make
 * the server hold proportional to what it actually sent; doubling keeps the copies linear.
 */
export function growBuffer(
  buffer: Uint8Array,
  used: number,
  needed: number,
  limit: number,
): Uint8Array {
  const size = Math.min(limit, Math.max(needed, buffer.length * 2, MIN_BUFFER));
  const grown = new Uint8Array(size);
  if (used > 0) grown.set(used === buffer.length ? buffer : buffer.subarray(0, used));
  return grown;
}

const EMPTY: Uint8Array = new Uint8Array(0);

/** The sink behind the `onFrame` form: each payload in a buffer of its own, grown as it arrives. */
class FrameAssembler implements FrameSink {
  readonly #onFrame: (frame: Frame) => void;
  #fin = false;
  #opcode = 0;
  #length = 0;
  #compressed = false;
  #payload = EMPTY;
  #written = 0;

  constructor(onFrame: (frame: Frame) => void) {
    this.#onFrame = onFrame;
  }

  get bufferedBytes(): number {
    return this.#payload.length;
  }

  frameStart(fin: boolean, opcode: number, length: number, compressed: boolean): void {
    this.#fin = fin;
    this.#opcode = opcode;
    this.#length = length;
    this.#compressed = compressed;
    this.#written = 0;
  }

  framePayload(chunk: Uint8Array, from: number, count: number, key: number, offset: number): void {
    const needed = this.#written + count;
    // Capped at the announced length, so the last growth lands on it exactly: the frame is
    // handed out without a trimming copy.
    if (needed > this.#payload.length) {
      this.#payload = growBuffer(this.#payload, this.#written, needed, this.#length);
    }
    unmaskInto(this.#payload, this.#written, chunk, from, count, key, offset);
    this.#written = needed;
  }

  frameEnd(): void {
    const payload = this.#length === 0 ? new Uint8Array(0) : this.#payload;
    this.#payload = EMPTY;
    const frame: Frame = { fin: this.#fin, opcode: this.#opcode, payload };
    if (this.#compressed) frame.compressed = true;
    this.#onFrame(frame);
  }
}
