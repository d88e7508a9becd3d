/**
 * The I/O of the opening handshake: reading the request head into a pooled slot, and answering
 * a refused request without a reset destroying the answer. The rules themselves (what a valid
 * upgrade is) are sans-I/O, in `src/protocol/handshake.ts`.
 *
 * @module
 */
import {
  buildRejectResponse,
  findHeaderEnd,
  type HandshakeRejection,
  parseRequestHead,
} from "../protocol/handshake.ts";
import { writeFully } from "./outbox/write_batch.ts";
import { HEAD_SLOT_BYTES, headBuffers } from "./read_buffers.ts";
import { clockMs } from "../clock.ts";

/** A handshake in flight: its socket and when the shared ticker closes it. */
export interface PendingHandshake {
  /** The socket. */
  conn: Deno.Conn;
  /** When the handshake's time is up ({@linkcode clockMs}). */
  deadline: number;
}

/** What {@linkcode readRequestHead} read: the parsed head, and the bytes that came after it. */
export interface RequestHead {
  /** The parsed request, or why it is refused. */
  request: ReturnType<typeof parseRequestHead>;
  /** Bytes past the head: the start of the first frame. */
  leftover: Uint8Array;
}

/** A refused client gets this long to read the response before its socket is closed. */
export const REJECT_LINGER_MS = 1000;

const EMPTY = new Uint8Array(0);

/**
 * Reads the request head, at most `max` bytes (431 beyond); null when the peer closed first.
 * The head is read into a pooled slot ({@linkcode headBuffers}) that goes back once the reads
 * are done (the head is decoded to a string and the leftover copied, so nothing keeps a view).
 */
export async function readRequestHead(conn: Deno.Conn, max: number): Promise<RequestHead | null> {
  let slot: Uint8Array | null = max >= HEAD_SLOT_BYTES ? headBuffers.take() : null;
  let buffer = slot ?? new Uint8Array(max);
  let length = 0;
  try {
    while (true) {
      if (length === buffer.length) {
        if (length >= max) {
          return {
            request: { status: 431, reason: `The request head exceeds ${max} bytes.` },
            leftover: EMPTY,
          };
        }
        const grown = new Uint8Array(Math.min(max, buffer.length * 2));
        grown.set(buffer);
        buffer = grown;
        if (slot !== null) headBuffers.give(slot); // no read into it is pending
        slot = null;
      }
      const n = await conn.read(buffer.subarray(length));
      if (n === null) return null;
      const from = length;
      length += n;
      const end = findHeaderEnd(buffer, from, length);
      if (end !== -1) {
        // Bytes past the head are the first frame(s): keep them for the parser.
        return {
          request: parseRequestHead(buffer.subarray(0, end)),
          // Usually nothing follows the head: share one empty array instead of keeping a new
          // one alive for the connection's lifetime.
          leftover: end === length ? EMPTY : buffer.slice(end, length),
        };
      }
    }
  } finally {
    // Every read has settled (or failed) here: the slot can serve another handshake.
    if (slot !== null) headBuffers.give(slot);
  }
}

/**
 * Answers a refused handshake, then half-closes and drains briefly (until the peer closes, or
 * {@linkcode REJECT_LINGER_MS} through the pending deadline): closing with unread request bytes
 * would send a reset that can destroy the response before the client reads it.
 */
export async function rejectHandshake(
  pending: PendingHandshake,
  rejection: HandshakeRejection,
): Promise<void> {
  const conn = pending.conn;
  await writeFully(conn, buildRejectResponse(rejection));
  await conn.closeWrite();
  pending.deadline = Math.min(pending.deadline, clockMs() + REJECT_LINGER_MS);
  const sink = new Uint8Array(4096);
  while ((await conn.read(sink)) !== null) { /* discard */ }
  closeQuietly(conn);
}

/** Closes `conn`, which may be closed already. */
export function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // Already closed.
  }
}
