/**
 * Recovery: the notices a subscriber gets, and the pacing of history replays.
 *
 * @module
 */
import type { Subscriber } from "./subscriptions.ts";

/**
 * How much of a subscriber's queue a history replay may fill: the rest stays free for its live
 * traffic (other channels, notices), which must not overflow because a replay filled the queue.
 */
export function replayBudget(subscriber: Subscriber): number {
  return subscriber.maxQueueBytes / 2;
}

/**
 * The replays waiting for each subscriber's queue to drain. A subscriber keeps one drain
 * callback, but a client may resume several channels at once: this runs all of them.
 */
export class DrainWaiters {
  readonly #waiting = new Map<Subscriber, (() => void)[]>();

  /** Runs `resume` once `subscriber`'s queue has drained (see `Subscriber.onDrain`). */
  wait(subscriber: Subscriber, resume: () => void): void {
    const list = this.#waiting.get(subscriber);
    if (list !== undefined) return void list.push(resume);
    this.#waiting.set(subscriber, [resume]);
    subscriber.onDrain(() => {
      const resumes = this.#waiting.get(subscriber) ?? [];
      this.#waiting.delete(subscriber);
      for (const r of resumes) r();
    });
  }

  /** Forgets what waits for `subscriber` (it left every channel). */
  forget(subscriber: Subscriber): void {
    this.#waiting.delete(subscriber);
  }
}

/** The notices a subscriber gets, in one place so both engines word them alike. */
export const notices = {
  /** Subscribed; `recovered` is present only after a resume request. */
  subscribed(channel: string, epoch: string, id: number, recovered?: boolean): string {
    return JSON.stringify({ notice: "subscribed", channel, epoch, id, recovered });
  },
  /** Messages after the client's position cannot be replayed. */
  lost(channel: string, epoch: string, id: number, reason: string): string {
    return JSON.stringify({ notice: "lost", channel, epoch, id, reason });
  },
};
