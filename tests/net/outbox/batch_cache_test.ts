import { assert, assertEquals } from "@std/assert";
import { BatchCache } from "../../../src/net/outbox/batch_cache.ts";
import { ClientQueue } from "../../../src/net/outbox/client_queue.ts";

const bytes = (...values: number[]) => new Uint8Array(values);

Deno.test("BatchCache joins the same parts once and returns that buffer again", () => {
  const cache = new BatchCache();
  const a = bytes(1, 2), b = bytes(3), c = bytes(4, 5, 6);
  const first = cache.join([a, b, c], 6);
  assertEquals(first, bytes(1, 2, 3, 4, 5, 6));
  assert(cache.join([a, b, c], 6) === first, "same parts, same buffer");
});

Deno.test("BatchCache tells batches apart by the identity of every part", () => {
  const cache = new BatchCache();
  const a = bytes(1), b = bytes(2), c = bytes(3);
  const abc = cache.join([a, b, c], 3);
  // Equal bytes in another object, in the middle: a different batch.
  const other = cache.join([a, bytes(2), c], 3);
  assert(other !== abc);
  assertEquals(other, bytes(1, 2, 3));
  // Other length, other order.
  assertEquals(cache.join([a, b], 2), bytes(1, 2));
  assertEquals(cache.join([c, b, a], 3), bytes(3, 2, 1));
  // A single part is handed back as it is.
  assert(cache.join([b], 1) === b);
});

Deno.test("BatchCache remembers a few batches, then recycles the oldest slot", () => {
  const cache = new BatchCache();
  const frames = Array.from({ length: 12 }, (_, i) => bytes(i));
  const batches = [0, 2, 4, 6, 8].map((i) => [frames[i], frames[i + 1]]);
  const joined = batches.map((parts) => cache.join(parts, 2));
  // The newest four are remembered; the first was evicted by the fifth.
  for (let i = 1; i < 5; i++) assert(cache.join(batches[i], 2) === joined[i]);
  const again = cache.join(batches[0], 2);
  assert(again !== joined[0]);
  assertEquals(again, bytes(0, 1));
  cache.clear();
  assert(cache.join(batches[4], 2) !== joined[4]);
});

Deno.test("queues holding the same broadcast frames hand out one shared batch", () => {
  const frames = [bytes(0x81, 1, 65), bytes(0x81, 1, 66), bytes(0x81, 1, 67)];
  const q1 = new ClientQueue(1024), q2 = new ClientQueue(1024), q3 = new ClientQueue(1024);
  for (const frame of frames) for (const q of [q1, q2, q3]) q.push(frame);
  q3.pushControl(bytes(0x8a, 0)); // a pong ahead of the data makes q3's batch its own
  const b1 = q1.take(), b2 = q2.take(), b3 = q3.take();
  assert(b1 !== null && b1 === b2, "the same frames are joined once");
  assertEquals(b1, bytes(0x81, 1, 65, 0x81, 1, 66, 0x81, 1, 67));
  assertEquals(b3, bytes(0x8a, 0, 0x81, 1, 65, 0x81, 1, 66, 0x81, 1, 67));
  assertEquals([q1.take(), q2.take(), q3.take()], [null, null, null]);
});
