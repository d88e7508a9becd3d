/**
 * Writing one batch with a fake socket: partial writes are continued until the batch is out, the
 * stalled-write clock runs only while a write is pending, and a failed write rejects.
 */
import { assertEquals, assertRejects } from "@std/assert";
import {
  type ByteWriter,
  pendingFor,
  UNSTAMPED,
  writeBatch,
  writeFully,
} from "../../../src/net/outbox/write_batch.ts";

/** Accepts at most `chunk` bytes per write, asynchronously, and records them. */
class ChunkedSocket implements ByteWriter {
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

Deno.test("writeBatch continues partial writes and keeps the clock only while pending", async () => {
  const socket = new ChunkedSocket(3);
  const clock = { writeSince: 0 };
  const pending = writeBatch(socket, new Uint8Array([1, 2, 3, 4, 5, 6, 7]), clock);
  assertEquals(clock.writeSince, UNSTAMPED, "pending, and no clock read on the write path");
  await pending;
  assertEquals(socket.written, [1, 2, 3, 4, 5, 6, 7]);
  assertEquals(socket.writes, 3);
  assertEquals(clock.writeSince, 0, "written: the clock stops");
});

Deno.test("writeBatch rejects with the socket's error", async () => {
  const socket = new ChunkedSocket(10);
  socket.failWith = new Error("broken pipe");
  await assertRejects(
    () => writeBatch(socket, new Uint8Array([1]), { writeSince: 0 }),
    Error,
    "broken pipe",
  );
});

Deno.test("writeFully writes a handshake response across partial writes", async () => {
  const socket = new ChunkedSocket(2);
  await writeFully(socket, new Uint8Array([9, 8, 7, 6, 5]));
  assertEquals(socket.written, [9, 8, 7, 6, 5]);
});

Deno.test("pendingFor: 0 when idle or ended, 0 at the first look (which stamps it), then the time since", () => {
  assertEquals(pendingFor({ writeSince: 0 }, 100), 0, "idle");
  assertEquals(pendingFor({ writeSince: -1 }, 100), 0, "ended");
  const clock = { writeSince: UNSTAMPED };
  assertEquals(pendingFor(clock, 100), 0);
  assertEquals(clock.writeSince, 100, "stamped at the first look");
  assertEquals(pendingFor(clock, 130), 30);
  assertEquals(clock.writeSince, 100, "later looks keep the stamp");
});
