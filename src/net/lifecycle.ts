/**
 * How a connection ends: the closing handshake's I/O (the rules are the sans-I/O
 * {@linkcode CloseHandshake} of `src/protocol`), the close deadline, the abort signal producers
 * stop on, closing the socket, and finishing once the read loop and the writer have both ended.
 * {@linkcode Connection} extends it (one object per client); the data path is there.
 *
 * @module
 */
import { CloseCode } from "../protocol/close.ts";
import {
  type CloseAction,
  type CloseFrame,
  CloseHandshake,
  type CloseState,
} from "../protocol/close_handshake.ts";
import { SocketWriter, type WriterOwner } from "./socket_writer.ts";
import { ReadLoop } from "./read_loop.ts";
import type { ConnectionOptions } from "./limits.ts";
import type { PeerRequest } from "./peer.ts";
import type { Connection } from "./connection.ts";
import { clockMs } from "../clock.ts";

/**
 * The abort reason of every closing connection. One shared DOMException: making one per close
 * (what `abort()` without a reason does) captures a stack trace, 5% of the server's time while
 * thousands of clients disconnect.
 */
const CLOSING = new DOMException("The connection is closing.", "AbortError");

/** The lifecycle half of a connection (see the module doc). */
export abstract class ConnectionLifecycle extends ReadLoop implements WriterOwner {
  /** A process-unique id. */
  readonly id: number;
  /** The upgrade request's path, query and origin. */
  readonly request: PeerRequest;
  /** What every connection of the route shares. */
  protected readonly options: ConnectionOptions;
  /** The socket's single writer: every frame goes through it. */
  protected readonly writer: SocketWriter;
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
  /** The read loop and the writer still running; the connection has finished at 0. */
  #loops = 2;
  /** Created when someone asks for {@linkcode ConnectionLifecycle.finished}. */
  #finished: { promise: Promise<void>; resolve: () => void } | null = null;
  /** Why the socket was closed; "" while it is not. */
  #endReason = "";

  /** Takes over `conn`; `id` is process-unique (for logs). */
  constructor(conn: Deno.Conn, options: ConnectionOptions, id: number, request: PeerRequest) {
    super(conn);
    this.options = options;
    this.id = id;
    this.request = request;
    this.writer = new SocketWriter(conn, options, this);
  }

  /** A batch was written in full (the data path's part of {@linkcode writerReport}). */
  protected abstract written(bytes: number): void;

  /** Resolves when the socket is closed and the read loop and the writer have ended. */
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

  /** The abort signal of {@linkcode ConnectionLifecycle.controller}. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Where the close handshake stands. */
  get state(): CloseState {
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

  /**
   * The writer's one callback (see {@linkcode WriterOwner}): a batch was written, or the writer
   * ended. Not for endpoints: they see the connection as a `Peer`.
   */
  writerReport(bytes: number, ended: boolean, error: unknown): void {
    if (!ended) return this.written(bytes);
    // Drained means the close frame is out (or the queue was disposed, then this does nothing).
    if (error === null) this.#act(this.#close?.frameWritten() ?? "none", "closed");
    else this.destroy(`write failed: ${errorText(error)}`);
    this.loopEnded();
  }

  /**
   * Starts the closing handshake: queues a close frame after the waiting data (or instead of it
   * with `discard`), aborts {@linkcode ConnectionLifecycle.signal}, and gives the peer
   * `closeTimeout` ms to answer before TCP is closed. Does nothing once closing.
   */
  close(code: number = CloseCode.Normal, reason = "", discard = false): void {
    this.#act(this.#handshake().close(code, reason, discard), "closed");
  }

  /** Closes the socket at once (no close handshake): used when the server must stop now. */
  abort(reason: string): void {
    this.destroy(reason);
  }

  /** Whether the closing began (or the socket is closed): no more data is sent or handled. */
  protected get closing(): boolean {
    return this.#close !== null;
  }

  /** Whether the socket is closed. */
  protected get ended(): boolean {
    return this.#endReason !== "";
  }

  /** Whether the connection failed (§7.1.7): the peer's bytes are drained unparsed. */
  protected get failed(): boolean {
    return this.#close?.failed === true;
  }

  /** Closes TCP once the peer's close reply is overdue; true when it did. */
  protected closeDeadlinePassed(now: number): boolean {
    if (this.#closeDeadline === 0 || now <= this.#closeDeadline) return false;
    this.#act(this.#close!.timedOut(), "close timeout");
    return true;
  }

  /**
   * _Fail the WebSocket Connection_ (§7.1.7): a close frame with `code`, then no more input.
   * Replies to the valid messages before the bad frame are still sent, then the close: the peer
   * sees everything it earned (Autobahn's strict reading); the queue bound caps the delay.
   */
  protected fail(code: number, reason: string): void {
    this.#act(this.#handshake().fail(code, reason), "closed");
  }

  /** The peer's close frame: echoed while open, the answer to ours once it is written. */
  protected peerClose(code: number, reason: string): void {
    this.options.metrics.closeCodesReceived.inc(code);
    this.#act(this.#handshake().received(code, reason), "closed");
  }

  /** Logs a bug in a handler or in our code (the connection goes on or closes as decided). */
  protected logError(event: string, err: unknown): void {
    this.options.logger.error(event, { client: this.id, error: errorText(err) });
  }

  /** Closes the socket, once: the loops end, the handler hears `onClosing` if it had not. */
  protected destroy(reason: string): void {
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
    this.writer.dispose();
    // A paused read loop has no read pending that would end it.
    this.endPausedReading();
  }

  /** One of the two loops ended; after both, the connection has finished. */
  protected loopEnded(): void {
    if (--this.#loops > 0) return;
    const o = this.options;
    const self = this as unknown as Connection;
    try {
      o.onFinished?.(self);
      if (o.logger.enabled("info")) {
        o.logger.info("connection.closed", {
          client: this.id,
          code_sent: this.closeSent?.code,
          code_received: this.closeReceived?.code,
          reason: this.#endReason,
        });
      }
      o.handler.onClose?.(self);
    } catch (err) {
      this.logError("connection.on_close_failed", err);
    } finally {
      this.#finished?.resolve();
    }
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
        this.options.metrics.closeCodesSent.inc(h.sent!.code);
        this.writer.seal(h.frame(), h.discard);
        this.#closeDeadline = clockMs() + this.options.limits.closeTimeout;
        this.#abort();
        return;
      }
      case "close-tcp":
        return this.destroy(reason);
      case "half-close":
        // The peer reads our close frame and EOF instead of a reset; its bytes are drained
        // until it closes or the close deadline passes.
        this.conn.closeWrite().catch(() => {});
        return;
    }
  }

  /** Aborts the signal and tells the handler, once, whatever starts the closing. */
  #abort(): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#controller?.abort(CLOSING);
    try {
      this.options.handler.onClosing?.(this as unknown as Connection);
    } catch (err) {
      this.logError("connection.on_closing_failed", err);
    }
  }
}

/** An error as one log field. */
export function errorText(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}
