/**
 * Per-channel history: the last N publications as the exact frames sent, with increasing ids,
 * so a client that reconnects with its last id gets exactly what it missed — or is told plainly
 * that it cannot.
 *
 * @module
 */
import type { HistoryEntry } from "./broker.ts";
import { reasons } from "./recovery.ts";

/** The answer to "what came after id X?". */
export type Recovery =
  | { recovered: true; entries: HistoryEntry[] }
  | { recovered: false; reason: string };

/** The first ring allocation: most channels hold a few entries, not `capacity`. */
const MIN_SLOTS = 4;

/**
 * A ring buffer of the last `capacity` publications of one channel, also bounded in bytes.
 *
 * Ids are consecutive, so only frames are stored: entry `id` sits `id - oldestId` slots after
 * the oldest. An evicted slot is cleared at once, so `--history-bytes` bounds the memory the
 * frames really hold, not just what is counted (an index that only advanced kept up to 1,024
 * evicted frames alive per channel). The ring grows by doubling up to `capacity` slots.
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
  #ring: (Uint8Array | undefined)[] = [];
  /** The slot of the oldest entry. */
  #start = 0;
  #count = 0;
  #bytes = 0;
  #lastId: number;

  /**
   * Keeps at most `capacity` entries and `maxBytes` of frames (the newest entry always stays).
   * `lastId` is the id before the first one this history will get (0 for a new channel).
   */
  constructor(capacity: number, maxBytes: number, lastId = 0) {
    this.#capacity = capacity;
    this.#maxBytes = maxBytes;
    this.#lastId = lastId;
  }

  /** The id of the newest publication (0 before the first). */
  get lastId(): number {
    return this.#lastId;
  }

  /** The id the next publication gets. */
  nextId(): number {
    return this.#lastId + 1;
  }

  /** The id of the oldest entry held ({@linkcode History.nextId} when empty). */
  get oldestId(): number {
    return this.#lastId - this.#count + 1;
  }

  /** Entries held. */
  get size(): number {
    return this.#count;
  }

  /** Bytes of frames held. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Frames the ring references (evicted ones included, were any kept): for tests. */
  get retained(): number {
    let n = 0;
    for (const frame of this.#ring) if (frame !== undefined) n++;
    return n;
  }

  /** Slots the ring has allocated (at most `capacity`): for tests. */
  get slots(): number {
    return this.#ring.length;
  }

  /** Records publication `id` (must be {@linkcode History.nextId}) and evicts the oldest beyond the limits. */
  add(id: number, frame: Uint8Array): void {
    this.#lastId = id;
    if (this.#capacity === 0) return;
    if (this.#count === this.#ring.length) {
      if (this.#ring.length < this.#capacity) this.#grow();
      else this.#evict();
    }
    this.#ring[(this.#start + this.#count) % this.#ring.length] = frame;
    this.#count++;
    this.#bytes += frame.length;
    while (this.#bytes > this.#maxBytes && this.#count > 1) this.#evict();
  }

  /** The frame of publication `id`, or undefined when history does not hold it. */
  frame(id: number): Uint8Array | undefined {
    const offset = id - this.oldestId;
    if (offset < 0 || offset >= this.#count) return undefined;
    return this.#ring[(this.#start + offset) % this.#ring.length];
  }

  /**
   * Why the publications after `id` cannot all be replayed, or null when they can (`id` equal
   * to {@linkcode History.lastId} recovers nothing and misses nothing).
   */
  gap(id: number): string | null {
    if (id > this.#lastId) return reasons.ahead(id, this.#lastId);
    const oldest = this.oldestId;
    if (id === this.#lastId || id + 1 >= oldest) return null;
    return reasons.gone(id, this.#count > 0 ? oldest : undefined, this.#lastId);
  }

  /** The publications after `id`, oldest first, if history still holds all of them. */
  since(id: number): Recovery {
    const reason = this.gap(id);
    if (reason !== null) return { recovered: false, reason };
    const entries: HistoryEntry[] = [];
    for (let next = id + 1; next <= this.#lastId; next++) {
      entries.push({ id: next, frame: this.frame(next)! });
    }
    return { recovered: true, entries };
  }

  /** Doubles the ring (up to capacity), oldest entry first in slot 0. */
  #grow(): void {
    const length = Math.min(this.#capacity, Math.max(MIN_SLOTS, this.#ring.length * 2));
    const ring = new Array<Uint8Array | undefined>(length);
    for (let i = 0; i < this.#count; i++) {
      ring[i] = this.#ring[(this.#start + i) % this.#ring.length];
    }
    this.#ring = ring;
    this.#start = 0;
  }

  /** Drops the oldest entry and its reference. */
  #evict(): void {
    this.#bytes -= this.#ring[this.#start]!.length;
    this.#ring[this.#start] = undefined;
    this.#start = (this.#start + 1) % this.#ring.length;
    this.#count--;
  }
}
