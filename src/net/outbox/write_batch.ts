/**
 * Writing one batch to a socket, for the single writer of a connection
 * ({@linkcode import("../socket_writer.ts").SocketWriter}): `Deno.Conn.write` may write only part
 * of a buffer, so the rest is written in the same call, and the stalled-write clock is kept
 * while it is pending.
 *
 * The writer writes one batch per turn of the server's write window
 * ({@linkcode import("./write_pool.ts").WritePool}) and then queues for its next turn, so no
 * loop is suspended on an idle client: a suspended async function with its promises and closures
 * cost ~1 KiB on every idle client (measured over 10,000).
 *
 * @module
 */
import { clockMs } from "../../clock.ts";

/** Where a batch's stalled-write clock is kept. */
export interface WriteClock {
  /** {@linkcode clockMs} when the pending write started or last progressed; 0 when idle. */
  writeSince: number;
}

/**
 * Writes all of `batch`, keeping `clock.writeSince` (set while pending, 0 once written). This is
 * the hot path of every delivery, so it awaits the socket directly: one promise per write.
 * Rejects with the socket's error.
 */
export async function writeBatch(
  writer: ByteWriter,
  batch: Uint8Array,
  clock: WriteClock,
): Promise<void> {
  clock.writeSince = clockMs();
  let at = await writer.write(batch);
  while (at < batch.length) {
    clock.writeSince = clockMs();
    at += await writer.write(batch.subarray(at));
  }
  clock.writeSince = 0;
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
