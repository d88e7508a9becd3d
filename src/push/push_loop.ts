/**
 * The per-client push loop: the single writer of one socket. It waits for queued frames, takes
 * everything waiting as one buffer and writes it, in order, until the queue is sealed and empty.
 * Control replies (pong, close) reach the socket through it too, so partial frames never
 * interleave.
 *
 * @module
 */
import type { ClientQueue } from "./client_queue.ts";

/**
 * What the loop reports about its writes: when the pending write last made progress (0 when no
 * write is pending: the stalled-write deadline reads it), the bytes written, and its end.
 */
export interface WriteTracker {
  /** `performance.now()` when the pending write started or last progressed; 0 when idle. */
  writeSince: number;
  /** Called after each batch is written in full. */
  written(bytes: number): void;
  /** Called once when the loop ends: with null when drained, with the error when a write failed. */
  writerEnded(error: unknown): void;
}

/**
 * Runs until the queue is sealed and drained (after the close frame is written, or after the
 * queue was disposed), then calls `tracker.writerEnded`. Never rejects: a failed write ends
 * the loop and is reported to `tracker.writerEnded`, so the caller needs no promise chain (which
 * would be memory on every idle client).
 *
 * This is the hot path of every delivery, so it awaits the socket directly: no wrapper
 * functions, hence one promise per write (`Deno.Conn.write` may write only part of a buffer,
 * so the rest is written in the same loop).
 */
export async function runPushLoop(
  queue: ClientQueue,
  writer: ByteWriter,
  tracker: WriteTracker,
): Promise<void> {
  let error: unknown = null;
  try {
    while (true) {
      const batch = queue.take();
      if (batch === null) {
        if (queue.sealed) break;
        await queue.wait();
        continue;
      }
      tracker.writeSince = performance.now();
      let at = await writer.write(batch);
      while (at < batch.length) {
        tracker.writeSince = performance.now();
        at += await writer.write(batch.subarray(at));
      }
      tracker.writeSince = 0;
      tracker.written(batch.length);
    }
  } catch (err) {
    error = err ?? new Error("write failed");
  }
  tracker.writerEnded(error);
}

/** The part of `Deno.Conn` a writer needs. */
export interface ByteWriter {
  /** Writes some of `p`, resolving to the number of bytes written. */
  write(p: Uint8Array): Promise<number>;
}

/**
 * Writes all of `bytes` (handshake responses): `Deno.Conn.write` may write only part of a
 * buffer, so loop until done.
 */
export async function writeFully(writer: ByteWriter, bytes: Uint8Array): Promise<void> {
  let at = 0;
  while (at < bytes.length) at += await writer.write(at === 0 ? bytes : bytes.subarray(at));
}
