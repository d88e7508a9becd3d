/**
 * Waiting in tests: deadlines on promises, timers that never outlive a test, and polling for
 * state that has no event to await.
 *
 * @module
 */

/**
 * Resolves or rejects like `promise`, or rejects with "timed out: `what`" after `ms` (the timer
 * is always cleared, so test sanitizers stay quiet).
 */
export async function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves after `ms`, or at once when `signal` aborts (the timer is cleared either way). */
export function delay(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done);
  });
}

/**
 * Polls `condition` (sync or async) every `everyMs` until it holds, failing with `what` after
 * `ms`: for states no event announces.
 */
export async function pollUntil(
  condition: () => boolean | Promise<boolean>,
  ms: number,
  what: string,
  everyMs = 10,
): Promise<void> {
  const deadline = performance.now() + ms;
  while (!(await condition())) {
    if (performance.now() > deadline) throw new Error(`timed out after ${ms} ms: ${what}`);
    await delay(everyMs);
  }
}
