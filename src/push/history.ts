/**
 * Per-channel history: the last N publications as the exact frames sent, with increasing ids,
 * so a client that reconnects with its last id gets exactly what it missed — or is told plainly
 * that it cannot.
 *
 * @module
 */

/** One stored publication. */
export interface HistoryEntry {
  /** The publication id within its channel (1, 2, 3 …). */
  id: number;
  /** The encoded WebSocket frame that subscribers received. */
  frame: Uint8Array;
}

/** The answer to "what came after id X?". */
export type Recovery =
  | { recovered: true; entries: HistoryEntry[] }
  | { recovered: false; reason: string };

/**
 * A ring buffer of the last `capacity` publications of one channel, also bounded in bytes.
 *
 * @example
 * ```ts
 * const history = new History(100, 1 << 20);
 * history.add(history.nextId(), frame);
 * history.since(0); // { recovered: true, entries: [{ id: 1, frame }] }
 * ```
 */
export class History {
  readonly #capacity: number;
  readonly #maxBytes: number;
  #entries: HistoryEntry[] = [];
  #head = 0;
  #bytes = 0;
  #lastId = 0;

  /** Keeps at most `capacity` entries and `maxBytes` of frames (the newest entry always stays). */
  constructor(capacity: number, maxBytes: number) {
    this.#capacity = capacity;
    this.#maxBytes = maxBytes;
  }

  /** The id of the newest publication (0 before the first). */
  get lastId(): number {
    return this.#lastId;
  }

  /** The id the next publication gets. */
  nextId(): number {
    return this.#lastId + 1;
  }

  /** Entries held. */
  get size(): number {
    return this.#entries.length - this.#head;
  }

  /** Bytes of frames held. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Records publication `id` (must be {@linkcode History.nextId}) and evicts the oldest beyond the limits. */
  add(id: number, frame: Uint8Array): void {
    this.#lastId = id;
    if (this.#capacity === 0) return;
    this.#entries.push({ id, frame });
    this.#bytes += frame.length;
    while (this.size > this.#capacity || (this.#bytes > this.#maxBytes && this.size > 1)) {
      this.#bytes -= this.#entries[this.#head].frame.length;
      this.#head++;
    }
    // Compact now and then so the array does not grow without bound.
    if (this.#head > 1024 && this.#head * 2 > this.#entries.length) {
      this.#entries = this.#entries.slice(this.#head);
      this.#head = 0;
    }
  }

  /**
   * The publications after `id`, oldest first, if history still holds all of them.
   * `id` equal to {@linkcode History.lastId} recovers nothing and misses nothing.
   */
  since(id: number): Recovery {
    if (id > this.#lastId) {
      return {
        recovered: false,
        reason: `id ${id} is ahead of the channel's last id ${this.#lastId}`,
      };
    }
    if (id === this.#lastId) return { recovered: true, entries: [] };
    const oldest = this.size > 0 ? this.#entries[this.#head].id : this.#lastId + 1;
    if (id + 1 < oldest) {
      return {
        recovered: false,
        reason: `history holds ids ${oldest}..${this.#lastId}; ${
          oldest - id - 1
        } message(s) after ${id} are gone`,
      };
    }
    return { recovered: true, entries: this.#entries.slice(this.#head + (id + 1 - oldest)) };
  }
}
