/**
 * The server's write window: at most {@linkcode WritePool.limit} socket writes in flight at once,
 * and writers with frames waiting served in arrival order (FIFO).
 *
 * Why: each `Deno.Conn.write` is an async op, and with thousands of them pending the runtime does
 * not complete them in the order they were issued. Measured on 1,000 sockets kept busy by
 * independent push loops (one core, 64 B frames, 2026-12-02): 134k writes/s but single writes
 * waiting up to 1.4 s (p99 36 ms), while the same loops through a window of 32 wrote 137k/s with
 * no write waiting longer than 7.5 ms. That starvation was the tail of our publish-to-delivery
 * latency. A FIFO of writers is also fair: under load every socket is written once per round of
 * the FIFO, and whatever was queued for it meanwhile leaves in that one write, so coalescing
 * grows with the load instead of costing a fixed delay at low load.
 *
 * A peer that stopped reading keeps its write pending forever; such a write gives its slot back
 * after one to two {@linkcode WritePool.stallMs} (writes do not read the clock: the watchdog
 * stamps a pending write at its first look and frees it at a later one), so stalled peers cannot
 * close the window for the others.
 *
 * Under sustained load the window also pauses every {@linkcode YIELD_EVERY} grants until the
 * runtime's I/O driver has run once ({@linkcode WritePool.yieldWith}): writes to healthy sockets
 * complete without waiting for readiness, so a busy window never leaves the event loop idle, and
 * the runtime then polls other sockets' readiness only now and then. Measured on 1,000 busy
 * sockets (2026-12-02): an HTTP request to the same process took 64 ms (p50) to be answered
 * without the pause and 0.7 ms with it, at the same write rate; those requests are the publishes.
 * In the server (1,000 clients, one POST in flight, C load client) the pause every 32 grants took
 * fan-out from 120k to 2.5M deliveries/s (publishes no longer wait behind writes, so frames of
 * many publishes share each write) at a p99 of 19 ms; every 16: 2.0M, 64: 1.5M, 128: 0.9M.
 *
 * @module
 */
import { clockMs } from "../../clock.ts";
import { pendingFor } from "./write_batch.ts";

/** A writer the pool can hand a slot to. */
export interface PooledWriter {
  /**
   * The stalled-write clock of its pending write (see `WriteClock`); the pool reads it, and
   * stamps it at its first look, to find writes that stalled.
   */
  writeSince: number;
  /** Its turn: write one batch, then call {@linkcode WritePool.release} (at once or later). */
  grant(): void;
}

/** Writes in flight at once by default (the window measured best on 1,000 busy sockets). */
export const WRITE_WINDOW = 32;

/** A write pending this long gives its slot back by default: its peer is not reading. */
export const SLOT_STALL_MS = 20;

/** Grants between two pauses for the I/O driver, by default. */
export const YIELD_EVERY = 32;

/**
 * The write window of one server (see the module doc).
 *
 * @example
 * ```ts
 * const pool = new WritePool(32);
 * pool.request(writer); // writer.grant() now, or when a slot frees up
 * // ... writer.grant() writes one batch, then:
 * pool.release(writer);
 * ```
 */
export class WritePool {
  /** Most writes in flight. */
  readonly limit: number;
  /** A write pending this long no longer holds a slot. */
  readonly stallMs: number;
  /** Writers holding a slot (at most `limit`, so a scan is cheap). */
  readonly #active: PooledWriter[] = [];
  /** Writers waiting for a slot, oldest first from `#head`. */
  #waiting: PooledWriter[] = [];
  #head = 0;
  /** Releases so far: a window that saw none for `stallMs` is stuck on stalled peers. */
  #releases = 0;
  #watchdog: ReturnType<typeof setTimeout> | undefined;
  /** Resolves once the I/O driver has run; null: never pause. */
  #pass: (() => Promise<void>) | null = null;
  #yieldEvery = YIELD_EVERY;
  #grants = 0;
  #paused = false;

  /** A window of `limit` writes; writes pending `stallMs` give their slot back. */
  constructor(limit: number = WRITE_WINDOW, stallMs: number = SLOT_STALL_MS) {
    this.limit = limit;
    this.stallMs = stallMs;
  }

  /** Writes in flight that hold a slot. */
  get active(): number {
    return this.#active.length;
  }

  /** Writers waiting for a slot. */
  get waiting(): number {
    return this.#waiting.length - this.#head;
  }

  /**
   * Asks for a slot for `writer`, which must not be waiting or active already: granted now when
   * one is free, else in arrival order.
   */
  request(writer: PooledWriter): void {
    if (!this.#paused && this.#active.length < this.limit) {
      this.#give(writer);
    } else {
      this.#waiting.push(writer);
      this.#watch();
    }
  }

  /**
   * `writer` is done with its slot (its batch is written, or it had nothing to write, or its
   * write failed); the next waiting writer gets it. A writer whose slot was taken back because it
   * stalled holds none, and releases nothing.
   */
  release(writer: PooledWriter): void {
    const active = this.#active;
    const i = active.indexOf(writer);
    if (i < 0) return;
    active[i] = active[active.length - 1];
    active.pop();
    this.#releases++;
    this.#pump();
  }

  /**
   * Makes the window pause every `every` grants until `pass()` resolves (see the module doc).
   * A `pass` that fails turns pausing off, so a broken yield can never stop the writes.
   */
  yieldWith(pass: () => Promise<void>, every: number = YIELD_EVERY): void {
    this.#pass = pass;
    this.#yieldEvery = every;
  }

  /** Gives `writer` a slot, and starts a pause after every `yieldEvery`th grant. */
  #give(writer: PooledWriter): void {
    this.#active.push(writer);
    if (++this.#grants >= this.#yieldEvery && this.#pass !== null) {
      this.#grants = 0;
      this.#paused = true;
      this.#pass().then(this.#resume, () => {
        this.#pass = null;
        this.#resume();
      });
    }
    writer.grant(); // may release at once (nothing to write), which pumps again: still bounded
  }

  readonly #resume = (): void => {
    this.#paused = false;
    this.#pump();
  };

  /** Grants free slots to waiting writers, oldest first. */
  #pump(): void {
    while (!this.#paused && this.#active.length < this.limit && this.#head < this.#waiting.length) {
      const next = this.#waiting[this.#head];
      this.#waiting[this.#head++] = DONE;
      if (this.#head === this.#waiting.length) {
        this.#waiting = [];
        this.#head = 0;
      } else if (this.#head > 1024 && this.#head * 2 > this.#waiting.length) {
        // Drop the consumed front now and then, so the list does not grow for ever under load.
        this.#waiting = this.#waiting.slice(this.#head);
        this.#head = 0;
      }
      this.#give(next);
    }
  }

  /**
   * Arms the watchdog while writers wait on a full window: when it fires after `stallMs` and no
   * write completed meanwhile, the writes pending that long give their slots back. No clock is
   * read on the hot path, and a moving window costs one timer per `stallMs`.
   */
  #watch(): void {
    if (this.#watchdog !== undefined) return;
    const releases = this.#releases;
    this.#watchdog = setTimeout(() => {
      this.#watchdog = undefined;
      if (this.#releases === releases) this.#evictStalled(clockMs());
      if (this.waiting > 0) this.#watch();
    }, this.stallMs);
  }

  /** Frees the slots of writes pending `stallMs` or more at `now`, then grants them. */
  #evictStalled(now: number): void {
    const active = this.#active;
    for (let i = active.length - 1; i >= 0; i--) {
      if (pendingFor(active[i], now) >= this.stallMs) {
        active[i] = active[active.length - 1];
        active.pop();
      }
    }
    this.#pump();
  }

  /** Stops the watchdog (server shutdown). */
  close(): void {
    clearTimeout(this.#watchdog);
    this.#watchdog = undefined;
  }
}

/** Fills consumed places of the waiting list, so it holds no writer that was served. */
const DONE: PooledWriter = { writeSince: 0, grant() {} };
