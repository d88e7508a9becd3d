/**
 * The per-client push loop: the single writer of one socket. It takes everything queued as one
 * buffer and writes it, in order, until the queue is empty; then it parks the queue and ends,
 * and the queue starts it again when frames arrive (at most one runs per client: only a parked
 * queue resumes its consumer). It ends for good when the queue is sealed and drained. Control
 * replies (pong, close) reach the socket through it too, so partial frames never interleave.
 *
 * Parking instead of awaiting the next frame matters for memory: a suspended async function
 * with its promises and closures cost ~1 KiB on every idle client (measured over 10,000).
 *
 * @module
 */
import type { ClientQueue } from "./client_queue.ts";
import { clockMs } from "../../clock.ts";

/**
 * What the loop reports about its writes: when the pending write last made progress (0 when no
 * write is pending: the stalled-write deadline reads it), the bytes written, and its end.
 */
export interface WriteTracker {
  /** {@linkcode clockMs} when the pending write started or last progressed; 0 when idle. */
  writeSince: number;
  /** Called after each batch is written in full. */
  written(bytes: number): void;
  /** Called once when the loop ends: with null when drained, with the error when a write failed. */
  writerEnded(error: unknown): void;
}

/**
 * Writes what is queued until the queue is empty, then parks it and returns; the queue's
 * consumer calls this again on `resume`. When the queue is sealed and drained (after the close
 * frame is written, or after the queue was disposed), calls `tracker.writerEnded` instead.
 * Never rejects: a failed write ends the loop and is reported to `tracker.writerEnded`, so the
 * caller needs no promise chain.
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
        queue.park();
        return;
      }
      tracker.writeSince = clockMs();
      let at = await writer.write(batch);
      while (at < batch.length) {
        tracker.writeSince = clockMs();
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
