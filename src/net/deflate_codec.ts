/**
 * permessage-deflate (RFC 7692) compression and decompression on `node:zlib` (part of Deno),
 * synchronous so that the broadcast path and the frame parser stay synchronous.
 *
 * Compression: {@linkcode compressMessage}, raw DEFLATE in a fresh context per message (we always
 * negotiate `server_no_context_takeover`), so one broadcast is compressed once and the same
 * bytes go to every subscriber. No compressor state exists between calls.
 *
 * Decompression: one {@linkcode Inflater} per connection. It holds nothing while no compressed
 * message is being read, except — only if the client keeps its context (no
 * `client_no_context_takeover`) — the last 2^client_max_window_bits bytes it sent, the LZ77
 * window its next message may refer to. There is no zlib stream kept per connection: each
 * message is inflated by one `inflateRawSync` call whose input starts with that window as a
 * stored (uncompressed) DEFLATE block, so the back-references resolve against it; the window is
 * then cut off the output. That keeps the retained state to a plain byte array (zlib's own
 * would be ~7 KiB of state plus the same window, plus a Node stream object), handles a
 * BFINAL block mid-connection (§7.2.3.4) for free, and uses only public, synchronous APIs.
 *
 * @module
 */
import zlib from "node:zlib";
import type { DeflateParams } from "../protocol/deflate.ts";
import { DEFLATE_TAIL, maxCompressedBytes, stripDeflateTail } from "../protocol/deflate.ts";

const Z_SYNC_FLUSH = zlib.constants.Z_SYNC_FLUSH;
/**
 * What follows a message's payload when we inflate it: the §7.2.2 tail (`00 00 ff ff`), then a
 * final empty stored block (`01 00 00 ff ff`) so zlib must reach a clean end of stream. A
 * payload cut inside a block then fails (zlib reads our bytes as part of the broken block)
 * instead of inflating to a silently truncated message, as a sync-flush inflate would.
 */
const END_OF_MESSAGE = new Uint8Array([...DEFLATE_TAIL, 0x01, 0x00, 0x00, 0xff, 0xff]);
/** zlib's output chunk (its default): a bomb costs at most the cap plus about this much. */
const OUTPUT_CHUNK = 16 * 1024;

/** Why a compressed message was refused, and the close code it earns. */
export const DEFLATE_FAILURES = {
  "inflated-too-big": [1009, "message too big once inflated"],
  "compressed-too-big": [1009, "compressed message too big"],
  "bad-deflate-data": [1007, "invalid compressed data"],
} as const;

/** A stable identifier of a decompression failure. */
export type DeflateFailure = keyof typeof DEFLATE_FAILURES;

/**
 * Thrown by {@linkcode Inflater}; carries the close code like the protocol core's
 * `ProtocolError` (1009 for size, 1007 for data zlib cannot inflate).
 */
export class DeflateError extends Error {
  /** The stable identifier, for logs and metrics. */
  readonly failure: DeflateFailure;
  /** The close code to send: 1007 or 1009. */
  readonly closeCode: number;

  /** Creates the error for `failure` with its close code and text. */
  constructor(failure: DeflateFailure) {
    const [closeCode, text] = DEFLATE_FAILURES[failure];
    super(text);
    this.name = "DeflateError";
    this.failure = failure;
    this.closeCode = closeCode;
  }
}

/** Options of {@linkcode compressMessage}. */
export interface CompressOptions {
  /** The LZ77 window (9–15): the agreed `server_max_window_bits`. Default 15. */
  windowBits?: number;
  /** zlib level 0–9; default 6 (zlib's own). */
  level?: number;
}

/**
 * Compresses one message payload as RFC 7692 §7.2.1 says: raw DEFLATE, sync flush, the final
 * `00 00 ff ff` removed. Fresh context each call (no context takeover). The result is the frame
 * payload to send with RSV1 set on the first frame.
 */
export function compressMessage(bytes: Uint8Array, options: CompressOptions = {}): Uint8Array {
  const out = zlib.deflateRawSync(bytes, {
    finishFlush: Z_SYNC_FLUSH,
    windowBits: windowBitsFor(bytes.length, options.windowBits ?? 15),
    level: options.level ?? 6,
  });
  return stripDeflateTail(new Uint8Array(out.buffer, out.byteOffset, out.length));
}

/**
 * The smallest window that loses nothing for a message of `length` bytes, up to `max`: zlib
 * never matches further back than the window minus 262 bytes, so a window of at least
 * length + 262 finds every match a 32 KiB one would. A small window makes zlib's per-call setup
 * (its state is 2^(bits+2) bytes plus the hash table) cheaper: 64 B messages compress ~25 %
 * faster. Never under 9 (zlib's raw minimum).
 */
export function windowBitsFor(length: number, max: number): number {
  return Math.min(max, Math.max(9, Math.ceil(Math.log2(length + 262))));
}

/** Writes the 5-byte header of a non-final stored DEFLATE block of `length` (< 65536) bytes. */
function writeStoredHeader(out: Uint8Array, length: number): void {
  out[0] = 0x00; // BFINAL 0, BTYPE 00, padding to the byte boundary
  out[1] = length & 0xff;
  out[2] = length >>> 8;
  out[3] = ~length & 0xff;
  out[4] = (~length >>> 8) & 0xff;
}

/**
 * Inflates the compressed messages of one connection, synchronously, with a hard cap on the
 * inflated size. Feed the payload of every frame of a compressed message to
 * {@linkcode Inflater.push} (unmasked; copied, so the caller may reuse its buffer) and call
 * {@linkcode Inflater.finish} on the final frame.
 *
 * Memory: while a message is read, its compressed bytes (capped near `maxMessageBytes`); during
 * `finish`, zlib's transient state and the output, which zlib stops producing as soon as it
 * would exceed the cap (`maxOutputLength`), so a bomb costs at most cap + one zlib chunk. Between
 * messages: nothing, or the window described in the module documentation.
 */
export class Inflater {
  readonly #maxMessageBytes: number;
  readonly #maxCompressedBytes: number;
  readonly #windowSize: number;
  readonly #keepWindow: boolean;
  #chunks: Uint8Array[] = [];
  #compressedBytes = 0;
  #window: Uint8Array | null = null;
  #windowLength = 0;

  /**
   * @param params the agreed parameters (the client window and whether it keeps its context)
   * @param maxMessageBytes the largest inflated message accepted (`--max-message-bytes`)
   */
  constructor(
    params: Pick<DeflateParams, "clientMaxWindowBits" | "clientNoContextTakeover">,
    maxMessageBytes: number,
  ) {
    this.#maxMessageBytes = maxMessageBytes;
    this.#maxCompressedBytes = maxCompressedBytes(maxMessageBytes);
    this.#windowSize = 1 << params.clientMaxWindowBits;
    this.#keepWindow = !params.clientNoContextTakeover;
  }

  /** Bytes held between messages (the LZ77 window under context takeover), for metrics. */
  get retainedBytes(): number {
    return this.#window?.length ?? 0;
  }

  /** Compressed bytes of the message being read. */
  get pendingBytes(): number {
    return this.#compressedBytes;
  }

  /** Appends the (unmasked) payload of the next frame of the compressed message. */
  push(payload: Uint8Array): void {
    if (payload.length === 0) return;
    this.#compressedBytes += payload.length;
    if (this.#compressedBytes > this.#maxCompressedBytes) {
      this.abort();
      throw new DeflateError("compressed-too-big");
    }
    this.#chunks.push(payload.slice());
  }

  /**
   * Inflates the message pushed so far (§7.2.2: append `00 00 ff ff`, inflate) and returns its
   * payload. Throws a {@linkcode DeflateError}: 1009 when the inflated size would exceed the cap,
   * 1007 when zlib rejects the data (including a back-reference beyond the client's window).
   */
  finish(): Uint8Array {
    const windowLength = this.#keepWindow ? this.#windowLength : 0;
    const prefix = windowLength > 0 ? 5 + windowLength : 0;
    // An empty payload is not DEFLATE data ("00" is the empty message, §7.2.3.6), but zlib-based
    // peers inflate it to nothing without complaint; so do we, without touching the window.
    if (this.#compressedBytes === 0) return new Uint8Array(0);
    const input = new Uint8Array(prefix + this.#compressedBytes + END_OF_MESSAGE.length);
    if (prefix > 0) {
      writeStoredHeader(input, windowLength);
      input.set(this.#window!.subarray(0, windowLength), 5);
    }
    let offset = prefix;
    for (const chunk of this.#chunks) {
      input.set(chunk, offset);
      offset += chunk.length;
    }
    input.set(END_OF_MESSAGE, offset);
    this.#chunks = [];
    this.#compressedBytes = 0;
    let out: Uint8Array;
    try {
      out = zlib.inflateRawSync(input, {
        maxOutputLength: windowLength + this.#maxMessageBytes,
        // The window comes back first: one output chunk for it and a small message halves
        // the cost of a takeover message (zlib's sync loop calls back into JS per chunk).
        chunkSize: windowLength + OUTPUT_CHUNK,
      });
    } catch (error) {
      // A failed message fails the connection: the window is useless now.
      this.#dropWindow();
      const code = (error as { code?: string }).code;
      throw new DeflateError(
        code === "ERR_BUFFER_TOO_LARGE" ? "inflated-too-big" : "bad-deflate-data",
      );
    }
    if (this.#keepWindow) this.#remember(out);
    return new Uint8Array(out.buffer, out.byteOffset + windowLength, out.length - windowLength);
  }

  /** Drops the message being read (the connection is closing, or failed). */
  abort(): void {
    this.#chunks = [];
    this.#compressedBytes = 0;
  }

  /** Releases everything (the connection is gone). */
  release(): void {
    this.abort();
    this.#dropWindow();
  }

  #dropWindow(): void {
    this.#window = null;
    this.#windowLength = 0;
  }

  /** Keeps the last window-size bytes of `history` (old window + this message). */
  #remember(history: Uint8Array): void {
    const length = Math.min(this.#windowSize, history.length);
    if (this.#window === null || this.#window.length < length) {
      // Grow by doubling up to the window size, so short chatty clients keep little.
      const capacity = Math.min(
        this.#windowSize,
        Math.max(length, 2 * (this.#window?.length ?? 0)),
      );
      this.#window = new Uint8Array(capacity);
    }
    this.#window.set(history.subarray(history.length - length));
    this.#windowLength = length;
  }
}
