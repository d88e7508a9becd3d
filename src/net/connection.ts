/**
 * One upgraded WebSocket connection: a read loop that feeds the sans-I/O reader, the client's
 * queue drained by its push loop (the only writer), the close handshake, and an
 * `AbortController` that lives as long as the connection.
 *
 * @module
 */
import { CloseCode } from "../protocol/close.ts";
import { ProtocolError } from "../protocol/errors.ts";
import {
  type CloseAction,
  type CloseFrame,
  CloseHandshake,
  type CloseState,
} from "../protocol/close_handshake.ts";
import { encodeFrame, encodeTextFrame } from "../protocol/frame_encoder.ts";
import type { MessageReaderOptions, WebSocketEvent } from "../protocol/message.ts";
import { Opcode } from "../protocol/opcode.ts";
import { SocketWriter, type WriterOwner } from "./socket_writer.ts";
import type { ConnectionOptions } from "./limits.ts";
import { type ReadGate, ReadLoop } from "./read_loop.ts";
import { clockMs } from "../clock.ts";
import type { Peer, PeerMessage, PeerRequest } from "./peer.ts";

/** The state of the close handshake (RFC 6455 §7). */
export type ConnectionState = CloseState;

/**
 * A server-side WebSocket connection over a `Deno.Conn`, after a successful handshake.
 * Its frames all go through one {@linkcode SocketWriter}, which reports back through
 * {@linkcode Connection.writerReport}.
 */
export class Connection extends ReadLoop implements Peer, WriterOwner {
  /** A process-unique id. */
  readonly id: number;
  /** The upgrade request's path, query and origin. */
  readonly request: PeerRequest;
  /** The route's message rate limit: see {@linkcode TokenBucket} (unused by other routes). */
  rateDebt = 0;
  /** When {@linkcode Connection.rateDebt} was last brought up to date ({@linkcode clockMs}). */
  rateAt = 0;

  readonly #options: ConnectionOptions;
  readonly #writer: SocketWriter;
  /**
   * The closing handshake (RFC 6455 §7), made when the closing begins: until then the
   * connection is open, and an idle client holds no handshake state.
   */
  #close: CloseHandshake | null = null;
  /** When the peer's close reply is due (ms, see {@linkcode clockMs}); 0 while none is awaited. */
  #closeDeadline = 0;
  #controller: AbortController | null = null;
  /** Whether the closing began (the controller, if any, is aborted). */
  #aborted = false;
  /** The read and push loops still running; the connection has finished at 0. */
  #loops = 2;
  /** Created when someone asks for {@linkcode Connection.finished}. */
  #finished: { promise: Promise<void>; resolve: () => void } | null = null;
  #endReason = "";
  /** When the peer last sent bytes: any traffic proves it alive, not only pongs. */
  #lastHeard = clockMs();
  /** When the outstanding ping was sent, or 0 when none is. */
  #pingSentAt = 0;
  /** Who waits for the queue to drain (a paced history replay); null while nobody does. */
  #onDrained: (() => void) | null = null;

  /**
   * Takes over `conn` once the handshake is accepted; nothing is read or written before
   * {@linkcode Connection.open}. `id` is process-unique (for logs).
   */
  constructor(
    conn: Deno.Conn,
    options: ConnectionOptions,
    id: number,
    request: PeerRequest,
  ) {
    super(conn);
    this.#options = options;
    this.id = id;
    this.request = request;
    this.#writer = new SocketWriter(conn, options, this);
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

  /**
   * The writer's one callback (see {@linkcode WriterOwner}): a batch was written, or the writer
   * ended. Not for endpoints: they see the connection as a {@linkcode Peer}.
   */
  writerReport(bytes: number, ended: boolean, error: unknown): void {
    if (ended) this.#writerEnded(error);
    else this.#written(bytes);
  }

  #written(bytes: number): void {
    this.#options.metrics.bytesPushed += bytes;
    if (this.readPaused && !this.#repliesBehind()) this.resumeReading();
    if (this.#onDrained !== null && this.#writer.queuedBytes <= this.#writer.maxQueueBytes / 4) {
      const callback = this.#onDrained;
      this.#onDrained = null;
      try {
        callback();
      } catch (err) {
        // A bug in the hub must not pass for a failed write of this connection.
        this.#options.logger.error("connection.on_drain_failed", {
          client: this.id,
          error: errorText(err),
        });
      }
    }
  }

  /**
   * Calls `callback` once, after a write, when the queue holds a quarter of its limit or less
   * (see `Subscriber.onDrain`): a history replay sends its next chunk then.
   */
  onDrain(callback: () => void): void {
    this.#onDrained = callback;
  }

  #writerEnded(error: unknown): void {
    // Drained means the close frame is out (or the queue was disposed, then this does nothing).
    if (error === null) this.#act(this.#close?.frameWritten() ?? "none", "closed");
    else this.#destroy(`write failed: ${errorText(error)}`);
    this.#loopEnded();
  }

  #loopEnded(): void {
    if (--this.#loops > 0) return;
    try {
      this.#options.onFinished?.(this);
      if (this.#options.logger.enabled("info")) {
        this.#options.logger.info("connection.closed", {
          client: this.id,
          code_sent: this.closeSent?.code,
          code_received: this.closeReceived?.code,
          reason: this.#endReason,
        });
      }
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

  /**
   * Aborted when the connection starts closing, for any reason (quit, peer close, error, server
   * shutdown). Producers that push to this client (the demo feed, say) run with it and stop on
   * it. Made on first use, already aborted when asked for after the closing began: a client fed
   * only by channels never needs one, and 10,000 idle clients would each keep theirs.
   */
  get controller(): AbortController {
    if (this.#controller === null) {
      this.#controller = new AbortController();
      if (this.#aborted) this.#controller.abort(CLOSING);
    }
    return this.#controller;
  }

  /** The abort signal of {@linkcode Connection.controller}. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** The peer's address as `host:port` (made when asked: it is for logs). */
  get remote(): string {
    return formatAddr(this.conn.remoteAddr);
  }

  /** Where the close handshake stands. */
  get state(): ConnectionState {
    return this.#close === null ? "open" : this.#close.state;
  }

  /** The close frame this side sent (code and reason), once the closing began. */
  get closeSent(): CloseFrame | undefined {
    return this.#close?.sent ?? undefined;
  }

  /** The close frame the peer sent, once received. */
  get closeReceived(): CloseFrame | undefined {
    return this.#close?.receivedFrame ?? undefined;
  }

  /** Bytes waiting in the outgoing queue (data and control frames). */
  get queuedBytes(): number {
    return this.#writer.queuedBytes;
  }

  /** The most data bytes the queue holds (`--max-queue-bytes`). */
  get maxQueueBytes(): number {
    return this.#writer.maxQueueBytes;
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
    this.#writer.pushControl(response);
    try {
      this.#options.handler.onOpen?.(this);
    } catch (err) {
      this.#options.logger.error("connection.on_open_failed", {
        client: this.id,
        error: errorText(err),
      });
      this.close(CloseCode.InternalError, "internal error");
    } finally {
      // Neither loop rejects; each reports its end to #loopEnded. Started in any case: a
      // registered connection without them could never end.
      this.#writer.start();
      this.startReading(leftover);
    }
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
    if (this.#close !== null) return false; // closing or closed
    if (this.#writer.push(frame)) {
      this.#options.metrics.messagesPushed++;
      return true;
    }
    this.#options.metrics.slowConsumerDisconnects++;
    this.#options.logger.warn("client.slow_consumer", {
      client: this.id,
      queued_bytes: this.#writer.queuedBytes,
      max_queue_bytes: this.#writer.maxQueueBytes,
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
    this.#act(this.#handshake().close(code, reason, discard), "closed");
  }

  /** The handshake, made at the first close event. */
  #handshake(): CloseHandshake {
    return this.#close ??= new CloseHandshake();
  }

  /** Does what the handshake asks for; `reason` is the end reason when TCP is closed. */
  #act(action: CloseAction, reason: string): void {
    switch (action) {
      case "send": {
        const h = this.#close!;
        this.#options.metrics.closeCodesSent.inc(h.sent!.code);
        this.#writer.seal(h.frame(), h.discard);
        this.#closeDeadline = clockMs() + this.#options.limits.closeTimeout;
        this.#abort();
        return;
      }
      case "close-tcp":
        return this.#destroy(reason);
      case "half-close":
        // The peer reads our close frame and EOF instead of a reset; its bytes are drained
        // until it closes or the close deadline passes.
        this.conn.closeWrite().catch(() => {});
        return;
    }
  }

  /**
   * Checks the deadlines (the peer's close reply, a stalled write, the pong) and sends heartbeat
   * pings. The server calls this from one shared ticker for all connections, instead of one
   * timer per connection, with `now` from {@linkcode clockMs}.
   */
  tick(now: number): void {
    if (this.#endReason !== "") return; // closed
    const o = this.#options;
    const limits = o.limits;
    const stalled = this.#writer.stalledFor(now);
    if (this.#closeDeadline !== 0 && now > this.#closeDeadline) {
      this.#act(this.#close!.timedOut(), "close timeout");
    } else if (stalled > limits.sendTimeout) {
      o.metrics.sendTimeouts++;
      o.logger.warn("client.send_timeout", { client: this.id });
      this.#destroy("send timeout");
    } else if (this.#close === null && limits.pingInterval > 0) {
      if (this.#pingSentAt === 0) {
        if (now - this.#lastHeard >= limits.pingInterval) {
          this.#pingSentAt = now;
          this.#writer.pushControl(PING);
          o.metrics.pingsSent++;
        }
      } else if (now - this.#pingSentAt > limits.pongTimeout && !this.readPaused) {
        // (While reading is paused the pong may be unread in the socket: the queue is draining,
        // or the send timeout ends a writer that is stuck.)
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

  /** Reads, pauses while more than half the queue's limit waits, or stops once closed. */
  protected readGate(): ReadGate {
    if (this.#endReason !== "") return "stop"; // closed
    // The replies to what was read wait unwritten: nothing more is parsed or answered (the
    // peer's TCP window fills) until the writer drains. A client that sends faster than it
    // reads is slowed to its own pace instead of growing the server; the other half of the
    // queue is room for publications meanwhile, and those still make it a slow consumer.
    return this.#repliesBehind() ? "pause" : "read";
  }

  /** Any bytes prove the peer alive, not only pongs. */
  protected heard(): void {
    this.#lastHeard = clockMs();
    this.#pingSentAt = 0;
  }

  /** After a protocol error the peer's bytes are drained unparsed. */
  protected inputFailed(): boolean {
    return this.#close?.failed === true;
  }

  /** The route's reader limits. */
  protected readerOptions(): MessageReaderOptions {
    return this.#options.reader;
  }

  /** EOF from the peer. */
  protected peerClosed(): void {
    this.#destroy(this.closeReceived ? "closed" : "peer closed TCP");
  }

  /** A read failed, or handling its bytes threw. */
  protected readFailed(err: unknown, internal: boolean): void {
    if (!internal) return this.#destroy(`read failed: ${errorText(err)}`);
    this.#options.logger.error("connection.internal_error", {
      client: this.id,
      error: errorText(err),
    });
    this.#destroy("internal error");
  }

  /** Counts a pause of the read loop. */
  protected readPausedNow(): void {
    this.#options.metrics.readsPaused++;
  }

  /** The read loop has ended. */
  protected readLoopEnded(): void {
    this.#loopEnded();
  }

  /** Whether more than half of the queue's limit waits: reading pauses until it drains. */
  #repliesBehind(): boolean {
    return this.#writer.queuedBytes > this.#writer.maxQueueBytes / 2;
  }

  /** The parser failed: the peer's protocol error, or (1011) a bug of ours. */
  protected parseFailed(error: unknown): void {
    if (error instanceof ProtocolError) {
      this.#options.metrics.protocolErrors.inc(error.failure);
      this.#options.logger.warn("connection.protocol_error", {
        client: this.id,
        failure: error.failure,
        code: error.closeCode,
      });
      this.#fail(error.closeCode, error.message);
    } else {
      this.#options.logger.error("connection.internal_error", {
        client: this.id,
        error: errorText(error),
      });
      this.#fail(CloseCode.InternalError, "internal error");
    }
  }

  /** _Fail the WebSocket Connection_ (§7.1.7): a close frame with `code`, then no more input. */
  #fail(code: number, reason: string): void {
    // Replies to the valid messages before the bad frame are still sent, then the close: the
    // peer sees everything it earned (Autobahn's strict reading); the queue bound caps the delay.
    this.#act(this.#handshake().fail(code, reason), "closed");
  }

  /** Handles one event of a read. */
  protected onEvent(event: WebSocketEvent): void {
    switch (event.type) {
      case "text":
      case "binary":
        this.#options.metrics.messagesReceived++;
        if (this.#close === null) this.#onMessage(event);
        return;
      case "ping":
        // One pong waits at most: a newer ping's replaces it (§5.5.3 allows answering only
        // the most recent), so a ping flood cannot grow the queue.
        if (
          this.#close === null && this.#writer.pushPong(encodeFrame(Opcode.Pong, event.payload))
        ) {
          this.#options.metrics.pongsCoalesced++;
        }
        return;
      case "pong":
        return;
      case "close":
        this.#options.metrics.closeCodesReceived.inc(event.code);
        // Echoed while open; the answer to ours once it is written: the handshake decides.
        this.#act(this.#handshake().received(event.code, event.reason), "closed");
        return;
    }
  }

  /** Hands a message to the handler; a bug there closes with 1011, the parser goes on. */
  #onMessage(message: PeerMessage): void {
    try {
      this.#options.handler.onMessage(this, message);
    } catch (err) {
      this.#options.logger.error("connection.on_message_failed", {
        client: this.id,
        error: errorText(err),
      });
      this.close(CloseCode.InternalError, "internal error");
    }
  }

  /** Aborts the signal and tells the handler, once, whatever starts the closing. */
  #abort(): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#controller?.abort(CLOSING);
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
    if (this.#endReason !== "") return; // once
    this.#endReason = reason || "closed";
    this.#handshake().transportClosed();
    this.#abort();
    try {
      this.conn.close();
    } catch {
      // Already closed by the runtime.
    }
    // After the socket is closed: a parked push loop resumes here only to end.
    this.#writer.dispose();
    // A paused read loop has no read pending that would end it.
    this.endPausedReading();
  }
}

/**
 * The abort reason of every closing connection. One shared DOMException: making one per close
 * (what `abort()` without a reason does) captures a stack trace, 5% of the server's time while
 * thousands of clients disconnect.
 */
const CLOSING = new DOMException("The connection is closing.", "AbortError");

/** The heartbeat ping: empty, so one shared frame serves every connection. */
const PING = encodeFrame(Opcode.Ping, new Uint8Array(0));

function errorText(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

/** Formats a peer address as `host:port` for logs. */
export function formatAddr(addr: Deno.Addr): string {
  return "hostname" in addr ? `${addr.hostname}:${addr.port}` : String(addr.transport);
}
