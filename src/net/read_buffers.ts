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
 * Empty slabs a pool keeps for the next clients; beyond them an emptied slab is released. One
 * slab is 512 connections' read slots or 64 handshakes: enough that ordinary churn does not
 * cut and release slabs over and over.
 */
const RESERVE_SLABS = 1;

/**
 * A free list of fixed-size views into shared slabs. The pool grows by a slab when it runs out,
 * and releases a slab once every slot of it is back and another empty slab is already kept: after
 * a burst of clients has gone, the pool is back to one spare slab instead of staying as large as
 * the most slots ever in use at once (for connections, about 230 bytes each with the view).
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
  readonly #perSlab: number;
  #free: Uint8Array[] = [];
  /** Slots in use per slab: what tells when a slab is empty again. */
  readonly #inUse = new Map<ArrayBufferLike, number>();
  /** Slabs with no slot in use (at most {@linkcode RESERVE_SLABS} stay). */
  #empty = 0;

  /** Creates an empty pool of `slotBytes` slots (a divisor of 64 KiB). */
  constructor(slotBytes: number) {
    this.slotBytes = slotBytes;
    this.#perSlab = SLAB_BYTES / slotBytes;
  }

  /** A free slot of {@linkcode ReadBufferPool.slotBytes}; its previous contents are undefined. */
  take(): Uint8Array {
    if (this.#free.length === 0) this.#addSlab();
    const slot = this.#free.pop()!;
    const used = this.#inUse.get(slot.buffer)!;
    if (used === 0) this.#empty--;
    this.#inUse.set(slot.buffer, used + 1);
    return slot;
  }

  /** Returns a slot taken from this pool. No read into it may still be pending. */
  give(slot: Uint8Array): void {
    this.#free.push(slot);
    const used = this.#inUse.get(slot.buffer)! - 1;
    this.#inUse.set(slot.buffer, used);
    if (used === 0 && ++this.#empty > RESERVE_SLABS) this.#release(slot.buffer);
  }

  /** Slots not in use now. */
  get free(): number {
    return this.#free.length;
  }

  /** Slabs held now. */
  get slabs(): number {
    return this.#inUse.size;
  }

  /** Bytes of slabs held now. */
  get bytes(): number {
    return this.#inUse.size * SLAB_BYTES;
  }

  #addSlab(): void {
    const size = this.slotBytes;
    const slab = new Uint8Array(SLAB_BYTES);
    // Pushed last-first so slots are handed out in address order (good for the caches).
    for (let i = this.#perSlab - 1; i >= 0; i--) {
      this.#free.push(slab.subarray(i * size, (i + 1) * size));
    }
    this.#inUse.set(slab.buffer, 0);
    this.#empty++;
  }

  /**
   * Drops an empty slab's slots from the free list, so the slab can be collected. The scan is
   * over the free list, once per released slab: only when clients leave by the hundreds.
   */
  #release(slab: ArrayBufferLike): void {
    this.#free = this.#free.filter((slot) => slot.buffer !== slab);
    this.#inUse.delete(slab);
    this.#empty--;
  }
}

/** The read slots the connections of this process share. */
export const readBuffers: ReadBufferPool = new ReadBufferPool(READ_SLOT_BYTES);

/** The slots handshakes of this process read their request heads into. */
export const headBuffers: ReadBufferPool = new ReadBufferPool(HEAD_SLOT_BYTES);
