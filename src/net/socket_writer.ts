/**
 * The single writer of one socket: it owns the client's outgoing queue, drains it one batch per
 * turn of the server's write window, and keeps the stalled-write clock. Every frame of a
 * connection (the 101 response, data, pings, pongs, the close frame) goes through it, in order,
 * so partial frames never interleave. It reports to its connection through one callback,
 * {@linkcode WriterOwner.writerReport}.
 *
 * At most one batch of a connection is being written at any time: the writer holds at most one
 * place in the window (waiting or writing), and frames queued meanwhile leave in its next batch.
 * It drains itself by methods of its own class: no promise chain or closure per client (an idle
 * client's memory is mostly such bookkeeping), and the connection handlers receive carries none
 * of it.
 *
 * @module
 */
import { ClientQueue } from "./outbox/client_queue.ts";
import type { WriteScheduler } from "./outbox/write_scheduler.ts";
import type { Backlog } from "./outbox/backlog.ts";
import { type ByteWriter, pendingFor, writeBatch } from "./outbox/write_batch.ts";
import { type PooledWriter, WritePool } from "./outbox/write_pool.ts";

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
  /** The server's write window; absent, each writer writes as soon as it has frames. */
  pool?: WritePool;
}

/** {@linkcode SocketWriter.writeSince} once the writer has ended. */
export const ENDED = -1;

/** A write stuck this long means the peer stopped reading: its queue leaves the backlog. */
export const STALL_MS = 100;

/**
 * The single writer of one socket (see the module doc). It is its own queue (it extends
 * {@linkcode ClientQueue} and drains itself) rather than holding one: one object per client.
 */
export class SocketWriter extends ClientQueue implements PooledWriter {
  /**
   * When the pending write started or last progressed (`clockMs`); 0 when no write is pending,
   * {@linkcode ENDED} once the writer has ended (a field less on every client than a flag).
   * Kept while a batch is written; read through {@linkcode SocketWriter.stalledFor}.
   */
  writeSince = 0;
  readonly #socket: ByteWriter;
  readonly #owner: WriterOwner;
  readonly #pool: WritePool;

  /** A writer of `socket` reporting to `owner`; nothing is written before `start`. */
  constructor(socket: ByteWriter, options: WriterOptions, owner: WriterOwner) {
    super(options.limits.maxQueueBytes, options.scheduler, options.backlog);
    this.#socket = socket;
    this.#owner = owner;
    this.#pool = options.pool ?? UNLIMITED;
  }

  /** Bytes waiting: data and control frames. */
  get queuedBytes(): number {
    return this.bytes;
  }

  /** The most data bytes the queue holds. */
  get maxQueueBytes(): number {
    return this.maxBytes;
  }

  /** Starts writing (once, after the first frames are queued, so they share a write). */
  start(): void {
    this.#pool.request(this);
  }

  /**
   * How long the pending write has made no progress at `now` (0 when no write is pending). A
   * write stalled beyond {@linkcode STALL_MS} takes the queue out of the backlog.
   */
  stalledFor(now: number): number {
    const stalled = pendingFor(this, now); // 0 when idle or ended
    if (stalled > STALL_MS) this.leaveBacklog();
    return stalled;
  }

  /** Frames wait in the parked queue: get in line for the window. */
  protected override resumeConsumer(): void {
    // Only a parked writer asks: one that is waiting or writing takes these frames too.
    if (!this.parked) return;
    this.unpark();
    this.#pool.request(this);
  }

  /** Its turn in the window: writes one batch (see {@linkcode WritePool}). */
  grant(): void {
    const batch = this.take();
    if (batch === null) {
      this.#pool.release(this);
      this.#idle();
      return;
    }
    writeBatch(this.#socket, batch, this).then(
      () => this.#written(batch.length),
      (err) => {
        this.#pool.release(this);
        this.#ended(err ?? new Error("write failed"));
      },
    );
  }

  #written(bytes: number): void {
    this.#pool.release(this);
    // The report may queue frames (a history replay's next chunk): they are seen below.
    this.#owner.writerReport(bytes, false, null);
    if (this.empty) this.#idle();
    else this.#pool.request(this); // more queued meanwhile: the next batch, in line
  }

  /** Nothing waits: end once sealed, else park until frames arrive. */
  #idle(): void {
    if (this.sealed) this.#ended(null);
    else this.park();
  }

  #ended(error: unknown): void {
    // Once: a stray turn after the end (dispose resumes a parked writer) ends again.
    if (this.writeSince === ENDED) return;
    this.writeSince = ENDED;
    this.#owner.writerReport(0, true, error);
  }
}

/** The pool of writers created without one: no window, every request granted at once. */
const UNLIMITED = new WritePool(Infinity);
