/**
 * Small read buffers for idle connections, cut from shared slabs.
 *
 * Every connection keeps a read pending on its socket, and a pending read holds its buffer. A
 * buffer of its own per client is an `ArrayBuffer` object plus a separate allocation; cutting
 * them from 64 KiB slabs leaves one view per client. Reads into disjoint ranges of one
 * `ArrayBuffer` are independent, so sharing a slab is safe as long as a slot has one owner at a
 * time: a slot goes back to the pool only once no read into it is pending.
 *
 * @module
 */

/** The size of one slot: what clients of a push server send (pongs, commands) fits. */
export const READ_SLOT_BYTES = 128;

/** Slots per slab (a slab is 64 KiB). */
const SLOTS_PER_SLAB = 512;

/**
 * A free list of fixed-size views into shared slabs. Slabs are kept once made: the pool is as
 * large as the most connections seen at once, about 130 bytes per connection.
 *
 * @example
 * ```ts
 * const pool = new ReadBufferPool();
 * const buffer = pool.take(); // 128 bytes, part of a shared slab
 * pool.give(buffer); // only once no read into it is pending
 * ```
 */
export class ReadBufferPool {
  readonly #free: Uint8Array[] = [];
  #slabs = 0;

  /** A free slot of {@linkcode READ_SLOT_BYTES} bytes; its previous contents are undefined. */
  take(): Uint8Array {
    if (this.#free.length === 0) this.#addSlab();
    return this.#free.pop()!;
  }

  /** Returns a slot taken from this pool. No read into it may still be pending. */
  give(slot: Uint8Array): void {
    this.#free.push(slot);
  }

  /** Slots not in use now. */
  get free(): number {
    return this.#free.length;
  }

  /** Slabs made so far. */
  get slabs(): number {
    return this.#slabs;
  }

  #addSlab(): void {
    const slab = new Uint8Array(READ_SLOT_BYTES * SLOTS_PER_SLAB);
    // Pushed last-first so slots are handed out in address order (good for the caches).
    for (let i = SLOTS_PER_SLAB - 1; i >= 0; i--) {
      this.#free.push(slab.subarray(i * READ_SLOT_BYTES, (i + 1) * READ_SLOT_BYTES));
    }
    this.#slabs++;
  }
}

/** The pool the connections of this process share. */
export const readBuffers: ReadBufferPool = new ReadBufferPool();
