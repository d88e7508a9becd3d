/**
 * Write coalescing: a waiting writer is woken once, after the delay, with every frame queued
 * meanwhile; sealing (close) and disposing wake it at once.
 */
import { assert, assertEquals } from "@std/assert";
import { ClientQueue, COALESCE_LIMIT } from "../../src/push/client_queue.ts";
import { WriteScheduler } from "../../src/push/write_scheduler.ts";

const frame = (byte: number) => new Uint8Array([byte]);

Deno.test("a scheduled queue wakes its writer once, at the flush, with all frames queued", async () => {
  const scheduler = new WriteScheduler(5);
  const queue = new ClientQueue(1024, scheduler);
  let woken = 0;
  const waiting = queue.wait().then(() => woken++);
  queue.push(frame(1));
  queue.push(frame(2));
  queue.push(frame(3));
  await Promise.resolve();
  assertEquals(woken, 0, "not woken before the flush");
  await waiting;
  assertEquals(woken, 1);
  assertEquals(queue.take(), new Uint8Array([1, 2, 3]), "one batch, one write");
  scheduler.close();
});

Deno.test("flush wakes every scheduled queue now, and close leaves no timer behind", async () => {
  const scheduler = new WriteScheduler(60_000);
  const queues = [0, 1, 2].map(() => new ClientQueue(1024, scheduler));
  const waits = queues.map((q) => q.wait());
  queues.forEach((q, i) => q.push(frame(i)));
  scheduler.flush();
  await Promise.all(waits);
  scheduler.close();
});

Deno.test("sealing a scheduled queue (a close frame) wakes its writer at once", async () => {
  const scheduler = new WriteScheduler(60_000);
  const queue = new ClientQueue(1024, scheduler);
  const waiting = queue.wait();
  queue.seal(frame(8), false);
  await waiting;
  assert(queue.sealed);
  assertEquals(queue.take(), frame(8));
  scheduler.close();
});

Deno.test("a queue holding a large frame wakes its writer at once, without the delay", async () => {
  const scheduler = new WriteScheduler(60_000);
  const queue = new ClientQueue(1 << 20, scheduler);
  const waiting = queue.wait();
  queue.push(new Uint8Array(COALESCE_LIMIT));
  await waiting;
  scheduler.close();
});
