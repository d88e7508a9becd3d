/**
 * The outgoing queue: bounds, coalescing, control-frame priority and the final close frame.
 */
import { assert, assertEquals } from "@std/assert";
import { ClientQueue, COALESCE_LIMIT, MAX_BATCH_BYTES } from "../../src/push/client_queue.ts";

const bytes = (...values: number[]) => new Uint8Array(values);

Deno.test("ClientQueue coalesces every waiting frame into one buffer, in order", () => {
  const q = new ClientQueue(1024);
  q.push(bytes(1, 2));
  q.push(bytes(3));
  q.push(bytes(4, 5, 6));
  assertEquals(q.bytes, 6);
  assertEquals(q.take(), bytes(1, 2, 3, 4, 5, 6));
  assertEquals(q.bytes, 0);
  assertEquals(q.take(), null);
});

Deno.test("ClientQueue refuses a frame that would exceed maxBytes and keeps what it has", () => {
  const q = new ClientQueue(4);
  assert(q.push(bytes(1, 2, 3)));
  assert(!q.push(bytes(4, 5)));
  assert(q.push(bytes(4)));
  assertEquals(q.take(), bytes(1, 2, 3, 4));
});

Deno.test("ClientQueue puts control frames ahead of waiting data", () => {
  const q = new ClientQueue(1024);
  q.push(bytes(1));
  q.pushControl(bytes(9));
  assertEquals(q.take(), bytes(9, 1));
});

Deno.test("ClientQueue sends the close frame after the data, or instead of it with discard", () => {
  const q = new ClientQueue(1024);
  q.push(bytes(1));
  q.seal(bytes(8), false);
  assert(!q.push(bytes(2)), "sealed queues take no more data");
  assertEquals(q.take(), bytes(1, 8));
  assert(q.sealed && q.empty);
  const r = new ClientQueue(1024);
  r.push(bytes(1));
  r.seal(bytes(8), true);
  assertEquals(r.take(), bytes(8));
});

Deno.test("ClientQueue limits one batch to MAX_BATCH_BYTES but always takes one frame", () => {
  const q = new ClientQueue(4 * MAX_BATCH_BYTES);
  const big = new Uint8Array(MAX_BATCH_BYTES + 10);
  q.push(bytes(1));
  q.push(big);
  q.push(bytes(2));
  assertEquals(q.take()?.length, 1);
  assertEquals(q.take()?.length, big.length);
  assertEquals(q.take(), bytes(2));
});

Deno.test("a parked ClientQueue resumes its consumer on push, control, seal and dispose", () => {
  let resumed = 0;
  const q = new ClientQueue(1024, null, null, { resume: () => resumed++ });
  q.push(bytes(1));
  assertEquals(resumed, 0, "a consumer that has not parked is draining: no resume");
  assertEquals(q.take(), bytes(1));
  assertEquals(q.take(), null);
  q.park();
  assert(q.parked);
  q.push(bytes(2));
  assertEquals(resumed, 1, "resumed at the first frame");
  assert(q.parked, "parked until the consumer takes");
  assertEquals(q.take(), bytes(2));
  assert(!q.parked, "taking is draining");
  q.push(bytes(3));
  assertEquals(resumed, 1, "no resume while draining");
  assertEquals(q.take(), bytes(3));
  q.park();
  q.pushControl(bytes(9));
  assertEquals(resumed, 2, "a control frame resumes too");
  q.take();
  q.park();
  q.dispose();
  assertEquals(resumed, 3, "dispose resumes, so the consumer can end");
  assert(q.sealed && q.take() === null);
});

Deno.test("ClientQueue writes large frames on their own instead of copying them into a batch", () => {
  const q = new ClientQueue(1 << 20);
  const large = new Uint8Array(COALESCE_LIMIT);
  q.push(bytes(1));
  q.push(large);
  q.push(bytes(2));
  q.push(bytes(3));
  assertEquals(q.take(), bytes(1));
  assert(q.take() === large, "the same buffer, not a copy");
  assertEquals(q.take(), bytes(2, 3));
});
