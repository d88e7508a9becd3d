/**
 * The per-connection message rate limit of the push endpoint: a token bucket of `rate` tokens
 * per second and a burst of twice that, with no timer. The bucket is brought up to date from
 * the clock when a message arrives, and lives in two number fields of the connection, so a
 * client that sends nothing costs nothing and an idle server runs no refill timers.
 *
 * @module
 */

/** How many messages above the steady rate a client may send at once, as a multiple of it. */
export const BURST_FACTOR = 2;

/**
 * One token in the bucket's units. The state is counted in thousandths of a message so refills
 * of a fraction of a token (1 ms at 100/s is a tenth) stay whole numbers: integers in an
 * object's fields are stored in place, fractions would each be a heap object per client.
 */
const TOKEN = 1000;

/**
 * Where a bucket's state is kept: both fields start at 0, which is a full bucket.
 *
 * The state is the bucket's debt rather than its tokens: how far below full it is, in
 * thousandths of a message. A full bucket is 0, the natural first value of a number field, and
 * paying it back with time needs no knowledge of when the bucket was created.
 */
export interface TokenBucket {
  /** Thousandths of a message the bucket is below full (0 = full). */
  rateDebt: number;
  /** When `rateDebt` was last brought up to date, in ms of any monotonic clock. */
  rateAt: number;
}

/**
 * Takes one message's token from `bucket` at time `now` (ms, monotonic). Returns false, taking
 * nothing, when the bucket is empty: the client sent more than `rate` messages per second
 * beyond a burst of `BURST_FACTOR × rate`. `rate` must be positive.
 *
 * @example
 * ```ts
 * const bucket = { rateDebt: 0, rateAt: 0 };
 * takeToken(bucket, 1, 0); // true
 * takeToken(bucket, 1, 0); // true (the burst is 2)
 * takeToken(bucket, 1, 0); // false
 * takeToken(bucket, 1, 1000); // true: a second refilled one token
 * ```
 */
export function takeToken(bucket: TokenBucket, rate: number, now: number): boolean {
  // Each ms pays back `rate` thousandths: `rate` tokens per second.
  const elapsed = now - bucket.rateAt;
  let debt = bucket.rateDebt;
  if (elapsed > 0) {
    debt = elapsed * rate >= debt ? 0 : debt - elapsed * rate;
    bucket.rateAt = now;
  }
  if (debt + TOKEN > BURST_FACTOR * rate * TOKEN) {
    bucket.rateDebt = debt;
    return false;
  }
  bucket.rateDebt = debt + TOKEN;
  return true;
}
