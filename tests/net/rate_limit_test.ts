/**
 * The message rate limit's token bucket, with an injected clock: a burst of twice the rate,
 * refill with time, a cap on what idleness saves up, and whole numbers in its state.
 */
import { assert, assertEquals } from "@std/assert";
import { BURST_FACTOR, takeToken, type TokenBucket } from "../../src/net/rate_limit.ts";

const fresh = (): TokenBucket => ({ rateDebt: 0, rateAt: 0 });

/** How many of `count` messages at time `now` the bucket lets through. */
function allowed(bucket: TokenBucket, rate: number, now: number, count: number): number {
  let n = 0;
  for (let i = 0; i < count; i++) if (takeToken(bucket, rate, now)) n++;
  return n;
}

Deno.test("a fresh bucket lets a burst of twice the rate through at once, then refuses", () => {
  for (const rate of [1, 10, 100, 7]) {
    const bucket = fresh();
    assertEquals(allowed(bucket, rate, 5000, 1000), BURST_FACTOR * rate, `rate ${rate}`);
    assert(!takeToken(bucket, rate, 5000), "still empty at the same instant");
  }
});

Deno.test("the bucket refills at the rate: 10/s gives one message per 100 ms", () => {
  const bucket = fresh();
  const t0 = 1_000;
  assertEquals(allowed(bucket, 10, t0, 20), 20);
  assert(!takeToken(bucket, 10, t0 + 99), "99 ms is not yet a whole token");
  assert(takeToken(bucket, 10, t0 + 100), "100 ms is one token");
  assert(!takeToken(bucket, 10, t0 + 100));
  assertEquals(allowed(bucket, 10, t0 + 1100, 100), 10, "a second refills 10");
});

Deno.test("a refused message takes nothing: the refill still comes on time", () => {
  const bucket = fresh();
  assertEquals(allowed(bucket, 10, 0, 20), 20);
  for (let t = 1; t < 100; t++) assert(!takeToken(bucket, 10, t));
  assert(takeToken(bucket, 10, 100));
});

Deno.test("idleness saves up at most the burst", () => {
  const bucket = fresh();
  assertEquals(allowed(bucket, 10, 0, 20), 20);
  assertEquals(allowed(bucket, 10, 3_600_000, 1000), 20, "an hour idle still allows 20");
});

Deno.test("a client at the rate is never refused; one 10% over it is, within seconds", () => {
  const steady = fresh();
  for (let t = 0; t < 60_000; t += 10) assert(takeToken(steady, 100, t), `refused at ${t} ms`);
  const over = fresh();
  let refusedAt = -1;
  for (let i = 0; i < 100_000 && refusedAt === -1; i++) {
    const t = Math.floor(i * 1000 / 110);
    if (!takeToken(over, 100, t)) refusedAt = t;
  }
  // 10 extra messages per second empty a burst of 200 in about 20 s.
  assert(refusedAt > 15_000 && refusedAt < 25_000, `refused at ${refusedAt} ms`);
});

Deno.test("the bucket's state stays whole numbers at rates that do not divide a second", () => {
  const bucket = fresh();
  for (let t = 0; t < 10_000; t += 7) {
    takeToken(bucket, 3, t);
    assert(Number.isInteger(bucket.rateDebt) && Number.isInteger(bucket.rateAt));
  }
  // 3/s: after a burst of 6, one message per 334 ms (333.3 rounded up to whole ms).
  const b = fresh();
  assertEquals(allowed(b, 3, 0, 10), 6);
  assert(!takeToken(b, 3, 333));
  assert(takeToken(b, 3, 334));
});
