/**
 * The per-client push loop: the single writer of one socket. It waits for queued frames, takes
 * everything waiting as one buffer and writes it, in order, until the queue is sealed and empty.
 * Control replies (pong, close) reach the socket through it too, so partial frames never
 * interleave.
 *
 * @module
 */
import type { ClientQueue } from "./client_queue.ts";

/** Where the loop writes: resolves when all of `bytes` is written, rejects when the socket fails. */
export type WriteAll = (bytes: Uint8Array) => Promise<void>;

/**
 * Runs until the queue is sealed and drained (after the close frame is written, or after the
 * queue was disposed). Rejects with the socket's error when a write fails.
 */
export async function runPushLoop(queue: ClientQueue, writeAll: WriteAll): Promise<void> {
  while (true) {
    const batch = queue.take();
    if (batch !== null) {
      await writeAll(batch);
    } else if (queue.sealed) {
      return;
    } else {
      await queue.wait();
    }
  }
}

/** The part of `Deno.Conn` a writer needs. */
export interface ByteWriter {
  /** Writes some of `p`, resolving to the number of bytes written. */
  write(p: Uint8Array): Promise<number>;
}

/**
 * Writes all of `bytes`: `Deno.Conn.write` may write only part of a buffer, so loop until done.
 * `onProgress` runs after each partial write (the stalled-write deadline counts from the last).
 */
export async function writeFully(
  writer: ByteWriter,
  bytes: Uint8Array,
  onProgress?: () => void,
): Promise<void> {
  let at = 0;
  while (at < bytes.length) {
    at += await writer.write(at === 0 ? bytes : bytes.subarray(at));
    onProgress?.();
  }
}
