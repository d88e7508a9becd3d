/**
 * One TCP connection to Redis, the I/O under {@linkcode RedisClient} (client.ts): a read loop
 * feeding the RESP parser, a write loop that coalesces what was issued in the same tick, and the
 * FIFO of commands awaiting replies. It ends once, for one reason; reconnecting is the client's.
 *
 * @module
 */
import { concatBytes } from "../bytes.ts";
import { encodeCommand, RespError, RespParser, type RespValue } from "./resp.ts";

/**
 * Redis cannot be reached: the client is (re)connecting or closed. Commands issued meanwhile fail
 * with it at once; commands in flight when the connection dropped fail with it too — those may
 * or may not have been executed by Redis (the reply was lost, not necessarily the command).
 */
export class RedisUnavailableError extends Error {
  /** Creates the error; `cause` is the socket or protocol error behind it, if any. */
  constructor(message = "Redis is unavailable.", options?: ErrorOptions) {
    super(message, options);
    this.name = "RedisUnavailableError";
  }
}

/** One live connection, as handed to {@linkcode RedisClientHooks.onConnect}. */
export interface RedisLink {
  /** False once the connection has ended; `send` then rejects with RedisUnavailableError. */
  readonly open: boolean;
  /**
   * Sends a command on this connection whether or not the client's status is up yet (the
   * command path for connection setup, such as restoring subscriptions).
   */
  send(args: readonly (string | number | Uint8Array)[]): Promise<RespValue>;
}

const READ_BUFFER_BYTES = 16 * 1024;
/** Answered entries kept at the front of the reply FIFO before it is compacted. */
const COMPACT_AFTER = 1024;
/** The message of `err`, for log lines and errors. */
export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A command waiting for its reply. */
interface Pending {
  resolve: (value: RespValue) => void;
  reject: (err: Error) => void;
  /** When it was issued, from `performance.now()`. */
  sentAt: number;
}

/**
 * One TCP connection: a read loop feeding the parser, a write loop that coalesces, and the FIFO
 * of commands awaiting replies. Ends once, for one reason; nothing is retried here.
 */
export class Link implements RedisLink {
  /** When bytes last arrived (or the link opened), from `performance.now()`. */
  lastReceived = performance.now();
  /** When a command was last issued. */
  lastSent = performance.now();
  /** Resolves when both loops have ended (after {@linkcode Link.destroy} or the peer's close). */
  readonly finished: Promise<void>;

  readonly #conn: Deno.Conn;
  readonly #parser: RespParser;
  readonly #onPush?: (value: RespValue) => boolean;
  readonly #onEnd: (reason: unknown) => void;
  /** Awaiting replies, oldest first from `#head` (an index, so 1000 replies cost no shifting). */
  #pending: Pending[] = [];
  #head = 0;
  #out: Uint8Array[] = [];
  #writer: Promise<void> | null = null;
  #ended = false;

  constructor(
    conn: Deno.Conn,
    onPush: ((value: RespValue) => boolean) | undefined,
    onEnd: (reason: unknown) => void,
  ) {
    this.#conn = conn;
    this.#onPush = onPush;
    this.#onEnd = onEnd;
    this.#parser = new RespParser((value) => this.#onValue(value));
    this.finished = this.#readLoop().then(async () => {
      while (this.#writer !== null) await this.#writer;
    });
  }

  get open(): boolean {
    return !this.#ended;
  }

  /** How many commands await a reply. */
  get waiting(): number {
    return this.#pending.length - this.#head;
  }

  /** When the oldest command awaiting a reply was issued (undefined when none waits). */
  get oldestSentAt(): number | undefined {
    return this.#pending[this.#head]?.sentAt;
  }

  send(args: readonly (string | number | Uint8Array)[]): Promise<RespValue> {
    if (this.#ended) return Promise.reject(new RedisUnavailableError("Redis connection lost."));
    let bytes: Uint8Array;
    try {
      bytes = encodeCommand(args);
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise((resolve, reject) => {
      const now = performance.now();
      this.#pending.push({ resolve, reject, sentAt: now });
      this.#out.push(bytes);
      this.lastSent = now;
      this.#writer ??= this.#writeLoop();
    });
  }

  /** Ends the link: closes the socket and fails every command awaiting a reply. */
  destroy(reason: unknown, error?: RedisUnavailableError): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#out = [];
    try {
      this.#conn.close();
    } catch {
      // Already closed.
    }
    const failure = error ??
      new RedisUnavailableError(`Redis connection lost: ${errorText(reason)}`, { cause: reason });
    const pending = this.#pending.slice(this.#head);
    this.#pending = [];
    this.#head = 0;
    for (const p of pending) p.reject(failure);
    this.#onEnd(reason);
  }

  async #readLoop(): Promise<void> {
    const buffer = new Uint8Array(READ_BUFFER_BYTES);
    try {
      while (!this.#ended) {
        const n = await this.#conn.read(buffer);
        if (n === null) return this.destroy(new Error("Redis closed the connection"));
        this.lastReceived = performance.now();
        this.#parser.push(buffer.subarray(0, n));
      }
    } catch (err) {
      this.destroy(err); // a socket error, a RespProtocolError, or the read cut by destroy()
    }
  }

  async #writeLoop(): Promise<void> {
    // Yield once: every command issued in the current tick joins this first write.
    await Promise.resolve();
    try {
      while (this.#out.length > 0 && !this.#ended) {
        const batch = this.#out.length === 1 ? this.#out[0] : concatBytes(this.#out);
        this.#out = [];
        // conn.write may write only part of the buffer: loop until all of it is out.
        for (let at = 0; at < batch.length;) {
          at += await this.#conn.write(at === 0 ? batch : batch.subarray(at));
        }
      }
    } catch (err) {
      this.destroy(err);
    } finally {
      this.#writer = null;
    }
  }

  #onValue(value: RespValue): void {
    if (this.#onPush?.(value)) return;
    if (this.#head === this.#pending.length) {
      // Throwing from here fails the parser, and with it the connection: we lost track.
      throw new Error("Redis sent a reply that matches no command.");
    }
    const p = this.#pending[this.#head++];
    if (this.#head === this.#pending.length) {
      this.#pending = [];
      this.#head = 0;
    } else if (this.#head >= COMPACT_AFTER && this.#head * 2 >= this.#pending.length) {
      // Under steady load the FIFO may never drain: drop the answered half now and then.
      this.#pending = this.#pending.slice(this.#head);
      this.#head = 0;
    }
    if (value instanceof RespError) p.reject(value);
    else p.resolve(value);
  }
}
