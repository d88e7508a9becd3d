/**
 * The write window: at most `limit` writers hold a slot, the others get one in arrival order as
 * slots are released, and a write that stalls gives its slot back so a stuck peer cannot close
 * the window for everyone else.
 */
import { assertEquals } from "@std/assert";
import { type PooledWriter, WritePool } from "../../../src/net/outbox/write_pool.ts";
import { clockMs } from "../../../src/clock.ts";
import { UNSTAMPED } from "../../../src/net/outbox/write_batch.ts";
import { IoYield } from "../../../src/net/outbox/io_yield.ts";

/** Records its grants; `writeSince` is set by the test to stand for a pending write. */
class Writer implements PooledWriter {
  writeSince = 0;
  grants = 0;
  constructor(readonly name: string, readonly log: string[]) {}
  grant(): void {
    this.grants++;
    this.log.push(this.name);
  }
}

Deno.test("a full window serves waiting writers in arrival order as slots free up", () => {
  const log: string[] = [];
  const pool = new WritePool(2, 1000);
  const [a, b, c, d] = ["a", "b", "c", "d"].map((n) => new Writer(n, log));
  for (const w of [a, b, c, d]) pool.request(w);
  assertEquals(log, ["a", "b"], "two slots: a and b write, c and d wait");
  assertEquals([pool.active, pool.waiting], [2, 2]);
  pool.release(b);
  assertEquals(log, ["a", "b", "c"], "the first waiter gets the freed slot");
  pool.request(b); // b has more to write: it gets back in line behind d
  pool.release(a);
  pool.release(c);
  assertEquals(log, ["a", "b", "c", "d", "b"]);
  pool.release(d);
  pool.release(b);
  assertEquals([pool.active, pool.waiting], [0, 0]);
  pool.release(a); // holds no slot: releases nothing
  assertEquals(pool.active, 0);
  pool.close();
});

Deno.test("a writer granted while others release keeps the window at its limit", () => {
  const log: string[] = [];
  const pool = new WritePool(3, 1000);
  const writers = Array.from({ length: 10 }, (_, i) => new Writer(`w${i}`, log));
  for (const w of writers) pool.request(w);
  for (let i = 0; i < 10; i++) {
    assertEquals(pool.active <= 3, true);
    pool.release(writers[i]);
  }
  assertEquals(log, writers.map((w) => w.name), "every writer once, in order");
  assertEquals([pool.active, pool.waiting], [0, 0]);
  pool.close();
});

Deno.test("writes stalled past stallMs give their slots back to waiting writers", async () => {
  const log: string[] = [];
  const pool = new WritePool(2, 30);
  const [stuck1, stuck2, next] = ["s1", "s2", "next"].map((n) => new Writer(n, log));
  pool.request(stuck1);
  pool.request(stuck2);
  stuck1.writeSince = stuck2.writeSince = clockMs(); // their writes never complete
  pool.request(next);
  assertEquals(log, ["s1", "s2"], "the window is full");
  const deadline = Date.now() + 2000;
  while (next.grants === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  assertEquals(next.grants, 1, "granted once the stalled writes gave their slots back");
  assertEquals(pool.active, 1, "the stalled writers hold no slot any more");
  pool.release(stuck1); // its write completes late: it held no slot
  assertEquals(pool.active, 1);
  pool.close();
});

Deno.test("writes that stall unstamped (no clock read at write time) are stamped, then given back", async () => {
  const log: string[] = [];
  const pool = new WritePool(1, 20);
  const stuck = new Writer("stuck", log);
  const next = new Writer("next", log);
  pool.request(stuck);
  stuck.writeSince = UNSTAMPED; // as writeBatch leaves it: pending, never looked at
  const t0 = performance.now();
  pool.request(next);
  const deadline = Date.now() + 2000;
  while (next.grants === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  assertEquals(next.grants, 1, "granted once the stalled write gave its slot back");
  assertEquals(
    performance.now() - t0 >= 2 * 20 - 1,
    true,
    "not at the first look, which only stamped it",
  );
  pool.close();
});

Deno.test("a window that keeps moving takes no slot back, however long writers wait", async () => {
  const log: string[] = [];
  const pool = new WritePool(1, 20);
  const a = new Writer("a", log);
  const b = new Writer("b", log);
  pool.request(a);
  a.writeSince = clockMs() - 1000; // an old timestamp, but a is released before the watchdog
  pool.request(b);
  pool.release(a);
  assertEquals(log, ["a", "b"]);
  b.writeSince = clockMs();
  pool.request(a);
  await new Promise((r) => setTimeout(r, 5));
  pool.release(b);
  assertEquals(log, ["a", "b", "a"], "served in order, nobody evicted");
  pool.release(a);
  await new Promise((r) => setTimeout(r, 30)); // the watchdog fires once and stops
  assertEquals(pool.active, 0);
  pool.close();
});

Deno.test("the window pauses every N grants until the I/O driver ran, then serves the rest in order", async () => {
  const log: string[] = [];
  const pool = new WritePool(10, 1000);
  let pass: () => void = () => {};
  let passes = 0;
  pool.yieldWith(() => {
    passes++;
    return new Promise<void>((resolve) => pass = resolve);
  }, 3);
  const writers = Array.from({ length: 7 }, (_, i) => new Writer(`w${i}`, log));
  for (const w of writers) pool.request(w);
  assertEquals(log, ["w0", "w1", "w2"], "paused after the third grant, although slots are free");
  assertEquals([passes, pool.waiting], [1, 4]);
  pass();
  await Promise.resolve();
  await Promise.resolve();
  assertEquals(log, ["w0", "w1", "w2", "w3", "w4", "w5"], "resumed in order, paused again");
  pass();
  await Promise.resolve();
  await Promise.resolve();
  assertEquals(log.length, 7);
  assertEquals(passes, 2);
  pool.close();
});

Deno.test("a yield that fails turns pausing off instead of stopping the writes", async () => {
  const log: string[] = [];
  const pool = new WritePool(10, 1000);
  let calls = 0;
  pool.yieldWith(() => {
    calls++;
    return Promise.reject(new Error("pair closed"));
  }, 2);
  const writers = Array.from({ length: 6 }, (_, i) => new Writer(`w${i}`, log));
  for (const w of writers) pool.request(w);
  for (let i = 0; i < 5; i++) await Promise.resolve();
  assertEquals(log.length, 6, "everyone granted");
  assertEquals(calls, 1, "no further pauses");
  pool.close();
});

Deno.test("IoYield: a byte through a loopback pair resolves the pass; closing ends it", async () => {
  const pair = await IoYield.open();
  for (let i = 0; i < 3; i++) await pair.pass();
  pair.close();
  let failed = false;
  await pair.pass().catch(() => failed = true);
  assertEquals(failed, true, "a closed pair rejects, so the pool turns pausing off");
});
