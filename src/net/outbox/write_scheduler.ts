/**
 * Write coalescing across publishes ("corking"): instead of waking a client's writer the
 * moment a frame is queued, the wake-up is deferred by a short delay shared by the whole server,
 * so frames from several publishes leave in one write per socket. One `write` costs about as
 * much as a whole batch, so this multiplies fan-out throughput at the price of at most the delay
 * in latency. One timer serves every connection.
 *
 * @module
 */

/** Something whose waiting writer can be woken. */
export interface Wakeable {
  /** Wakes the writer now (it then takes everything queued). */
  wakeNow(): void;
}

/**
 * Defers wake-ups by `delayMs` and runs them all from one timer.
 *
 * @example
 * ```ts
 * const scheduler = new WriteScheduler(1);
 * scheduler.schedule(queue); // queue.wakeNow() runs about 1 ms later, with whatever was added
 * scheduler.close();
 * ```
 */
export class WriteScheduler {
  readonly delayMs: number;
  #due: Wakeable[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;

  /** Creates a scheduler that wakes writers `delayMs` after their first frame. */
  constructor(delayMs: number) {
    this.delayMs = delayMs;
  }

  /** Wakes `target` at the next flush (each target is scheduled once until woken). */
  schedule(target: Wakeable): void {
    this.#due.push(target);
    this.#timer ??= setTimeout(() => this.flush(), this.delayMs);
  }

  /** Wakes every scheduled writer now. */
  flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const due = this.#due;
    this.#due = [];
    for (const target of due) target.wakeNow();
  }

  /** Wakes what is due and stops the timer (server shutdown). */
  close(): void {
    this.flush();
  }
}
