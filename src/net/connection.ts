/**
 * One upgraded WebSocket connection: a read loop that feeds the sans-I/O reader, the client's
 * queue drained by its push loop (the only writer), the close handshake, and an
 * `AbortController` that lives as long as the connection.
 *
 * @module
 */
import { CloseCode } from "../protocol/close.ts";
import { ProtocolError } from "../protocol/errors.ts";
import { encodeCloseFrame, encodeFrame, encodeTextFrame } from "../protocol/frame_encoder.ts";
import { MessageReader, type WebSocketEvent } from "../protocol/message.ts";
import { Opcode } from "../protocol/opcode.ts";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import { ClientQueue } from "../push/client_queue.ts";
import type { WriteScheduler } from "../push/write_scheduler.ts";
import type { Backlog } from "../push/backlog.ts";
import { runPushLoop, type WriteTracker } from "../push/push_loop.ts";

/** What a route does with its connections. Every method is optional but `onMessage`. */
export interface ConnectionHandler {
  /** Called once the 101 response is queued; start producers here (with `c.signal`). */
  onOpen?(c: Connection): void;
  /** A whole text or binary message from the client. */
  onMessage(
    c: Connection,
    message: { type: "text"; data: string } | { type: "binary"; data: Uint8Array },
  ): void;
  /**
   * Called once when the connection starts closing (any reason), right after its signal aborts:
   * stop routing messages to it. A plain method, not an abort listener, because a listener per
   * connection costs memory on every idle client.
   */
  onClosing?(c: Connection): void;
  /** Called once, after the socket is closed and both loops have ended. */
  onClose?(c: Connection): void;
}

/**
 * Limits and collaborators of a {@linkcode Connection}. One object serves every connection of a
 * route: what differs per connection (id, request, peer) is passed on its own, because an
 * options object per client is memory on every idle client.
 */
export interface ConnectionOptions {
  /** Largest message accepted (1009 beyond). */
  maxMessageBytes: number;
  /** Bytes that may wait in the outgoing queue (slow consumer beyond). */
  maxQueueBytes: number;
  /** How long to wait for the peer's close frame after sending ours. */
  closeTimeout: number;
  /** How long a write may make no progress. */
  sendTimeout: number;
  /** Defers writer wake-ups so publishes coalesce; null writes at once. */
  scheduler: WriteScheduler | null;
  /** The server's outgoing backlog, for publisher back-pressure; null counts nothing. */
  backlog: Backlog | null;
  /** Ping the client after this much silence; 0 disables pings. */
  pingInterval: number;
  /** Drop a pinged client that stays silent this long. */
  pongTimeout: number;
  /** The route's behaviour. */
  handler: ConnectionHandler;
  /** Where events are logged. */
  logger: Logger;
  /** Where events are counted. */
  metrics: Metrics;
  /** Called first once the connection has ended (the server drops it from its registry). */
  onFinished?: (c: Connection) => void;
}

/**
 * The parts of the upgrade request a connection keeps: path, origin and the raw query string.
 * Headers are not kept, and the query is parsed when asked for (handlers read it once, at open),
 * so idle clients do not each hold a `URLSearchParams`.
 */
export class ConnectionRequest {
  /** The path of the request target, e.g. "/". */
  readonly path: string;
  /** The query string of the request target, with its "?" ("" when none). */
  readonly search: string;
  /** The Origin header, when the client is a browser. */
  readonly origin?: string;

  /** Keeps `path`, `search` and `origin`. */
  constructor(path: string, search: string, origin?: string) {
    this.path = path;
    this.search = search;
    if (origin !== undefined) this.origin = origin;
  }

  /** The query, parsed anew at each call. */
  get query(): URLSearchParams {
    return new URLSearchParams(this.search);
  }
}

/** The state of the close handshake (RFC 6455 §7). */
export type ConnectionState = "open" | "closing" | "closed";

/**
 * The read buffer of an idle connection: small, since memory per connection adds up, and large
 * enough for what clients of a push server send (pongs, commands). Larger messages grow it.
 */
export const READ_BUFFER_SMALL = 256;
const READ_BUFFER_LARGE = 64 * 1024;

/**
 * A server-side WebSocket connection over a `Deno.Conn`, after a successful handshake.
 *
 * It is also the {@linkcode WriteTracker} of its push loop: the loop reports progress and its
 * end to the connection directly, with no promise chain or closure per client (an idle client's
 * memory is mostly such bookkeeping).
 */
export class Connection implements WriteTracker {
  /** A process-unique id. */
  readonly id: number;
  /** The upgrade request's path, query and origin. */
  readonly request: ConnectionRequest;
  /** The peer's address. */
  readonly remote: string;
  /**
   * Aborted when the connection starts closing, for any reason (quit, peer close, error, server
   * shutdown). Producers that push to this client (the demo feed, subscriptions) stop on it.
   */
  readonly controller: AbortController = new AbortController();
  /**
   * `performance.now()` when the pending write started or last progressed; 0 when no write is
   * pending. Kept by the push loop, read by the stalled-write deadline.
   */
  writeSince = 0;

  /** The close frame this side sent: code and reason, once sent. */
  closeSent?: { code: number; reason: string };
  /** The close frame the peer sent, once received. */
  closeReceived?: { code: number; reason: string };

  readonly #conn: Deno.Conn;
  readonly #options: ConnectionOptions;
  readonly #queue: ClientQueue;
  /** Created at the client's first bytes: an idle client holds no parser state. */
  #reader: MessageReader | null = null;
  #state: ConnectionState = "open";
  #failed = false;
  #writerDone = false;
  #closeDeadline = Infinity;
  /** The read and push loops still running; the connection has finished at 0. */
  #loops = 2;
  /** Created when someone asks for {@linkcode Connection.finished}. */
  #finished: { promise: Promise<void>; resolve: () => void } | null = null;
  #endReason = "";
  /** When the peer last sent bytes: any traffic proves it alive, not only pongs. */
  #lastHeard = performance.now();
  /** When the outstanding ping was sent, or 0 when none is. */
  #pingSentAt = 0;

  /**
   * Takes over `conn` once the handshake is accepted; nothing is read or written before
   * {@linkcode Connection.open}. `id` is process-unique (for logs), `remote` the peer's address.
   */
  constructor(
    conn: Deno.Conn,
    options: ConnectionOptions,
    id: number,
    request: ConnectionRequest,
    remote: string,
  ) {
    this.#conn = conn;
    this.#options = options;
    this.id = id;
    this.request = request;
    this.remote = remote;
    this.#queue = new ClientQueue(options.maxQueueBytes, options.scheduler, options.backlog);
  }

  /** Resolves when the socket is closed and the read and push loops have ended. */
  get finished(): Promise<void> {
    if (this.#loops === 0) return Promise.resolve();
    if (this.#finished === null) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => resolve = r);
      this.#finished = { promise, resolve };
    }
    return this.#finished.promise;
  }

  /** Called by the push loop after each batch is written in full. */
  written(bytes: number): void {
    this.#options.metrics.bytesPushed += bytes;
  }

  /** Called by the push loop when it ends: `error` is the write error, or null when drained. */
  writerEnded(error: unknown): void {
    if (error === null) this.#onWriterDone();
    else this.#destroy(`write failed: ${errorText(error)}`);
    this.#loopEnded();
  }

  #loopEnded(): void {
    if (--this.#loops > 0) return;
    try {
      this.#options.onFinished?.(this);
      this.#options.logger.info("connection.closed", {
        client: this.id,
        code_sent: this.closeSent?.code,
        code_received: this.closeReceived?.code,
        reason: this.#endReason,
      });
      this.#options.handler.onClose?.(this);
    } catch (err) {
      this.#options.logger.error("connection.on_close_failed", {
        client: this.id,
        error: errorText(err),
      });
    } finally {
      this.#finished?.resolve();
    }
  }

  /** The abort signal of {@linkcode Connection.controller}. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Where the close handshake stands. */
  get state(): ConnectionState {
    return this.#state;
  }

  /** Data bytes waiting in the outgoing queue. */
  get queuedBytes(): number {
    return this.#queue.bytes;
  }

  /**
   * Starts the connection; the server calls this once, after registering it. `response` (the
   * 101 answer to the handshake) is queued first, then the handler's `onOpen` queues its first
   * messages, and only then does the push loop start: the response and the first messages
   * (a subscription notice, say) leave in one write, which makes handshakes cheaper.
   * `leftover` holds bytes that arrived after the request head: the start of the first frame,
   * parsed before anything else is read.
   */
  open(response: Uint8Array, leftover: Uint8Array): void {
    this.#queue.pushControl(response);
    try {
      this.#options.handler.onOpen?.(this);
    } catch (err) {
      this.#options.logger.error("connection.on_open_failed", {
        client: this.id,
        error: errorText(err),
      });
      this.close(CloseCode.InternalError, "internal error");
    }
    // Neither loop rejects; each reports its end to #loopEnded.
    runPushLoop(this.#queue, this.#conn, this);
    this.#readLoop(leftover);
  }

  /** Queues a text message. Returns false when the client is closing or was dropped as slow. */
  sendText(text: string): boolean {
    return this.sendFrame(encodeTextFrame(text));
  }

  /** Queues a binary message. Returns false when the client is closing or was dropped as slow. */
  sendBinary(data: Uint8Array): boolean {
    return this.sendFrame(encodeFrame(Opcode.Binary, data));
  }

  /**
   * Queues an already encoded frame (a broadcast encodes once and queues the same bytes to every
   * subscriber). A client whose queue would exceed its limit is closed with 1008 "slow consumer"
   * and its waiting data dropped: it cannot keep up, and others must not wait for it.
   */
  sendFrame(frame: Uint8Array): boolean {
    if (this.#state !== "open") return false;
    if (this.#queue.push(frame)) {
      this.#options.metrics.messagesPushed++;
      return true;
    }
    this.#options.metrics.slowConsumerDisconnects++;
    this.#options.logger.warn("client.slow_consumer", {
      client: this.id,
      queued_bytes: this.#queue.bytes,
      max_queue_bytes: this.#queue.maxBytes,
    });
    this.close(CloseCode.PolicyViolation, "slow consumer", true);
    return false;
  }

  /**
   * Starts the closing handshake: queues a close frame after the waiting data (or instead of it
   * with `discard`), aborts {@linkcode Connection.signal}, and gives the peer
   * `closeTimeout` ms to answer before TCP is closed. Does nothing once closing.
   */
  close(code: number = CloseCode.Normal, reason = "", discard = false): void {
    if (this.#state !== "open") return;
    this.#state = "closing";
    this.closeSent = { code, reason };
    this.#options.metrics.closeCodesSent.inc(code);
    this.#queue.seal(encodeCloseFrame(code, reason), discard);
    this.#closeDeadline = performance.now() + this.#options.closeTimeout;
    this.#abort();
  }

  /**
   * Checks the deadlines (the peer's close reply, a stalled write, the pong) and sends heartbeat
   * pings. The server calls this from one shared ticker for all connections, instead of one
   * timer per connection.
   */
  tick(now: number): void {
    if (this.#state === "closed") return;
    const o = this.#options;
    if (this.writeSince !== 0 && now - this.writeSince > STALL_MS) {
      this.#queue.leaveBacklog();
    }
    if (now > this.#closeDeadline) {
      this.#destroy("close timeout");
    } else if (this.writeSince !== 0 && now - this.writeSince > o.sendTimeout) {
      o.metrics.sendTimeouts++;
      o.logger.warn("client.send_timeout", { client: this.id });
      this.#destroy("send timeout");
    } else if (this.#state === "open" && o.pingInterval > 0) {
      if (this.#pingSentAt === 0) {
        if (now - this.#lastHeard >= o.pingInterval) {
          this.#pingSentAt = now;
          this.#queue.pushControl(PING);
          o.metrics.pingsSent++;
        }
      } else if (now - this.#pingSentAt > o.pongTimeout) {
        o.metrics.pingTimeouts++;
        o.logger.warn("client.ping_timeout", { client: this.id });
        // The peer may be gone: no data waits for it, and the close deadline bounds the rest.
        this.close(CloseCode.PolicyViolation, "ping timeout", true);
      }
    }
  }

  /** Closes the socket at once (no close handshake): used when the server must stop now. */
  abort(reason: string): void {
    this.#destroy(reason);
  }

  /** Reads until the socket closes; never rejects, and reports its end to #loopEnded. */
  async #readLoop(leftover: Uint8Array): Promise<void> {
    try {
      if (leftover.length > 0 && !this.#feed(leftover)) return;
      let buffer = new Uint8Array(READ_BUFFER_SMALL);
      while (this.#state !== "closed") {
        let n: number | null;
        try {
          n = await this.#conn.read(buffer);
        } catch (err) {
          this.#destroy(`read failed: ${errorText(err)}`);
          return;
        }
        if (n === null) {
          this.#destroy(this.closeReceived ? "closed" : "peer closed TCP");
          return;
        }
        this.#lastHeard = performance.now();
        this.#pingSentAt = 0;
        if (this.#failed) continue; // after a protocol error, drain until the peer goes away
        if (!this.#feed(buffer.subarray(0, n))) return;
        // Grow the buffer only while large frames arrive; idle connections keep a small one.
        if (n === buffer.length && buffer.length < READ_BUFFER_LARGE) {
          buffer = new Uint8Array(buffer.length * 4);
        } else if (buffer.length > READ_BUFFER_SMALL && this.#reader?.bufferedBytes === 0) {
          buffer = new Uint8Array(READ_BUFFER_SMALL);
        }
      }
    } catch (err) {
      // Socket and protocol errors are handled above; this is a bug, but must not leak.
      this.#options.logger.error("connection.internal_error", {
        client: this.id,
        error: errorText(err),
      });
      this.#destroy("internal error");
    } finally {
      this.#loopEnded();
    }
  }

  /** Feeds bytes to the reader; returns false when the read loop must stop. */
  #feed(bytes: Uint8Array): boolean {
    try {
      this.#reader ??= new MessageReader(
        { role: "server", maxMessageBytes: this.#options.maxMessageBytes },
        (event) => this.#onEvent(event),
      );
      this.#reader.push(bytes);
    } catch (err) {
      if (!(err instanceof ProtocolError)) {
        this.#options.logger.error("connection.internal_error", {
          client: this.id,
          error: errorText(err),
        });
        this.#fail(CloseCode.InternalError, "internal error");
        return true;
      }
      this.#options.metrics.protocolErrors.inc(err.failure);
      this.#options.logger.warn("connection.protocol_error", {
        client: this.id,
        failure: err.failure,
        code: err.closeCode,
      });
      this.#fail(err.closeCode, err.message);
    }
    return this.#state !== "closed";
  }

  /** _Fail the WebSocket Connection_ (§7.1.7): a close frame with `code`, then no more data. */
  #fail(code: number, reason: string): void {
    this.#failed = true;
    // Replies to the valid messages before the bad frame are still sent, then the close: the
    // peer sees everything it earned (Autobahn's strict reading); the queue bound caps the delay.
    if (this.#state === "open") this.close(code, reason, false);
  }

  #onEvent(event: WebSocketEvent): void {
    switch (event.type) {
      case "text":
      case "binary":
        this.#options.metrics.messagesReceived++;
        if (this.#state === "open") this.#options.handler.onMessage(this, event);
        return;
      case "ping":
        if (this.#state === "open") {
          this.#queue.pushControl(encodeFrame(Opcode.Pong, event.payload));
        }
        return;
      case "pong":
        return;
      case "close":
        this.closeReceived = { code: event.code, reason: event.reason };
        this.#options.metrics.closeCodesReceived.inc(event.code);
        if (this.#state === "open") {
          // Echo the peer's code (§5.5.1); 1005 means it sent none, so neither do we.
          this.close(event.code, event.code === CloseCode.NoStatus ? "" : event.reason);
        } else if (this.#writerDone) {
          this.#destroy("closed");
        }
        return;
    }
  }

  #onWriterDone(): void {
    this.#writerDone = true;
    if (this.#state === "closed") return;
    if (this.closeReceived) {
      // Both close frames are exchanged: the server closes TCP first (§7.1.1).
      this.#destroy("closed");
    } else if (this.#failed) {
      // Half-close so the peer reads our close frame and EOF instead of a reset, then drain
      // its bytes until it closes or the close deadline passes.
      this.#conn.closeWrite().catch(() => {});
    }
  }

  /** Aborts the signal and tells the handler, once, whatever starts the closing. */
  #abort(): void {
    if (this.controller.signal.aborted) return;
    this.controller.abort(CLOSING);
    try {
      this.#options.handler.onClosing?.(this);
    } catch (err) {
      this.#options.logger.error("connection.on_closing_failed", {
        client: this.id,
        error: errorText(err),
      });
    }
  }

  #destroy(reason: string): void {
    if (this.#state === "closed") return;
    this.#state = "closed";
    this.#endReason = reason;
    this.#abort();
    this.#queue.dispose();
    try {
      this.#conn.close();
    } catch {
      // Already closed by the runtime.
    }
  }
}

/**
 * The abort reason of every closing connection. One shared DOMException: making one per close
 * (what `abort()` without a reason does) captures a stack trace, 5% of the server's time while
 * thousands of clients disconnect.
 */
const CLOSING = new DOMException("The connection is closing.", "AbortError");

/** A write stuck this long means the peer stopped reading: its queue leaves the backlog. */
const STALL_MS = 100;

/** The heartbeat ping: empty, so one shared frame serves every connection. */
const PING = encodeFrame(Opcode.Ping, new Uint8Array(0));

function errorText(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}
