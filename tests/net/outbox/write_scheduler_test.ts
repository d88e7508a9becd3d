/**
 * Write coalescing: a parked writer is resumed once, after the delay, with every frame queued
 * meanwhile; sealing (close), disposing and large frames resume it at once.
 */
import { assert, assertEquals } from "@std/assert";
import { ClientQueue, COALESCE_LIMIT } from "../../../src/net/outbox/client_queue.ts";
import { WriteScheduler } from "../../../src/net/outbox/write_scheduler.ts";

const frame = (byte: number) => new Uint8Array([byte]);

/** A queue whose consumer has parked, and a promise of its next resume. */
function parkedQueue(maxBytes: number, scheduler: WriteScheduler) {
  let resumed = 0;
  let onResume = () => {};
  const queue = new ClientQueue(maxBytes, scheduler, null, {
    resume: () => {
      resumed++;
      onResume();
    },
  });
  queue.park();
  const next = new Promise<void>((resolve) => onResume = resolve);
  return { queue, next, resumed: () => resumed };
}

Deno.test("a scheduled queue resumes its writer once, at the flush, with all frames queued", async () => {
  const scheduler = new WriteScheduler(5);
  const { queue, next, resumed } = parkedQueue(1024, scheduler);
  queue.push(frame(1));
  queue.push(frame(2));
  queue.push(frame(3));
  await Promise.resolve();
  assertEquals(resumed(), 0, "not resumed before the flush");
  await next;
  assertEquals(resumed(), 1);
  assertEquals(queue.take(), new Uint8Array([1, 2, 3]), "one batch, one write");
  scheduler.close();
});

Deno.test("flush resumes every scheduled queue now, and close leaves no timer behind", () => {
  const scheduler = new WriteScheduler(60_000);
  const parked = [0, 1, 2].map(() => parkedQueue(1024, scheduler));
  parked.forEach((p, i) => p.queue.push(frame(i)));
  assertEquals(parked.map((p) => p.resumed()), [0, 0, 0]);
  scheduler.flush();
  assertEquals(parked.map((p) => p.resumed()), [1, 1, 1]);
  scheduler.close();
});

Deno.test("sealing a scheduled queue (a close frame) resumes its writer at once", () => {
  const scheduler = new WriteScheduler(60_000);
  const { queue, resumed } = parkedQueue(1024, scheduler);
  queue.seal(frame(8), false);
  assertEquals(resumed(), 1);
  assert(queue.sealed);
  assertEquals(queue.take(), frame(8));
  scheduler.close();
});

Deno.test("a queue holding a large frame resumes its writer at once, without the delay", () => {
  const scheduler = new WriteScheduler(60_000);
  const { queue, resumed } = parkedQueue(1 << 20, scheduler);
  queue.push(new Uint8Array(COALESCE_LIMIT));
  assertEquals(resumed(), 1);
  scheduler.close();
});

Deno.test("a flush after the writer was resumed early finds it draining and does nothing", () => {
  const scheduler = new WriteScheduler(60_000);
  const { queue, resumed } = parkedQueue(1 << 20, scheduler);
  queue.push(frame(1)); // scheduled
  queue.push(new Uint8Array(COALESCE_LIMIT)); // resumes at once
  assertEquals(resumed(), 1);
  queue.take(); // the writer drains
  scheduler.flush(); // and is not parked at the flush
  assertEquals(resumed(), 1);
  scheduler.close();
});
