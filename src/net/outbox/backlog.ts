/**
 * Back-pressure for publishers: the bytes waiting in all outgoing queues, and a wait for
 * publishers while that backlog is above a high-water mark.
 *
 * Without it, the publish API accepts publications faster than the server can write them when it
 * is saturated; every queue then grows until healthy clients trip the slow-consumer limit, and
 * latency grows with the backlog. Pacing publishers to delivery keeps both bounded.
 *
 * Each client counts for at most {@linkcode Backlog.perClientCap} bytes, so a few clients that
 * stopped reading (and are on their way to being dropped as slow consumers) cannot hold every
 * publisher back; and no publisher waits longer than `maxWaitMs`.
 *
 * @module
 */

/**
 * The most one client's queue counts for by default: a few stuck clients cannot fill the
 * backlog by themselves.
 */
export const BACKLOG_PER_CLIENT_CAP = 16 * 1024;

/** The longest a publisher waits by default: delivery lagging is no reason to stall for long. */
export const BACKLOG_MAX_WAIT_MS = 1000;

/** The shared outgoing backlog of one server. */
export class Backlog {
  /** Counted bytes waiting in all queues now. */
  bytes = 0;
  /** Above this, publishers wait. */
  readonly highWater: number;
  /** The most one client's queue counts for. */
  readonly perClientCap: number;
  /** The longest a publisher waits. */
  readonly maxWaitMs: number;
  #waiters: (() => void)[] = [];
  readonly #clients: () => number;

  /**
   * Creates a backlog with its limits. The mark grows with the number of clients (`clients()`,
   * 1 KiB each) above `highWater`: one publish to many clients is a large backlog by itself, and
   * pacing it would cost the coalescing that makes large fan-outs fast.
   */
  constructor(
    highWater: number,
    perClientCap: number = BACKLOG_PER_CLIENT_CAP,
    maxWaitMs: number = BACKLOG_MAX_WAIT_MS,
    clients: () => number = () => 0,
  ) {
    this.highWater = highWater;
    this.perClientCap = perClientCap;
    this.maxWaitMs = maxWaitMs;
    this.#clients = clients;
  }

  /**
   * The mark now: `highWater`, or 1 KiB per client when that is more; but never above half of
   * what the clients can count for (`perClientCap` each). With few clients the mark could not be
   * reached otherwise (100 clients count for 1.6 MiB at most, under the 2 MiB default): publishers
   * then ran ahead of delivery until healthy clients' queues overflowed and they were dropped as
   * slow consumers (seen with 16 KiB messages to 100 clients once publishes were no longer
   * slowed by the writes).
   */
  get mark(): number {
    const clients = this.#clients();
    const mark = Math.max(this.highWater, clients * 1024);
    return clients > 0 ? Math.min(mark, (clients * this.perClientCap) / 2) : mark;
  }

  /** Records that a queue went from `before` to `after` bytes (called by every queue change). */
  update(before: number, after: number): void {
    const cap = this.perClientCap;
    this.bytes += Math.min(after, cap) - Math.min(before, cap);
    // Release at half the mark, not at the mark itself, so publishers move in batches.
    if (after < before && this.#waiters.length > 0 && this.bytes <= this.mark / 2) {
      for (const wake of this.#waiters.splice(0)) wake();
    }
  }

  /**
   * Resolves at once below the high-water mark when nobody waits; else when the backlog halves,
   * or after `maxWaitMs`. Publishers are released in arrival order: one that arrives while
   * others wait queues behind them even when the backlog has fallen below the mark meanwhile,
   * or it would publish ahead of publications sent before it.
   */
  wait(): Promise<void> {
    if (this.bytes <= this.mark && this.#waiters.length === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        const i = this.#waiters.indexOf(done);
        if (i >= 0) this.#waiters.splice(i, 1);
        resolve();
      };
      const timer = setTimeout(done, this.maxWaitMs);
      this.#waiters.push(done);
    });
  }

  /** Releases every waiting publisher (shutdown). */
  releaseAll(): void {
    for (const wake of this.#waiters.splice(0)) wake();
  }
}
