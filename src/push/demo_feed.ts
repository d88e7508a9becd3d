/**
 * The original demo: each client is told "I am waiting N seconds", then the feed waits N seconds,
 * forever, until the client's signal aborts (quit, disconnect, shutdown).
 *
 * @module
 */

/** Where the feed pushes its lines. */
export interface DemoTarget {
  /** Queues one text message; false once the client is gone. */
  sendText(text: string): boolean;
}

/**
 * Picks the next wait in ms from `[min, max]`. Whole-second ranges (the default 2000-5000) give
 * whole seconds, like the original's "2..5 seconds"; other ranges any millisecond.
 */
export function pickWait(
  [min, max]: readonly [number, number],
  random: () => number = Math.random,
): number {
  if (min % 1000 === 0 && max % 1000 === 0) {
    return 1000 * (min / 1000 + Math.floor(random() * (max / 1000 - min / 1000 + 1)));
  }
  return min + Math.floor(random() * (max - min + 1));
}

/** The line announcing a wait of `ms`: "I am waiting 3 seconds", "I am waiting 0.02 seconds". */
export function demoLine(ms: number): string {
  const seconds = ms / 1000;
  return `I am waiting ${seconds} ${seconds === 1 ? "second" : "seconds"}`;
}

/** Resolves after `ms`, or at once when `signal` aborts (its timer is cleared: nothing leaks). */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done);
  });
}

/**
 * Runs the demo feed for one client until `signal` aborts or the client stops taking messages.
 *
 * @example
 * ```ts
 * const controller = new AbortController();
 * runDemoFeed({ sendText: (t) => (console.log(t), true) }, controller.signal, [2000, 5000]);
 * // I am waiting 3 seconds
 * ```
 */
export async function runDemoFeed(
  target: DemoTarget,
  signal: AbortSignal,
  interval: readonly [number, number],
  random: () => number = Math.random,
): Promise<void> {
  while (!signal.aborted) {
    const wait = pickWait(interval, random);
    if (!target.sendText(demoLine(wait))) return;
    await sleep(wait, signal);
  }
}
