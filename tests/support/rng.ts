/**
 * The fuzzers' seeded PRNG and seeds: everything driven by an {@linkcode Rng} is deterministic,
 * so a failure prints a seed that reproduces it:
 * `PUSH_FUZZ_SEED=<seed> deno test --allow-env=PUSH_FUZZ_SEED ...`.
 *
 * @module
 */

/** The seed used when `PUSH_FUZZ_SEED` is not set. */
export const DEFAULT_FUZZ_SEED = 0x5eed2026;

/**
 * A seeded PRNG (mulberry32): fast, 32-bit state, good enough to drive a fuzzer, and the same
 * sequence on every machine.
 */
export class Rng {
  /** The seed this generator started from. */
  readonly seed: number;
  #state: number;

  /** Creates a generator from a 32-bit seed. */
  constructor(seed: number) {
    this.seed = seed >>> 0;
    this.#state = this.seed;
  }

  /** A 32-bit unsigned integer. */
  uint32(): number {
    let t = (this.#state = (this.#state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    return this.uint32() / 4294967296;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** An integer in [min, max]. */
  range(min: number, max: number): number {
    return min + this.int(max - min + 1);
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.next() < p;
  }

  /** One element of `items`. */
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }

  /** One value of `[weight, value]` pairs, chosen in proportion to the weights. */
  weighted<T>(entries: readonly (readonly [number, T])[]): T {
    let total = 0;
    for (const [w] of entries) total += w;
    let r = this.next() * total;
    for (const [w, v] of entries) {
      if ((r -= w) < 0) return v;
    }
    return entries[entries.length - 1][1];
  }

  /** `n` random bytes. */
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i += 4) {
      let word = this.uint32();
      for (let j = i; j < i + 4 && j < n; j++, word >>>= 8) out[j] = word & 0xff;
    }
    return out;
  }
}

/** A well-mixed 32-bit seed for sub-run `index` of `seed` (so one iteration can be replayed). */
export function deriveSeed(seed: number, index: number): number {
  let h = (seed ^ Math.imul(index + 1, 0x9e3779b9)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * The seeds of a fuzz run: `PUSH_FUZZ_SEED` alone when it is set (decimal or 0x-hex; reading it
 * needs `--allow-env=PUSH_FUZZ_SEED`, and a missing permission counts as unset), else
 * {@linkcode DEFAULT_FUZZ_SEED} and `extra` seeds derived from it.
 */
export function fuzzSeeds(extra = 3): { seeds: number[]; source: string } {
  let value: string | undefined;
  try {
    value = Deno.env.get("PUSH_FUZZ_SEED");
  } catch {
    value = undefined; // no env permission: use the defaults
  }
  if (value !== undefined && value.trim() !== "") {
    const seed = Number(value.trim());
    if (!Number.isSafeInteger(seed) || seed < 0) {
      throw new Error(`PUSH_FUZZ_SEED must be a non-negative integer, got "${value}"`);
    }
    return { seeds: [seed >>> 0], source: "PUSH_FUZZ_SEED" };
  }
  const seeds = [DEFAULT_FUZZ_SEED];
  for (let i = 0; i < extra; i++) seeds.push(deriveSeed(DEFAULT_FUZZ_SEED, 1000 + i));
  return { seeds, source: "default" };
}
