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

/** Where a batch's stalled-write clock is kept. */
export interface WriteClock {
  /**
   * 0 when idle; {@linkcode UNSTAMPED} when a write started or progressed and nobody looked
   * since; else the `clockMs()` of the first look at it (see {@linkcode pendingFor}).
   */
  writeSince: number;
}

/**
 * `writeSince` of a write pending since a moment nobody read the clock at. Writes do not read
 * the clock (it is an op, once per delivery); the watchdogs that look for stalled writes stamp
 * them at their first look, so a stall is seen one look later, never earlier.
 */
export const UNSTAMPED = 1;

/**
 * How long the pending write of `clock` has made no progress at `now` (`clockMs`): 0 when none
 * is pending (`writeSince` ≤ 0) or at the first look at it, which stamps it with `now`.
 */
export function pendingFor(clock: WriteClock, now: number): number {
  const since = clock.writeSince;
  if (since <= 0) return 0;
  if (since === UNSTAMPED) {
    clock.writeSince = now;
    return 0;
  }
  return now - since;
}

/**
 * Writes all of `batch`, keeping `clock.writeSince` ({@linkcode UNSTAMPED} while pending, again
 * after each partial write, 0 once written). This is the hot path of every delivery, so it
 * awaits the socket directly: one promise per write. Rejects with the socket's error.
 */
export async function writeBatch(
  writer: ByteWriter,
  batch: Uint8Array,
  clock: WriteClock,
): Promise<void> {
  clock.writeSince = UNSTAMPED;
  let at = await writer.write(batch);
  while (at < batch.length) {
    clock.writeSince = UNSTAMPED;
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
