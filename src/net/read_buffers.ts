/**
 * Small read buffers for idle connections and handshakes, cut from shared slabs.
 *
 * Every connection keeps a read pending on its socket, and a pending read holds its buffer. A
 * buffer of its own per client is an `ArrayBuffer` object plus a separate allocation; cutting
 * them from 64 KiB slabs leaves one view per client. Reads into disjoint ranges of one
 * `ArrayBuffer` are independent, so sharing a slab is safe as long as a slot has one owner at a
 * time: a slot goes back to the pool only once no read into it is pending. Handshakes read their
 * request head into 1 KiB slots the same way, so accepting a client allocates no buffer.
 *
 * @module
 */

/** The size of a connection's read slot: what clients of a push server send (pongs, commands) fits. */
export const READ_SLOT_BYTES = 128;

/** The size of a handshake's slot: most request heads fit (larger ones get a buffer of their own). */
export const HEAD_SLOT_BYTES = 1024;

/** The size of a slab. */
const SLAB_BYTES = 64 * 1024;

/**
 * A free list of fixed-size views into shared slabs. Slabs are kept once made: the pool is as
 * large as the most slots in use at once (for connections, about 230 bytes each with the view).
 *
 * @example
 * ```ts
 * const pool = new ReadBufferPool(128);
 * const buffer = pool.take(); // 128 bytes, part of a shared slab
 * pool.give(buffer); // only once no read into it is pending
 * ```
 */
export class ReadBufferPool {
  /** The size of each slot. */
  readonly slotBytes: number;
  readonly #free: Uint8Array[] = [];
  #slabs = 0;

  /** Creates an empty pool of `slotBytes` slots (a divisor of 64 KiB). */
  constructor(slotBytes: number) {
    this.slotBytes = slotBytes;
  }

  /** A free slot of {@linkcode ReadBufferPool.slotBytes}; its previous contents are undefined. */
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
    const size = this.slotBytes;
    const slab = new Uint8Array(SLAB_BYTES);
    // Pushed last-first so slots are handed out in address order (good for the caches).
    for (let i = SLAB_BYTES / size - 1; i >= 0; i--) {
      this.#free.push(slab.subarray(i * size, (i + 1) * size));
    }
    this.#slabs++;
  }
}

/** The read slots the connections of this process share. */
export const readBuffers: ReadBufferPool = new ReadBufferPool(READ_SLOT_BYTES);

/** The slots handshakes of this process read their request heads into. */
export const headBuffers: ReadBufferPool = new ReadBufferPool(HEAD_SLOT_BYTES);
