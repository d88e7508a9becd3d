/**
 * A counter broken down by one label, on its own so the metric groups (`metrics.ts`,
 * `metrics_deflate.ts`) can all use it without importing each other.
 *
 * @module
 */

/** A counter broken down by one label, e.g. close codes. */
export class LabeledCounter {
  readonly #values = new Map<string, number>();

  /** Adds `n` (default 1) to the series with label value `label`. */
  inc(label: string | number, n = 1): void {
    const key = String(label);
    this.#values.set(key, (this.#values.get(key) ?? 0) + n);
  }

  /** The current value for `label` (0 when never counted). */
  get(label: string | number): number {
    return this.#values.get(String(label)) ?? 0;
  }

  /** Every (label, value) pair, sorted by label. */
  entries(): [string, number][] {
    return [...this.#values].sort(([a], [b]) => a.localeCompare(b));
  }
}
