/**
 * The outgoing queue of one client: frames wait here until the client's socket writer writes them.
 * Byte-bounded (a client that cannot keep up is a slow consumer, not a memory leak), and built
 * for coalescing: {@linkcode ClientQueue.take} hands out everything queued as one buffer, because
 * one `write` per batch instead of one per frame is the biggest throughput lever we measured.
 *
 * @module
 */

import { sharedBatches } from "./batch_cache.ts";
import type { Backlog } from "./backlog.ts";
import type { WriteScheduler } from "./write_scheduler.ts";

/** The most bytes {@linkcode ClientQueue.take} joins into one write. */
export const MAX_BATCH_BYTES = 64 * 1024;

/**
 * Frames at least this large are written on their own, never copied into a batch, and a queue
 * holding this much wakes its writer at once instead of waiting for the write delay: coalescing
 * pays for small frames, where the write costs far more than the copy, not for large ones.
 */
export const COALESCE_LIMIT = 16 * 1024;

/**
 * Who drains a queue: its writer. A writer that finds the queue empty parks it
 * ({@linkcode ClientQueue.park}) and ends; the queue calls `resume` when frames wait again, so
 * an idle client holds no suspended loop, promise or closure.
 */
export interface QueueConsumer {
  /**
   * Frames wait in a parked queue: start draining it. May be called again before the consumer
   * takes; it must start draining only while {@linkcode ClientQueue.parked} is true.
   */
  resume(): void;
}

/**
 * A FIFO of encoded frames with control frames first and a final close frame last.
 *
 * Frames are whole, so putting a pong ahead of queued data never interleaves partial frames.
 * At most one pong waits ({@linkcode ClientQueue.pushPong}), and control frames count toward
 * {@linkcode ClientQueue.bytes}: a client that pings faster than it reads cannot grow its queue.
 *
 * @example
 * ```ts
 * const queue = new ClientQueue(1 << 20);
 * queue.push(new Uint8Array([0x81, 0x00]));
 * queue.push(new Uint8Array([0x81, 0x00]));
 * queue.take(); // one 4-byte buffer holding both frames
 * ```
 */
export class ClientQueue {
  /** Bytes allowed to wait; {@linkcode ClientQueue.push} refuses data beyond it. */
  readonly maxBytes: number;
  #data: Uint8Array[] = NONE;
  #head = 0;
  /** Bytes of the data and control frames waiting (not of the close frame). */
  #bytes = 0;
  #control: Uint8Array[] = NONE;
  #final: Uint8Array | null = null;
  #sealed = false;
  #parked = false;
  #wakeScheduled = false;
  readonly #consumer: QueueConsumer | null;
  readonly #scheduler: WriteScheduler | null;
  readonly #backlog: Backlog | null;
  #outOfBacklog = false;

  /**
   * Creates a queue that holds at most `maxBytes` of data frames, drained by `consumer`. With a
   * `scheduler`, a parked consumer is resumed at the scheduler's next flush instead of at once,
   * so frames of several publishes coalesce into one write.
   */
  constructor(
    maxBytes: number,
    scheduler: WriteScheduler | null = null,
    backlog: Backlog | null = null,
    consumer: QueueConsumer | null = null,
  ) {
    this.maxBytes = maxBytes;
    this.#scheduler = scheduler;
    this.#backlog = backlog;
    this.#consumer = consumer;
  }

  /** Bytes waiting: data and control frames (the pending pong, a ping, the 101 response). */
  get bytes(): number {
    return this.#bytes;
  }

  /** Whether the queue takes no more frames (a close frame was queued or it was disposed). */
  get sealed(): boolean {
    return this.#sealed;
  }

  /** Whether nothing at all is waiting. */
  get empty(): boolean {
    return this.#head === this.#data.length && this.#control.length === 0 && this.#final === null;
  }

  /**
   * Queues a data frame. Returns false, queuing nothing, when it would push the queue over
   * {@linkcode ClientQueue.maxBytes} (the caller applies the slow-consumer policy) or when the
   * queue is sealed.
   */
  push(frame: Uint8Array): boolean {
    if (this.#sealed) return false;
    if (this.#bytes + frame.length > this.maxBytes) return false;
    if (this.#data === NONE) this.#data = [];
    this.#data.push(frame);
    this.#bytes += frame.length;
    this.#report(this.#bytes - frame.length, this.#bytes);
    this.#notify();
    return true;
  }

  /**
   * Queues a control frame (a heartbeat ping, the handshake response) ahead of waiting data.
   * Ignored once sealed. Not for pongs: see {@linkcode ClientQueue.pushPong}.
   */
  pushControl(frame: Uint8Array): void {
    if (this.#sealed) return;
    if (this.#control === NONE) this.#control = [];
    this.#control.push(frame);
    this.#add(frame.length);
    this.#notify();
  }

  /**
   * Queues a pong ahead of waiting data, or puts it in place of the pong that is still waiting
   * (RFC 6455 §5.5.3: an endpoint may answer only the most recent ping). At most one pong then
   * waits, whatever the rate of pings, and it still leaves through the consumer, after what was
   * already taken. Returns true when it replaced a waiting pong; false when queued or sealed.
   */
  pushPong(frame: Uint8Array): boolean {
    if (this.#sealed) return false;
    const control = this.#control;
    // The control list is short (the response, a ping, the pong): a scan costs less than a
    // field on every idle client. A pong frame is the only entry that starts with 0x8A.
    for (let i = 0; i < control.length; i++) {
      if (control[i][0] === PONG_BYTE0) {
        const before = this.#bytes;
        this.#bytes += frame.length - control[i].length;
        control[i] = frame;
        this.#report(before, this.#bytes);
        return true;
      }
    }
    this.pushControl(frame);
    return false;
  }

  /**
   * Queues the close frame as the last frame and seals the queue. With `discard`, waiting data
   * is dropped so the close goes out at once (protocol errors, slow consumers).
   */
  seal(closeFrame: Uint8Array, discard: boolean): void {
    if (this.#sealed) return;
    if (discard) this.#clearData();
    this.#final = closeFrame;
    this.#sealed = true;
    this.#notify();
  }

  /** Drops everything and seals the queue; a parked consumer is resumed, so it can end. */
  dispose(): void {
    this.#clearData();
    this.#report(this.#bytes, 0);
    this.#bytes = 0;
    this.#control = NONE;
    this.#final = null;
    this.#sealed = true;
    this.#notify();
  }

  /**
   * Removes and returns the next batch as one buffer: control frames, then data frames up to
   * {@linkcode MAX_BATCH_BYTES} (at least one), then the close frame once all data is out.
   * Returns null when nothing is waiting.
   */
  take(): Uint8Array | null {
    this.#parked = false; // whoever takes is draining
    // The common case on the hot path, one frame waiting: hand it out without allocating.
    if (
      this.#control.length === 0 && this.#final === null && this.#data.length - this.#head === 1
    ) {
      const frame = this.#data[this.#head];
      this.#data.length = 0;
      this.#head = 0;
      this.#bytes -= frame.length;
      this.#report(this.#bytes + frame.length, this.#bytes);
      return frame;
    }
    const before = this.#bytes;
    const parts: Uint8Array[] = this.#control === NONE ? [] : this.#control;
    let total = 0;
    for (const part of parts) total += part.length;
    this.#bytes -= total;
    this.#control = NONE;
    const data = this.#data;
    while (this.#head < data.length) {
      const frame = data[this.#head];
      const large = frame.length >= COALESCE_LIMIT;
      if (parts.length > 0 && (large || total + frame.length > MAX_BATCH_BYTES)) break;
      parts.push(frame);
      total += frame.length;
      this.#bytes -= frame.length;
      data[this.#head++] = EMPTY;
      if (large) break; // written alone: copying it would cost more than the write it saves
    }
    if (this.#head === data.length) {
      this.#data = NONE;
      this.#head = 0;
      if (this.#final !== null) {
        parts.push(this.#final);
        total += this.#final.length;
        this.#final = null;
      }
    }
    if (before !== this.#bytes) this.#report(before, this.#bytes);
    // Subscribers of a channel usually take the same run of frames: join it once for all of them.
    return parts.length === 0 ? null : sharedBatches.join(parts, total);
  }

  /**
   * Called by the consumer when {@linkcode ClientQueue.take} returned null and the queue is not
   * sealed: it stops draining, and is resumed when frames are queued, the queue is sealed or
   * disposed. The queue stays parked until the next `take`, so a consumer can tell a resume it
   * must act on (parked) from a stray one (draining already).
   */
  park(): void {
    this.#parked = true;
  }

  /** Whether the consumer is parked (waiting to be resumed). */
  get parked(): boolean {
    return this.#parked;
  }

  /**
   * Marks the consumer as about to drain before it takes (it waits for its turn to write):
   * frames queued meanwhile then resume nothing, since the coming take gets them too.
   */
  protected unpark(): void {
    this.#parked = false;
  }

  /**
   * Leaves the server's backlog while this client's socket is stalled: a client that stopped
   * reading is on its way to being dropped, and must not hold publishers back meanwhile. It
   * rejoins at its next successful take.
   */
  leaveBacklog(): void {
    if (this.#outOfBacklog) return;
    this.#backlog?.update(this.#bytes, 0);
    this.#outOfBacklog = true;
  }

  #report(before: number, after: number): void {
    if (this.#outOfBacklog) {
      if (after >= before) return;
      this.#outOfBacklog = false; // it wrote something: it counts again
      this.#backlog?.update(0, after);
      return;
    }
    this.#backlog?.update(before, after);
  }

  /** Drops the waiting data frames; control frames stay (and keep their bytes counted). */
  #clearData(): void {
    const data = this.#data;
    let dropped = 0;
    for (let i = this.#head; i < data.length; i++) dropped += data[i].length;
    this.#report(this.#bytes, this.#bytes - dropped);
    this.#bytes -= dropped;
    this.#data = NONE;
    this.#head = 0;
  }

  #add(bytes: number): void {
    this.#bytes += bytes;
    this.#report(this.#bytes - bytes, this.#bytes);
  }

  /** Resumes the parked consumer now (the scheduler's flush calls this). */
  wakeNow(): void {
    this.#wakeScheduled = false;
    if (this.#parked) this.resumeConsumer();
  }

  /**
   * Resumes the parked consumer. A subclass that drains itself (the socket writer) overrides
   * this instead of passing a consumer: one object per client instead of two.
   */
  protected resumeConsumer(): void {
    this.#consumer?.resume();
  }

  #notify(): void {
    if (!this.#parked) return; // the consumer is draining: it will take these frames too
    // Enough bytes for a write of their own: no reason to wait for more.
    if (this.#scheduler !== null && !this.#sealed && this.#bytes < COALESCE_LIMIT) {
      if (!this.#wakeScheduled) {
        this.#wakeScheduled = true;
        this.#scheduler.schedule(this);
      }
      return;
    }
    this.resumeConsumer();
  }
}

const EMPTY = new Uint8Array(0);

/** The first byte of a pong frame: FIN and opcode 0xA (no RSV bits: the server uses none). */
const PONG_BYTE0 = 0x8a;

/**
 * The list of an empty queue, shared: an idle client then holds no arrays of its own. Frozen,
 * so a push into it instead of a fresh list would throw rather than leak frames between clients.
 */
const NONE: Uint8Array[] = Object.freeze([]) as unknown as Uint8Array[];
