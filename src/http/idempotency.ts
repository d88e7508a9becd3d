/**
 * `Idempotency-Key` on `POST /publish`: the first answer under a key is kept for the window, and
 * a repeat within it publishes nothing and gets that answer again, so a publisher may retry after
 * a timeout without duplicates. A repeat that arrives while the first is still publishing waits
 * for the first's answer.
 *
 * The store is one bounded `Map` in insertion order; every entry gets the same window, so
 * insertion order is expiry order and the expired entries are always at the front. They are swept
 * on each access (no timer at all, so nothing to clear on close); beyond {@linkcode MAX_IDEMPOTENCY_KEYS}
 * the oldest entry is evicted and counted.
 *
 * @module
 */
import type { Metrics } from "../metrics.ts";

/** The most keys kept at once; the oldest is evicted beyond (`push_idempotency_evictions_total`). */
export const MAX_IDEMPOTENCY_KEYS = 100_000;

/** 1–255 visible ASCII characters (RFC 9110 header value without spaces). */
const VALID_KEY = /^[\x21-\x7e]{1,255}$/;

/** True for a valid `Idempotency-Key` value. */
export function isValidIdempotencyKey(key: string): boolean {
  return VALID_KEY.test(key);
}

/** A kept answer: replayed as sent the first time. */
export interface StoredAnswer {
  /** The HTTP status. */
  status: number;
  /** The JSON body (serialised again on replay: the same text). */
  body: unknown;
  /** Headers beyond the JSON defaults (e.g. `retry-after`). */
  headers: Record<string, string>;
}

interface Entry {
  expires: number;
  answer: StoredAnswer | null;
  /** Resolved when the first request settles; null once it has. */
  pending: Promise<void> | null;
}

/** What {@linkcode IdempotencyStore.claim} gives: a kept answer, or the right to publish. */
export type Claim =
  | { replay: StoredAnswer }
  | {
    replay: null;
    /** Keeps `answer` for the window, or releases the key when null (nothing was published). */
    settle(answer: StoredAnswer | null): void | Promise<void>;
  };

/** Where keys are kept: {@linkcode IdempotencyStore} in process, `RedisIdempotencyStore` shared. */
export interface IdempotencyClaims {
  /** The kept answer for `key` (waiting while the first is in flight), or the right to publish. */
  claim(key: string): Promise<Claim>;
}

/** The in-process store of idempotency keys. */
export class IdempotencyStore implements IdempotencyClaims {
  readonly #entries = new Map<string, Entry>();
  readonly #window: number;
  readonly #max: number;
  readonly #metrics: Metrics;
  readonly #now: () => number;

  /** `window` in ms (> 0); at most `max` keys. */
  constructor(window: number, metrics: Metrics, max = MAX_IDEMPOTENCY_KEYS, now = Date.now) {
    this.#window = window;
    this.#metrics = metrics;
    this.#max = max;
    this.#now = now;
  }

  /** Keys held now (answers and publishes in flight). */
  get size(): number {
    return this.#entries.size;
  }

  /**
   * The kept answer for `key`, waiting while the first request with it is in flight; otherwise
   * claims the key (the caller publishes, then settles).
   */
  async claim(key: string): Promise<Claim> {
    for (;;) {
      this.#sweep();
      const entry = this.#entries.get(key);
      if (!entry) break;
      if (entry.answer) {
        this.#metrics.idempotentReplays++;
        return { replay: entry.answer };
      }
      // In flight: wait, then look again (it may have been released: then this one publishes).
      this.#metrics.idempotentWaits++;
      await entry.pending;
    }
    let done!: () => void;
    const entry: Entry = {
      expires: this.#now() + this.#window,
      answer: null,
      pending: new Promise<void>((resolve) => done = resolve),
    };
    this.#insert(key, entry);
    return {
      replay: null,
      settle: (answer) => {
        if (this.#entries.get(key) === entry) this.#entries.delete(key);
        if (answer) {
          // Re-inserted at the end, so the map stays in expiry order.
          entry.answer = answer;
          entry.expires = this.#now() + this.#window;
          this.#insert(key, entry);
        }
        entry.pending = null;
        done();
      },
    };
  }

  #insert(key: string, entry: Entry): void {
    while (this.#entries.size >= this.#max) {
      const oldest = this.#entries.keys().next().value as string;
      this.#entries.delete(oldest);
      this.#metrics.idempotencyEvictions++;
    }
    this.#entries.set(key, entry);
  }

  /** Drops the expired entries; they are the oldest, so at the front. */
  #sweep(): void {
    const now = this.#now();
    for (const [key, entry] of this.#entries) {
      if (entry.expires > now) break;
      // An entry still in flight stays (its waiters need its answer); it is re-inserted on settle.
      if (entry.pending) continue;
      this.#entries.delete(key);
    }
  }
}
