/**
 * One upgraded WebSocket connection, as endpoints see it (a {@linkcode Peer}): the data path
 * (sends, the slow-consumer rule, the drain callback of paced replays), the events of each read
 * handed to the route's handler, and the heartbeat. Reading is `ReadLoop`'s, the end of
 * the connection (close handshake, signal, finishing) {@linkcode ConnectionLifecycle}'s, and
 * every frame leaves through one `SocketWriter`.
 *
 * @module
 */
import { CloseCode } from "../protocol/close.ts";
import type { CloseState } from "../protocol/close_handshake.ts";
import { ProtocolError } from "../protocol/errors.ts";
import { encodeFrame, encodeTextFrame } from "../protocol/frame_encoder.ts";
import type { DeflateParams } from "../protocol/deflate.ts";
import type { MessageInflater, MessageReaderOptions, WebSocketEvent } from "../protocol/message.ts";
import { Opcode } from "../protocol/opcode.ts";
import type { ReadGate } from "./read_loop.ts";
import { ConnectionLifecycle, errorText } from "./lifecycle.ts";
import type { Peer, PeerMessage } from "./peer.ts";
import { DeflateError, Inflater } from "./deflate_codec.ts";
import { deflatedFrame } from "./outbox/deflate_frames.ts";
import { clockMs } from "../clock.ts";

/** The state of the close handshake (RFC 6455 §7). */
export type ConnectionState = CloseState;

/** `--deflate-min-bytes`' default, for servers made without it (tests). */
const DEFLATE_MIN_BYTES = 256;

/** What a compressed message read while closing inflates to (it is dropped anyway). */
const NOTHING = new Uint8Array(0);

/** `#lastHeard` of a connection whose peer sent bytes since the last tick. */
const HEARD = -1;

/** The heartbeat ping: empty, so one shared frame serves every connection. */
const PING = encodeFrame(Opcode.Ping, new Uint8Array(0));

/**
 * A server-side WebSocket connection over a `Deno.Conn`, after a successful handshake; nothing
 * is read or written before {@linkcode Connection.open}.
 */
export class Connection extends ConnectionLifecycle implements Peer, MessageInflater {
  /** The route's message rate limit: see `TokenBucket` (unused by other routes). */
  rateDebt = 0;
  /** When {@linkcode Connection.rateDebt} was last brought up to date ({@linkcode clockMs}). */
  rateAt = 0;
  /** What the route's `authorize` said of the client (see `Peer.identity`); null without it. */
  identity: unknown = null;
  /** When the handler's `onDeadline` is due ({@linkcode clockMs}); 0 while none is set. */
  deadline = 0;
  /**
   * The permessage-deflate parameters agreed at the handshake (`--deflate`), shared with the
   * other connections that agreed the same; null when not negotiated. Set before `open`.
   */
  deflate: DeflateParams | null = null;
  /**
   * Inflates this client's compressed messages: made at its first one, dropped after each when
   * the client promised `client_no_context_takeover` (then nothing is kept while idle).
   */
  #inflater: Inflater | null = null;
  /**
   * When the peer last sent bytes, as the ticker saw it: any traffic proves it alive, not only
   * pongs. {@linkcode HEARD} after a read, until the next tick stamps its own `now`: a read does
   * not read the clock (one op per read saved; the heartbeat is coarser than a tick anyway).
   */
  #lastHeard = clockMs();
  /** When the outstanding ping was sent, or 0 when none is. */
  #pingSentAt = 0;
  /** Who waits for the queue to drain (a paced history replay); null while nobody does. */
  #onDrained: (() => void) | null = null;

  /** The peer's address as `host:port` (made when asked: it is for logs). */
  get remote(): string {
    return formatAddr(this.conn.remoteAddr);
  }

  /** Bytes waiting in the outgoing queue (data and control frames). */
  get queuedBytes(): number {
    return this.writer.queuedBytes;
  }

  /** The most data bytes the queue holds (`--max-queue-bytes`). */
  get maxQueueBytes(): number {
    return this.writer.maxQueueBytes;
  }

  /**
   * Starts the connection; the server calls this once, after registering it. `response` (the
   * 101 answer to the handshake) is queued first, then the handler's `onOpen` queues its first
   * messages, and only then does the writer start: the response and the first messages
   * (a subscription notice, say) leave in one write, which makes handshakes cheaper.
   * `leftover` holds bytes that arrived after the request head: the start of the first frame,
   * parsed before anything else is read.
   */
  open(response: Uint8Array, leftover: Uint8Array): void {
    // Counted down by the server when the connection has finished.
    if (this.deflate !== null) this.options.metrics.deflate.connections++;
    this.writer.pushControl(response);
    try {
      this.options.handler.onOpen?.(this);
    } catch (err) {
      this.logError("connection.on_open_failed", err);
      this.close(CloseCode.InternalError, "internal error");
    } finally {
      // Neither loop rejects; each reports its end to loopEnded. Started in any case: a
      // registered connection without them could never end.
      this.writer.start();
      this.startReading(leftover);
    }
  }

  /** Queues a text message. Returns false when the client is closing or was dropped as slow. */
  sendText(text: string): boolean {
    return this.#send(encodeTextFrame(text), false);
  }

  /** Queues a binary message. Returns false when the client is closing or was dropped as slow. */
  sendBinary(data: Uint8Array): boolean {
    return this.#send(encodeFrame(Opcode.Binary, data), false);
  }

  /**
   * Queues an already encoded frame (a broadcast encodes once and queues the same bytes to every
   * subscriber). A client whose queue would exceed its limit is closed with 1008 "slow consumer"
   * and its waiting data dropped: it cannot keep up, and others must not wait for it.
   */
  sendFrame(frame: Uint8Array): boolean {
    return this.#send(frame, true);
  }

  /**
   * Queues a frame; with deflate, its compressed form (see `deflatedFrame`): remembered for the
   * other subscribers when `shared` (a broadcast), made for this client alone otherwise.
   */
  #send(frame: Uint8Array, shared: boolean): boolean {
    if (this.closing) return false;
    if (this.deflate !== null) {
      const o = this.options;
      const minBytes = o.limits.deflateMinBytes ?? DEFLATE_MIN_BYTES;
      frame = deflatedFrame(frame, this.deflate, minBytes, o.metrics, shared);
    }
    if (this.writer.push(frame)) {
      this.options.metrics.messagesPushed++;
      return true;
    }
    this.options.metrics.slowConsumerDisconnects++;
    this.options.logger.warn("client.slow_consumer", {
      client: this.id,
      queued_bytes: this.writer.queuedBytes,
      max_queue_bytes: this.writer.maxQueueBytes,
    });
    this.close(CloseCode.PolicyViolation, "slow consumer", true);
    return false;
  }

  /**
   * Calls `callback` once, after a write, when the queue holds a quarter of its limit or less
   * (see `Peer.onDrain`): a history replay sends its next chunk then.
   */
  onDrain(callback: () => void): void {
    this.#onDrained = callback;
  }

  /**
   * Checks the deadlines (the peer's close reply, a stalled write, the handler's own deadline,
   * the pong) and sends heartbeat pings. The server calls this from one shared ticker for all connections, instead of one
   * timer per connection, with `now` from {@linkcode clockMs}.
   */
  tick(now: number): void {
    if (this.ended) return;
    const o = this.options;
    const limits = o.limits;
    const stalled = this.writer.stalledFor(now);
    if (this.closeDeadlinePassed(now)) return;
    if (stalled > limits.sendTimeout) {
      o.metrics.sendTimeouts++;
      o.logger.warn("client.send_timeout", { client: this.id });
      this.destroy("send timeout");
    } else if (!this.closing) {
      if (this.deadline !== 0 && now >= this.deadline) this.#deadlineDue(now);
      if (!this.closing && limits.pingInterval > 0) this.#heartbeat(now);
    }
  }

  /** Sends the heartbeat ping, or closes a client that did not answer it in time. */
  #heartbeat(now: number): void {
    const o = this.options;
    if (this.#lastHeard === HEARD) this.#lastHeard = now;
    if (this.#pingSentAt === 0) {
      if (now - this.#lastHeard >= o.limits.pingInterval) {
        this.#pingSentAt = now;
        this.writer.pushControl(PING);
        o.metrics.pingsSent++;
      }
    } else if (now - this.#pingSentAt > o.limits.pongTimeout && !this.readPaused) {
      // (While reading is paused the pong may be unread in the socket: the queue is draining,
      // or the send timeout ends a writer that is stuck.)
      o.metrics.pingTimeouts++;
      o.logger.warn("client.ping_timeout", { client: this.id });
      // The peer may be gone: no data waits for it, and the close deadline bounds the rest.
      this.close(CloseCode.PolicyViolation, "ping timeout", true);
    }
  }

  /** The handler's deadline has come (a token's expiry, say): reset it, then tell the handler. */
  #deadlineDue(now: number): void {
    this.deadline = 0;
    try {
      this.options.handler.onDeadline?.(this, now);
    } catch (err) {
      this.logError("connection.on_deadline_failed", err);
      this.close(CloseCode.InternalError, "internal error");
    }
  }

  /** A batch was written: count it, resume a paused read loop, call the drain callback. */
  protected written(bytes: number): void {
    this.options.metrics.bytesPushed += bytes;
    if (this.readPaused && !this.#repliesBehind()) this.resumeReading();
    if (this.#onDrained !== null && this.writer.queuedBytes <= this.writer.maxQueueBytes / 4) {
      const callback = this.#onDrained;
      this.#onDrained = null;
      try {
        callback();
      } catch (err) {
        // A bug in the hub must not pass for a failed write of this connection.
        this.logError("connection.on_drain_failed", err);
      }
    }
  }

  /** Reads, pauses while more than half the queue's limit waits, or stops once closed. */
  protected readGate(): ReadGate {
    if (this.ended) return "stop";
    // The replies to what was read wait unwritten: nothing more is parsed or answered (the
    // peer's TCP window fills) until the writer drains. A client that sends faster than it
    // reads is slowed to its own pace instead of growing the server; the other half of the
    // queue is room for publications meanwhile, and those still make it a slow consumer.
    return this.#repliesBehind() ? "pause" : "read";
  }

  /** Any bytes prove the peer alive, not only pongs. */
  protected heard(): void {
    this.#lastHeard = HEARD;
    this.#pingSentAt = 0;
  }

  /** After a protocol error the peer's bytes are drained unparsed. */
  protected inputFailed(): boolean {
    return this.failed;
  }

  /** With permessage-deflate, the connection inflates its client's messages itself. */
  protected messageInflater(): MessageInflater | null {
    return this.deflate === null ? null : this;
  }

  /**
   * Inflates one compressed message of this client (see `MessageInflater`), with
   * `--max-message-bytes` applied to the inflated size while inflating. Throws `DeflateError`.
   */
  inflateMessage(compressed: Uint8Array): Uint8Array {
    // Closing, the message is dropped unread (see onEvent): not inflating it keeps a client
    // that was told to go (rate limit, slow consumer) from making us inflate until the close
    // deadline. Its window no longer matters: no later message is read either.
    if (this.closing) return NOTHING;
    const params = this.deflate!;
    const o = this.options;
    const inflater = this.#inflater ??= new Inflater(params, o.limits.maxMessageBytes);
    inflater.push(compressed);
    const bytes = inflater.finish();
    if (params.clientNoContextTakeover) this.#inflater = null;
    const m = o.metrics.deflate;
    m.inMessages++;
    m.inCompressedBytes += compressed.length;
    m.inInflatedBytes += bytes.length;
    return bytes;
  }

  /** The route's reader limits. */
  protected readerOptions(): MessageReaderOptions {
    return this.options.reader;
  }

  /** EOF from the peer. */
  protected peerClosed(): void {
    this.destroy(this.closeReceived ? "closed" : "peer closed TCP");
  }

  /** A read failed, or handling its bytes threw (a bug of ours, which must not leak). */
  protected readFailed(err: unknown, internal: boolean): void {
    if (!internal) return this.destroy(`read failed: ${errorText(err)}`);
    this.logError("connection.internal_error", err);
    this.destroy("internal error");
  }

  /** Counts a pause of the read loop. */
  protected readPausedNow(): void {
    this.options.metrics.readsPaused++;
  }

  /** The read loop has ended. */
  protected readLoopEnded(): void {
    this.loopEnded();
  }

  /** The parser failed: the peer's protocol error, or (1011) a bug of ours. */
  protected parseFailed(error: unknown): void {
    if (error instanceof ProtocolError || error instanceof DeflateError) {
      // A failed message fails the connection: the inflate window is of no use any more.
      this.#inflater = null;
      if (error instanceof DeflateError) this.options.metrics.deflate.failures.inc(error.failure);
      this.options.metrics.protocolErrors.inc(error.failure);
      this.options.logger.warn("connection.protocol_error", {
        client: this.id,
        failure: error.failure,
        code: error.closeCode,
      });
      this.fail(error.closeCode, error.message);
    } else {
      this.logError("connection.internal_error", error);
      this.fail(CloseCode.InternalError, "internal error");
    }
  }

  /** Handles one event of a read (after the parser returned). */
  protected onEvent(event: WebSocketEvent): void {
    switch (event.type) {
      case "text":
      case "binary":
        this.options.metrics.messagesReceived++;
        if (!this.closing) this.#onMessage(event);
        return;
      case "ping":
        // One pong waits at most: a newer ping's replaces it (§5.5.3 allows answering only
        // the most recent), so a ping flood cannot grow the queue.
        if (!this.closing && this.writer.pushPong(encodeFrame(Opcode.Pong, event.payload))) {
          this.options.metrics.pongsCoalesced++;
        }
        return;
      case "pong":
        return;
      case "close":
        return this.peerClose(event.code, event.reason);
    }
  }

  /** Whether more than half of the queue's limit waits: reading pauses until it drains. */
  #repliesBehind(): boolean {
    return this.writer.queuedBytes > this.writer.maxQueueBytes / 2;
  }

  /** Hands a message to the handler; a bug there closes with 1011, the parser goes on. */
  #onMessage(message: PeerMessage): void {
    try {
      this.options.handler.onMessage(this, message);
    } catch (err) {
      this.logError("connection.on_message_failed", err);
      this.close(CloseCode.InternalError, "internal error");
    }
  }
}

/** Formats a peer address as `host:port` for logs. */
export function formatAddr(addr: Deno.Addr): string {
  return "hostname" in addr ? `${addr.hostname}:${addr.port}` : String(addr.transport);
}
