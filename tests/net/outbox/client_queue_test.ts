/**
 * The outgoing queue: bounds, coalescing, control-frame priority and the final close frame.
 */
import { assert, assertEquals } from "@std/assert";
import {
  ClientQueue,
  COALESCE_LIMIT,
  MAX_BATCH_BYTES,
} from "../../../src/net/outbox/client_queue.ts";

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

/** A pong frame as the connection encodes it (FIN + opcode 0xA, 7-bit length). */
const pong = (...payload: number[]) => bytes(0x8a, payload.length, ...payload);

Deno.test("ClientQueue keeps one pong: a newer ping's pong takes the waiting one's place", () => {
  const q = new ClientQueue(1024);
  q.pushControl(bytes(0x48)); // the handshake response, first
  q.push(bytes(1));
  assertEquals(q.pushPong(pong(10)), false, "the first pong is queued");
  assertEquals(q.pushPong(pong(11, 11)), true, "a second replaces it");
  assertEquals(q.pushPong(pong(12)), true, "and a third");
  assertEquals(q.bytes, 1 + 1 + 3, "only the last pong counts");
  // In order, through the one consumer: the response, the newest pong, then the data.
  assertEquals(q.take(), bytes(0x48, 0x8a, 1, 12, 1));
  // Taken means on its way to the socket: the next ping gets a pong of its own.
  assertEquals(q.pushPong(pong(13)), false);
  assertEquals(q.take(), pong(13));
  assertEquals(q.take(), null);
});

Deno.test("ClientQueue keeps a heartbeat ping when a pong replaces the waiting pong", () => {
  const q = new ClientQueue(1024);
  q.pushPong(pong(1));
  q.pushControl(bytes(0x89, 0)); // a heartbeat ping
  q.pushPong(pong(2));
  assertEquals(q.take(), bytes(0x8a, 1, 2, 0x89, 0));
});

Deno.test("ClientQueue counts control frames in its bytes and against its limit", () => {
  const q = new ClientQueue(10);
  q.pushControl(bytes(0x48, 0x54, 0x54, 0x50));
  assertEquals(q.bytes, 4);
  assert(!q.push(new Uint8Array(7)), "4 control + 7 data bytes exceed 10");
  assert(q.push(new Uint8Array(6)));
  assertEquals(q.bytes, 10);
  q.seal(bytes(0x88, 0), true);
  assertEquals(q.bytes, 4, "discarding data keeps the control frames and their bytes");
  assertEquals(q.take()?.length, 4 + 2);
  assertEquals(q.bytes, 0);
  q.dispose();
  assertEquals(q.bytes, 0);
});

Deno.test("ClientQueue takes no pong once sealed", () => {
  const q = new ClientQueue(1024);
  q.seal(bytes(0x88, 0), false);
  assertEquals(q.pushPong(pong(1)), false);
  assertEquals(q.take(), bytes(0x88, 0));
});
