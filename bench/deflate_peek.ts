/**
 * The load client's view of permessage-deflate frames: the scanner only needs the first bytes
 * of each message (the `"id":`, the `"ts":` and `"seq":`), and DEFLATE is a stream, so the
 * first bytes of a compressed payload inflate to the first bytes of the message
 * (`Z_SYNC_FLUSH` on a cut input returns what it could). Our server compresses each broadcast
 * once (no context takeover), so every client gets the same bytes: the inflated prefix is
 * remembered for the few messages in flight and a delivery costs a byte compare, not an
 * inflate — the load client measures the server, not itself.
 *
 * @module
 */
import zlib from "node:zlib";

/** Compressed bytes of each frame that are looked at (inflated to ~2× as many plain ones). */
export const DEFLATE_PEEK_BYTES = 256;

/** How many recent compressed prefixes are remembered (the messages in flight). */
const ENTRIES = 16;

/** A small memory of inflated prefixes, keyed by the compressed prefix and frame length. */
export class DeflatePeek {
  readonly #keys: (Uint8Array | null)[] = new Array(ENTRIES).fill(null);
  readonly #lengths = new Float64Array(ENTRIES);
  readonly #values: Uint8Array[] = new Array(ENTRIES);
  #next = 0;
  /** Prefixes actually inflated (the rest were remembered). */
  inflated = 0;

  /**
   * The first plain bytes of the compressed message whose payload starts at `b[p..p+peek)` and
   * is `length` bytes long. Empty when zlib can make nothing of it (the scanner then counts a
   * malformed message).
   */
  prefix(b: Uint8Array, p: number, peek: number, length: number): Uint8Array {
    for (let i = 0; i < ENTRIES; i++) {
      const key = this.#keys[i];
      if (key !== null && this.#lengths[i] === length && same(key, b, p, peek)) {
        return this.#values[i];
      }
    }
    const key = b.slice(p, p + peek);
    let value: Uint8Array;
    try {
      const out = zlib.inflateRawSync(key, { finishFlush: zlib.constants.Z_SYNC_FLUSH });
      value = new Uint8Array(out.buffer, out.byteOffset, out.length);
    } catch {
      value = new Uint8Array(0);
    }
    this.inflated++;
    const at = this.#next;
    this.#keys[at] = key;
    this.#lengths[at] = length;
    this.#values[at] = value;
    this.#next = (at + 1) % ENTRIES;
    return value;
  }
}

function same(key: Uint8Array, b: Uint8Array, p: number, peek: number): boolean {
  if (key.length !== peek) return false;
  // From the end: the envelope's start is the same for every message of a channel.
  for (let k = peek - 1; k >= 0; k--) if (key[k] !== b[p + k]) return false;
  return true;
}

/** The one memory every connection of the load client shares. */
export const deflatePeek: DeflatePeek = new DeflatePeek();
