/**
 * The single writer of one socket: it owns the client's outgoing queue, runs the push loop that
 * drains it, and keeps the stalled-write clock. Every frame of a connection (the 101 response,
 * data, pings, pongs, the close frame) goes through it, in order, so partial frames never
 * interleave. It reports to its connection through one callback,
 * {@linkcode WriterOwner.writerReport}.
 *
 * It drains itself and is the loop's {@linkcode WriteTracker} by methods of its own class: no
 * promise chain or closure per client (an idle client's memory is mostly such bookkeeping), and
 * the connection handlers receive carries none of it.
 *
 * @module
 */
import { ClientQueue } from "./outbox/client_queue.ts";
import type { WriteScheduler } from "./outbox/write_scheduler.ts";
import type { Backlog } from "./outbox/backlog.ts";
import { type ByteWriter, runPushLoop, type WriteTracker } from "./outbox/push_loop.ts";

/** Who a {@linkcode SocketWriter} reports to (its connection). */
export interface WriterOwner {
  /**
   * Called after each batch is written in full (`ended` false, `bytes` its length), and once
   * when the writer ends (`ended` true): `error` is null when the queue was sealed and drained
   * (the close frame is out, or the queue was disposed), else the write error.
   */
  writerReport(bytes: number, ended: boolean, error: unknown): void;
}

/** What every writer of a route shares: the queue limit, coalescing and the backlog. */
export interface WriterOptions {
  /** `maxQueueBytes`: bytes that may wait in the queue (slow consumer beyond). */
  limits: { readonly maxQueueBytes: number };
  /** Defers writer wake-ups so publishes coalesce; null writes at once. */
  scheduler: WriteScheduler | null;
  /** The server's outgoing backlog, for publisher back-pressure; null counts nothing. */
  backlog: Backlog | null;
}

/** {@linkcode SocketWriter.writeSince} once the writer has ended. */
export const ENDED = -1;

/** A write stuck this long means the peer stopped reading: its queue leaves the backlog. */
export const STALL_MS = 100;

/**
 * The single writer of one socket (see the module doc). It is its own queue (it extends
 * {@linkcode ClientQueue} and drains itself) rather than holding one: one object per client.
 */
export class SocketWriter extends ClientQueue implements WriteTracker {
  /**
   * When the pending write started or last progressed (`clockMs`); 0 when no write is pending,
   * {@linkcode ENDED} once the writer has ended (a field less on every client than a flag).
   * Kept by the push loop; read through {@linkcode SocketWriter.stalledFor}.
   */
  writeSince = 0;
  readonly #socket: ByteWriter;
  readonly #owner: WriterOwner;

  /** A writer of `socket` reporting to `owner`; nothing is written before `start`. */
  constructor(socket: ByteWriter, options: WriterOptions, owner: WriterOwner) {
    super(options.limits.maxQueueBytes, options.scheduler, options.backlog);
    this.#socket = socket;
    this.#owner = owner;
  }

  /** Bytes waiting: data and control frames. */
  get queuedBytes(): number {
    return this.bytes;
  }

  /** The most data bytes the queue holds. */
  get maxQueueBytes(): number {
    return this.maxBytes;
  }

  /** Starts the push loop (once, after the first frames are queued, so they share a write). */
  start(): void {
    runPushLoop(this, this.#socket, this);
  }

  /**
   * How long the pending write has made no progress at `now` (0 when no write is pending). A
   * write stalled beyond {@linkcode STALL_MS} takes the queue out of the backlog.
   */
  stalledFor(now: number): number {
    if (this.writeSince <= 0) return 0; // idle or ended
    const stalled = now - this.writeSince;
    if (stalled > STALL_MS) this.leaveBacklog();
    return stalled;
  }

  /** Frames wait again: starts the push loop, which had parked. */
  protected override resumeConsumer(): void {
    // Only a parked queue needs a loop: a second one would interleave writes.
    if (this.parked) runPushLoop(this, this.#socket, this);
  }

  /** Called by the push loop after each batch is written in full. */
  written(bytes: number): void {
    this.#owner.writerReport(bytes, false, null);
  }

  /** Called by the push loop when it ends. */
  writerEnded(error: unknown): void {
    // Once: a stray resume after the end (dispose resumes a parked loop) ends again.
    if (this.writeSince === ENDED) return;
    this.writeSince = ENDED;
    this.#owner.writerReport(0, true, error);
  }
}
