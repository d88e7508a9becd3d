/**
 * The socket writer with a fake socket: every frame of a connection leaves through it in order
 * (control frames first, the close frame last), it reports each batch and its end through its
 * one callback, and its stalled-write clock reads the pending write.
 */
import { assertEquals } from "@std/assert";
import { SocketWriter, STALL_MS, type WriterOwner } from "../../src/net/socket_writer.ts";
import { type ByteWriter, UNSTAMPED } from "../../src/net/outbox/write_batch.ts";
import { WritePool } from "../../src/net/outbox/write_pool.ts";

/** Writes complete only when released, so a write can be held pending. */
class HeldSocket implements ByteWriter {
  readonly written: number[] = [];
  #release: (() => void)[] = [];
  hold = false;
  write(p: Uint8Array): Promise<number> {
    const done = () => {
      this.written.push(...p);
      return p.length;
    };
    if (!this.hold) return Promise.resolve().then(done);
    return new Promise((resolve) => this.#release.push(() => resolve(done())));
  }
  releaseAll(): void {
    for (const r of this.#release.splice(0)) r();
  }
}

class Recorder implements WriterOwner {
  readonly reports: [number, boolean, unknown][] = [];
  #ended: () => void = () => {};
  readonly ended = new Promise<void>((r) => this.#ended = r);
  writerReport(bytes: number, ended: boolean, error: unknown): void {
    this.reports.push([bytes, ended, error]);
    if (ended) this.#ended();
  }
}

const OPTIONS = { limits: { maxQueueBytes: 1024 }, scheduler: null, backlog: null };

Deno.test("socket writer: one writer, in order, reporting batches and its end once", async () => {
  const socket = new HeldSocket();
  const owner = new Recorder();
  const writer = new SocketWriter(socket, OPTIONS, owner);
  writer.pushControl(new Uint8Array([101])); // the handshake response
  writer.push(new Uint8Array([1, 2]));
  writer.pushPong(new Uint8Array([0x8a, 0]));
  writer.seal(new Uint8Array([0x88, 0]), false);
  writer.start();
  await owner.ended;
  assertEquals(socket.written, [101, 0x8a, 0, 1, 2, 0x88, 0], "control first, close last");
  assertEquals(owner.reports, [[7, false, null], [0, true, null]]);
  writer.dispose(); // disposing after the end reports nothing more
  await Promise.resolve();
  assertEquals(owner.reports.length, 2);
});

Deno.test("socket writer: the stalled-write clock runs only while a write is pending", async () => {
  const socket = new HeldSocket();
  socket.hold = true;
  const owner = new Recorder();
  const writer = new SocketWriter(socket, OPTIONS, owner);
  writer.start(); // parks: nothing queued
  assertEquals(writer.stalledFor(1e12), 0, "idle: no write pending");
  writer.push(new Uint8Array([1]));
  assertEquals(writer.writeSince, UNSTAMPED, "pending: no clock read by the write");
  const since = 5_000;
  assertEquals(writer.stalledFor(since), 0, "the first look stamps it");
  assertEquals(writer.stalledFor(since + STALL_MS + 5), STALL_MS + 5);
  socket.releaseAll();
  while (owner.reports.length === 0) await Promise.resolve();
  assertEquals(writer.stalledFor(since + 10_000), 0, "written: the clock stops");
  assertEquals(writer.queuedBytes, 0);
});

Deno.test("socket writers share the window: one batch per turn, frames queued meanwhile join the next", async () => {
  const pool = new WritePool(1, 10_000);
  const options = { ...OPTIONS, pool };
  const sockets = [new HeldSocket(), new HeldSocket()];
  for (const s of sockets) s.hold = true;
  const owners = [new Recorder(), new Recorder()];
  const writers = sockets.map((s, i) => new SocketWriter(s, options, owners[i]));
  writers[0].push(new Uint8Array([1]));
  writers[1].push(new Uint8Array([2]));
  writers[0].start();
  writers[1].start();
  assertEquals([pool.active, pool.waiting], [1, 1], "the second writer waits for the slot");
  writers[0].push(new Uint8Array([3])); // while its first batch is pending
  writers[1].push(new Uint8Array([4])); // while it waits
  sockets[0].releaseAll();
  while (owners[0].reports.length === 0) await Promise.resolve();
  assertEquals(sockets[0].written, [1]);
  assertEquals([pool.active, pool.waiting], [1, 1], "writer 1 has the slot, writer 0 is in line");
  sockets[1].releaseAll();
  while (owners[1].reports.length === 0) await Promise.resolve();
  assertEquals(sockets[1].written, [2, 4], "what was queued while waiting leaves in its turn");
  sockets[0].releaseAll();
  while (owners[0].reports.length < 2) await Promise.resolve();
  assertEquals(sockets[0].written, [1, 3]);
  assertEquals(owners[0].reports, [[1, false, null], [1, false, null]]);
  assertEquals([pool.active, pool.waiting], [0, 0], "both parked: nothing holds the window");
  pool.close();
});
