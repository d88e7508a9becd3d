/**
 * The push loop with a fake socket: everything queued is written in order (partial writes
 * included), the loop parks when the queue is empty and runs again when frames arrive, and it
 * ends once, after the close frame, or at the first failed write.
 */
import { assert, assertEquals } from "@std/assert";
import { ClientQueue } from "../../../src/net/outbox/client_queue.ts";
import {
  type ByteWriter,
  runPushLoop,
  type WriteTracker,
} from "../../../src/net/outbox/push_loop.ts";

/** Accepts at most `chunk` bytes per write, asynchronously, and records them. */
class FakeSocket implements ByteWriter {
  readonly written: number[] = [];
  writes = 0;
  failWith: Error | null = null;
  constructor(readonly chunk: number) {}
  async write(p: Uint8Array): Promise<number> {
    await Promise.resolve();
    if (this.failWith) throw this.failWith;
    this.writes++;
    const n = Math.min(this.chunk, p.length);
    this.written.push(...p.subarray(0, n));
    return n;
  }
}

function harness(chunk: number) {
  const socket = new FakeSocket(chunk);
  const ended: unknown[] = [];
  let runs = 0;
  let running: Promise<void> = Promise.resolve();
  const tracker: WriteTracker = {
    writeSince: 0,
    written: () => {},
    writerEnded: (error) => ended.push(error),
  };
  const queue: ClientQueue = new ClientQueue(1 << 20, null, null, {
    resume: () => {
      runs++;
      running = runPushLoop(queue, socket, tracker);
    },
  });
  const start = () => {
    runs++;
    running = runPushLoop(queue, socket, tracker);
  };
  return { socket, queue, ended, tracker, start, runs: () => runs, idle: () => running };
}

Deno.test("the push loop writes in order across partial writes, parks, and runs again", async () => {
  const h = harness(3);
  h.queue.push(new Uint8Array([1, 2, 3, 4, 5]));
  h.queue.pushControl(new Uint8Array([9]));
  h.start();
  await h.idle();
  assertEquals(h.socket.written, [9, 1, 2, 3, 4, 5], "control first, then data, whole");
  assert(h.queue.parked, "parked once empty");
  assertEquals(h.tracker.writeSince, 0);
  h.queue.push(new Uint8Array([6]));
  assertEquals(h.runs(), 2, "a frame for a parked queue starts the loop again");
  h.queue.push(new Uint8Array([7])); // while it runs: no second loop
  assertEquals(h.runs(), 2);
  await h.idle();
  await h.idle();
  assertEquals(h.socket.written, [9, 1, 2, 3, 4, 5, 6, 7]);
  assertEquals(h.ended, [], "not ended while the queue is open");
  h.queue.seal(new Uint8Array([0x88, 0]), false);
  await h.idle();
  assertEquals(h.socket.written.slice(-2), [0x88, 0], "the close frame last");
  assertEquals(h.ended, [null], "ended once, drained");
  assert(!h.queue.parked);
});

Deno.test("a failed write ends the push loop with its error, once", async () => {
  const h = harness(100);
  h.socket.failWith = new Error("broken pipe");
  h.queue.push(new Uint8Array([1]));
  h.start();
  await h.idle();
  assertEquals(h.ended.length, 1);
  assertEquals((h.ended[0] as Error).message, "broken pipe");
  h.queue.dispose(); // not parked: nothing runs again
  assertEquals(h.runs(), 1);
});

Deno.test("disposing a parked queue runs the loop once more, only to end", async () => {
  const h = harness(100);
  h.start();
  await h.idle();
  assert(h.queue.parked);
  h.queue.dispose();
  await h.idle();
  assertEquals(h.ended, [null]);
  assertEquals(h.socket.writes, 0);
});

Deno.test("a stray resume while the loop drains starts no second loop", async () => {
  const h = harness(1);
  h.queue.push(new Uint8Array([1, 2, 3]));
  h.start();
  assert(!h.queue.parked);
  // What a connection's resume() does: start a loop only for a parked queue.
  const resumeLikeConnection = () => {
    if (h.queue.parked) h.start();
  };
  resumeLikeConnection();
  assertEquals(h.runs(), 1);
  await h.idle();
  assert(h.queue.parked);
  assertEquals(h.socket.written, [1, 2, 3]);
});
