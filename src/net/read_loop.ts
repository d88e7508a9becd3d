/**
 * The read side of a connection: one read pending at a time into a pooled slot, buffers that
 * grow for large messages and shrink back, pausing while the replies wait unwritten, and the
 * sans-I/O reader that turns the bytes into events. The connection extends it (one object per
 * client, not two) and handles the events through its hooks.
 *
 * @module
 */
import {
  type MessageInflater,
  MessageReader,
  type MessageReaderOptions,
  type WebSocketEvent,
} from "../protocol/message.ts";
import { READ_SLOT_BYTES, readBuffers } from "./read_buffers.ts";

/** The largest read buffer: large messages grow a connection's buffer up to this. */
const READ_BUFFER_LARGE = 64 * 1024;

/** The `#buffer` of a connection whose reading is paused (shared, never read into). */
const READ_PAUSED = new Uint8Array(0);

/** What the next step of the read loop is, as the connection sees it. */
export type ReadGate = "read" | "pause" | "stop";

/**
 * The read loop, as callbacks rather than an async function: one read is pending at a time, and
 * `#onRead` handles its bytes and starts the next. A suspended async function costs a generator,
 * its registers, a promise and two closures on every idle client (~0.3 KiB measured over
 * 10,000); the one callback they settle into is made once per connection.
 *
 * An idle connection reads into a small slot of a shared slab ({@linkcode readBuffers}); a read
 * that fills its buffer grows it (×4, up to 64 KiB) for the large message that is arriving, and
 * the connection goes back to a slot once the reads are small again.
 */
export abstract class ReadLoop {
  /** The socket, read here; the connection writes and closes it. */
  protected readonly conn: Deno.Conn;
  /** The buffer the pending read fills; {@linkcode READ_PAUSED} while reading is paused. */
  #buffer: Uint8Array | null = null;
  /** The slab slot this connection holds, when #buffer is one. */
  #slot: Uint8Array | null = null;
  /** Created at the client's first bytes: an idle client holds no parser state. */
  #reader: MessageReader | null = null;

  /** Reads `conn` once {@linkcode ReadLoop.startReading} is called. */
  constructor(conn: Deno.Conn) {
    this.conn = conn;
  }

  /** Whether reading is paused (no read pending until the writer drains). */
  protected get readPaused(): boolean {
    return this.#buffer === READ_PAUSED;
  }

  /** Whether to read next, pause (the replies wait unwritten) or stop (closed). */
  protected abstract readGate(): ReadGate;
  /** The reader's limits (one object shared by a route's connections). */
  protected abstract readerOptions(): MessageReaderOptions;
  /** What inflates compressed messages: null unless permessage-deflate was negotiated. */
  protected abstract messageInflater(): MessageInflater | null;
  /** Bytes arrived: the peer is alive. */
  protected abstract heard(): void;
  /** Whether input is discarded unparsed (after _Fail the WebSocket Connection_). */
  protected abstract inputFailed(): boolean;
  /** One event of a read, handed over after the parser returned. */
  protected abstract onEvent(event: WebSocketEvent): void;
  /** The parser failed: a {@linkcode ProtocolError} of the peer's, or a bug of ours. */
  protected abstract parseFailed(err: unknown): void;
  /** The peer closed its side (EOF). */
  protected abstract peerClosed(): void;
  /** A read failed, or handling its bytes threw (`internal` true: a bug of ours). */
  protected abstract readFailed(err: unknown, internal: boolean): void;
  /** Reading paused because the replies wait unwritten (for the metric). */
  protected abstract readPausedNow(): void;
  /** The read loop has ended (no read is pending). */
  protected abstract readLoopEnded(): void;

  /** Starts reading; `leftover` (bytes that came with the request head) is handled first. */
  protected startReading(leftover: Uint8Array): void {
    this.#slot = this.#buffer = readBuffers.take();
    if (leftover.length > 0 && !this.#bytesRead(leftover)) return this.#readEnded();
    this.#readNext();
  }

  /** Resumes a paused read loop (the writer drained). */
  protected resumeReading(): void {
    this.#slot = this.#buffer = readBuffers.take();
    this.#readNext();
  }

  /** Ends a paused read loop, which has no read pending that would end it (the socket closed). */
  protected endPausedReading(): void {
    if (this.#buffer === READ_PAUSED) this.#readEnded();
  }

  /**
   * Reads the next bytes, unless the connection says pause: reading then stops (nothing more is
   * parsed or answered, the peer's TCP window fills) until {@linkcode ReadLoop.resumeReading}.
   */
  #readNext(): void {
    const gate = this.readGate();
    if (gate === "stop") return this.#readEnded();
    if (gate === "pause") return this.#pauseReading();
    let read: Promise<number | null>;
    try {
      read = this.conn.read(this.#buffer!);
    } catch (err) {
      return this.#onReadFailed(err); // a read that throws instead of rejecting
    }
    read.then(this.#settled, this.#settled);
  }

  /**
   * Where the pending read settles, fulfilled (bytes read, null at EOF) or rejected (an error
   * object): one function bound once per connection serves both. A bound function holds no
   * context; the two arrow functions it replaces cost ~120 B more on every idle client
   * (measured on a heap snapshot).
   */
  readonly #settled: (result: unknown) => void = this.#onSettled.bind(this);

  #onSettled(result: unknown): void {
    if (typeof result === "number" || result === null) this.#onRead(result);
    else this.#onReadFailed(result);
  }

  #onRead(n: number | null): void {
    let more: boolean | "drain" = false;
    try {
      if (n === null) this.peerClosed();
      else {
        more = this.#bytesRead(this.#buffer!.subarray(0, n));
        if (more === true) this.#resizeBuffer(n);
      }
    } catch (err) {
      // Socket and protocol errors are handled where they happen; this is a bug, but must not
      // leak.
      this.readFailed(err, true);
      more = false;
    }
    if (more) this.#readNext();
    else this.#readEnded();
  }

  #onReadFailed(err: unknown): void {
    this.readFailed(err, false);
    this.#readEnded();
  }

  /**
   * Handles the bytes of one read: false when the loop must stop, "drain" to go on without
   * resizing (input after a failure is discarded).
   */
  #bytesRead(bytes: Uint8Array): boolean | "drain" {
    this.heard();
    let from = 0;
    // One round per read, unless the reader returned early: compressed messages inflated to
    // the message limit, whose events are handled (and let go) before the rest is parsed.
    do {
      if (this.inputFailed()) return "drain";
      const events: WebSocketEvent[] = [];
      let error: unknown = null;
      collecting = events;
      try {
        this.#reader ??= new MessageReader(this.readerOptions(), collect, this.messageInflater());
        from += this.#reader.push(from === 0 ? bytes : bytes.subarray(from));
      } catch (err) {
        error = err;
      } finally {
        collecting = NO_EVENTS;
      }
      // Handlers run after parsing returns, never inside the parser: a handler bug is not a
      // parser failure, and a handler cannot re-enter the reader. The events before a bad frame
      // are valid: they are handled (and answered) first.
      for (const event of events) this.onEvent(event);
      if (error !== null) {
        this.parseFailed(error);
        break;
      }
    } while (from < bytes.length && this.readGate() !== "stop");
    return this.readGate() !== "stop";
  }

  /** Pauses the read loop: no read is pending, so the slot serves others meanwhile. */
  #pauseReading(): void {
    if (this.#slot !== null) readBuffers.give(this.#slot);
    this.#slot = null;
    this.#buffer = READ_PAUSED;
    this.readPausedNow();
  }

  /** Grows the buffer after a read that filled it; goes back to a slot after small reads. */
  #resizeBuffer(n: number): void {
    const buffer = this.#buffer!;
    if (n === buffer.length && buffer.length < READ_BUFFER_LARGE) {
      this.#buffer = new Uint8Array(Math.min(buffer.length * 4, READ_BUFFER_LARGE));
      if (this.#slot !== null) {
        readBuffers.give(this.#slot); // no read into it is pending: it was just completed
        this.#slot = null;
      }
    } else if (
      this.#slot === null && n <= READ_SLOT_BYTES / 2 && this.#reader?.bufferedBytes === 0
    ) {
      this.#slot = this.#buffer = readBuffers.take();
    }
  }

  /** The read loop has ended: no read is pending, so the slot can serve another connection. */
  #readEnded(): void {
    if (this.#slot !== null) readBuffers.give(this.#slot);
    this.#slot = this.#buffer = null;
    this.readLoopEnded();
  }
}

/**
 * Where the reader's events go during one read: reads never nest (handlers run after the
 * parser returns), so one shared callback serves every connection instead of a closure each.
 */
const NO_EVENTS: WebSocketEvent[] = Object.freeze([]) as unknown as WebSocketEvent[];
let collecting: WebSocketEvent[] = NO_EVENTS;
const collect = (event: WebSocketEvent): void => void collecting.push(event);
