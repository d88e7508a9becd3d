/**
 * The socket writer with a fake socket: every frame of a connection leaves through it in order
 * (control frames first, the close frame last), it reports each batch and its end through its
 * one callback, and its stalled-write clock reads the pending write.
 */
import { assertEquals } from "@std/assert";
import { SocketWriter, STALL_MS, type WriterOwner } from "../../src/net/socket_writer.ts";
import type { ByteWriter } from "../../src/net/outbox/push_loop.ts";

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
  const since = writer.writeSince;
  assertEquals(writer.stalledFor(since + STALL_MS + 5), STALL_MS + 5);
  socket.releaseAll();
  while (owner.reports.length === 0) await Promise.resolve();
  assertEquals(writer.stalledFor(since + 10_000), 0, "written: the clock stops");
  assertEquals(writer.queuedBytes, 0);
});
