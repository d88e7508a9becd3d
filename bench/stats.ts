/**
 * Small statistics helpers shared by the load client and the runner.
 *
 * @module
 */

/** The value at quantile `q` (0..1) of ascending `sorted` (nearest rank); NaN when empty. */
export function quantile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil(q * sorted.length) - 1;
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank))];
}

/** The median of `values` (mean of the middle two for an even count); NaN when empty. */
export function median(values: number[]): number {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const mid = v.length >> 1;
  return v.length % 2 === 1 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

/** The smallest and largest finite values; NaN when there are none. */
export function range(values: number[]): { min: number; max: number } {
  const v = values.filter((x) => Number.isFinite(x));
  return v.length === 0 ? { min: NaN, max: NaN } : { min: Math.min(...v), max: Math.max(...v) };
}

/** Latency summary in milliseconds. */
export interface LatencySummary {
  /** Samples. */
  count: number;
  /** Median. */
  p50: number;
  /** 99th percentile. */
  p99: number;
  /** Largest. */
  max: number;
}

/** Summarizes the first `count` samples of `samples` (sorted in place). */
export function summarizeLatency(
  samples: Float32Array | Float64Array,
  count: number,
): LatencySummary {
  const sorted = samples.subarray(0, count).sort();
  return {
    count,
    p50: quantile(sorted, 0.5),
    p99: quantile(sorted, 0.99),
    max: count > 0 ? sorted[count - 1] : NaN,
  };
}
