/**
 * A Redis client for commands: one TCP connection, pipelined, that reconnects by itself.
 *
 * - Commands are written as soon as they are issued; commands issued in the same tick share one
 *   write. Replies are matched to commands first in, first out (Redis answers in order).
 * - While the connection is down, commands fail at once with {@linkcode RedisUnavailableError}
 *   instead of queueing: the caller answers "try again" (HTTP 503) rather than piling up work.
 * - On every (re)connect: AUTH when a password is set, SELECT when the database is not 0, then
 *   the status goes up. A silent connection is probed with PING, and one that stops answering is
 *   dropped, so a half-open socket cannot hang callers forever.
 *
 * The sans-I/O RESP code lives in `resp.ts`, one connection in `link.ts`; this file reconnects.
 * {@linkcode RedisSubscriber} (subscriber.ts) runs on the same shell with the `onPush` and
 * `onConnect` hooks.
 *
 * @module
 */
import type { Logger } from "../log.ts";
import type { RespValue } from "./resp.ts";
import { errorText, Link, type RedisLink, RedisUnavailableError } from "./link.ts";
import type { RedisOptions } from "./url.ts";

export { type RedisLink, RedisUnavailableError } from "./link.ts";

/** Collaborators and tuning of a {@linkcode RedisClient}; every field is optional. */
export interface RedisClientHooks {
  /** Where connection events are logged (nothing is logged without one). */
  logger?: Logger;
  /** Names this connection in log lines, e.g. "commands" (default "redis"). */
  name?: string;
  /**
   * Called with `true` once a connection is ready (after AUTH/SELECT/`onConnect`) and with
   * `false` when a ready connection is lost. Not called by {@linkcode RedisClient.close}.
   */
  onStatus?: (up: boolean) => void;
  /** How long a TCP connect may take, in ms (default 5000). */
  connectTimeout?: number;
  /**
   * How long replies may be awaited with nothing received, in ms, before the connection is
   * declared dead and dropped (default 10000; 0 disables).
   */
  replyTimeout?: number;
  /** Sends PING after this many ms of silence on a ready connection (default 5000; 0 disables). */
  pingInterval?: number;
  /**
   * Sees every value Redis sends before it is matched to a command; returning true claims it as
   * an out-of-band message (pub/sub deliveries). For protocol extensions; most callers need none.
   */
  onPush?: (value: RespValue) => boolean;
  /**
   * Runs on every new connection after AUTH/SELECT and before the status goes up; a rejection
   * drops the connection and retries. For protocol extensions; most callers need none.
   */
  onConnect?: (link: RedisLink) => Promise<void>;
}

/** The first reconnect delay, in ms; it doubles per failed attempt. */
export const RECONNECT_MIN_DELAY = 100;
/** The cap of the reconnect delay, in ms. */
export const RECONNECT_MAX_DELAY = 5000;

/**
 * The delay before reconnect attempt `attempt` (0-based): 100 ms doubling up to 5 s, capped
 * first and jittered after to between half and all of it, so many instances that lost the same
 * Redis do not come back in lockstep.
 */
export function reconnectDelay(attempt: number, random: () => number = Math.random): number {
  const capped = Math.min(RECONNECT_MAX_DELAY, RECONNECT_MIN_DELAY * 2 ** Math.min(attempt, 30));
  return capped / 2 + random() * (capped / 2);
}
/** A failing connection is reported at warn level at most this often (each attempt at debug). */
const CONNECT_FAILURE_WARN_INTERVAL = 60_000;

/**
 * A pipelined Redis client that keeps one connection open, reconnecting with backoff forever
 * until {@linkcode RedisClient.close}.
 *
 * Replies are RESP2 values: bulk strings are `Uint8Array` (decode them yourself), integers are
 * numbers, `nil` is `null`. An error reply rejects its command with {@linkcode RespError}; the
 * connection stays usable.
 *
 * @example
 * ```ts
 * const redis = new RedisClient(parseRedisUrl("redis://127.0.0.1:6379"), { logger, name: "commands" });
 * redis.start();
 * await redis.ready();
 * await redis.command(["SET", "greeting", "hello"]); // "OK"
 * await redis.command(["INCR", "hits"]); // 1
 * await redis.close();
 * ```
 */
export class RedisClient {
  readonly #options: RedisOptions;
  readonly #hooks: RedisClientHooks;
  readonly #name: string;
  #running: Promise<void> | null = null;
  #closed = false;
  #up = false;
  #link: Link | null = null;
  #connectAbort: AbortController | null = null;
  #wake: (() => void) | null = null;
  #readyWaiters: { resolve: () => void; reject: (err: Error) => void }[] = [];

  /** Creates a client; nothing happens until {@linkcode RedisClient.start}. */
  constructor(options: RedisOptions, hooks: RedisClientHooks = {}) {
    this.#options = options;
    this.#hooks = hooks;
    this.#name = hooks.name ?? "redis";
  }

  /** Whether a ready connection is open: commands issued now are sent. */
  get connected(): boolean {
    return this.#up;
  }

  /** Starts connecting in the background; the client then reconnects by itself. Idempotent. */
  start(): void {
    if (this.#running !== null || this.#closed) return;
    this.#running = this.#run().catch((err) => {
      // #run handles its own failures; reaching here is a bug, and it must not pass silently.
      this.#hooks.logger?.error("redis.loop_failed", { name: this.#name, error: errorText(err) });
    });
  }

  /**
   * Resolves when the client is connected — at once if it is. Rejects with
   * {@linkcode RedisUnavailableError} if the client is or gets closed first, or with the signal's
   * reason if `signal` aborts first.
   */
  ready(signal?: AbortSignal): Promise<void> {
    if (this.#up) return Promise.resolve();
    if (this.#closed) return Promise.reject(this.#closedError());
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise((resolve, reject) => {
      const waiter = {
        resolve: () => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        },
        reject: (err: Error) => {
          signal?.removeEventListener("abort", onAbort);
          reject(err);
        },
      };
      const onAbort = () => {
        this.#readyWaiters = this.#readyWaiters.filter((w) => w !== waiter);
        reject(signal!.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#readyWaiters.push(waiter);
    });
  }

  /**
   * Sends one command and resolves with its reply. Rejects with {@linkcode RespError} when Redis
   * answers with an error, and with {@linkcode RedisUnavailableError} at once while disconnected
   * or when the connection drops before the reply arrives (the command may have run).
   *
   * Replies resolve in the order the commands were issued.
   */
  command(args: readonly (string | number | Uint8Array)[]): Promise<RespValue> {
    const link = this.#link;
    if (!this.#up || link === null || !link.open) {
      return Promise.reject(
        this.#closed ? this.#closedError() : new RedisUnavailableError("Redis is not connected."),
      );
    }
    return link.send(args);
  }

  /**
   * Stops reconnecting, closes the connection and fails the commands still awaiting replies with
   * {@linkcode RedisUnavailableError}. Resolves once every loop and timer of the client ended.
   */
  async close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#connectAbort?.abort();
      this.#wake?.();
      this.#link?.destroy(new Error("client closed"), this.#closedError());
      for (const waiter of this.#readyWaiters.splice(0)) waiter.reject(this.#closedError());
    }
    await this.#running;
  }

  #closedError(): RedisUnavailableError {
    return new RedisUnavailableError("The Redis client is closed.");
  }

  get #address(): string {
    const { hostname, port } = this.#options;
    return hostname.includes(":") ? `[${hostname}]:${port}` : `${hostname}:${port}`;
  }

  /** Connect, set up, serve until the connection ends, back off, repeat — until closed. */
  async #run(): Promise<void> {
    let attempt = 0;
    let failures = 0;
    let lastWarn = -Infinity;
    while (!this.#closed) {
      let link: Link | null = null;
      let timer: ReturnType<typeof setInterval> | undefined;
      try {
        const conn = await this.#connect();
        link = new Link(conn, this.#hooks.onPush, (reason) => this.#onLinkEnd(reason));
        this.#link = link;
        timer = this.#startHealthTimer(link);
        await this.#setUp(link);
        if (!link.open || this.#closed) throw new Error("connection lost during setup");
        this.#up = true;
        attempt = 0;
        failures = 0;
        this.#hooks.logger?.info("redis.connected", {
          name: this.#name,
          address: this.#address,
          db: this.#options.db,
        });
        this.#notify(true);
        for (const waiter of this.#readyWaiters.splice(0)) waiter.resolve();
        await link.finished;
      } catch (err) {
        link?.destroy(err);
        if (!this.#closed) {
          failures++;
          const now = performance.now();
          const warn = failures === 1 || now - lastWarn >= CONNECT_FAILURE_WARN_INTERVAL;
          if (warn) lastWarn = now;
          this.#hooks.logger?.[warn ? "warn" : "debug"]("redis.connect_failed", {
            name: this.#name,
            address: this.#address,
            attempt: failures,
            error: errorText(err),
          });
        }
      } finally {
        clearInterval(timer);
      }
      await link?.finished;
      this.#link = null;
      if (!this.#closed) await this.#sleep(reconnectDelay(attempt++));
    }
  }

  /** Called once per link, synchronously, when it ends: status down before anyone retries. */
  #onLinkEnd(reason: unknown): void {
    if (!this.#up) return;
    this.#up = false;
    if (this.#closed) {
      this.#hooks.logger?.info("redis.closed", { name: this.#name });
      return;
    }
    this.#hooks.logger?.warn("redis.disconnected", { name: this.#name, error: errorText(reason) });
    this.#notify(false);
  }

  #notify(up: boolean): void {
    try {
      this.#hooks.onStatus?.(up);
    } catch (err) {
      this.#hooks.logger?.error("redis.on_status_failed", {
        name: this.#name,
        error: errorText(err),
      });
    }
  }

  async #connect(): Promise<Deno.Conn> {
    const timeout = this.#hooks.connectTimeout ?? 5000;
    const abort = new AbortController();
    this.#connectAbort = abort;
    const timer = setTimeout(
      () => abort.abort(new Error(`connect timed out after ${timeout} ms`)),
      timeout,
    );
    try {
      const conn = await Deno.connect({
        hostname: this.#options.hostname,
        port: this.#options.port,
        signal: abort.signal,
      });
      if (this.#closed) {
        conn.close();
        throw new Error("client closed");
      }
      conn.setNoDelay(true);
      return conn;
    } catch (err) {
      throw abort.signal.aborted && this.#closed === false ? abort.signal.reason : err;
    } finally {
      clearTimeout(timer);
      this.#connectAbort = null;
    }
  }

  /** AUTH and SELECT, pipelined, then the extension's own setup. */
  async #setUp(link: Link): Promise<void> {
    const { username, password, db } = this.#options;
    const steps: Promise<RespValue>[] = [];
    if (password !== undefined) {
      steps.push(
        link.send(username !== undefined ? ["AUTH", username, password] : ["AUTH", password]),
      );
    }
    if (db !== 0) steps.push(link.send(["SELECT", db]));
    // A failed AUTH also fails SELECT (NOAUTH); Promise.all reports the first, AUTH's error.
    await Promise.all(steps);
    await this.#hooks.onConnect?.(link);
  }

  /**
   * One interval per connection: drop it when replies are overdue with nothing arriving, and
   * PING it when it has been silent, so a dead peer is noticed even on an idle connection.
   */
  #startHealthTimer(link: Link): ReturnType<typeof setInterval> | undefined {
    const replyTimeout = this.#hooks.replyTimeout ?? 10_000;
    const pingInterval = this.#hooks.pingInterval ?? 5000;
    const shortest = Math.min(replyTimeout || Infinity, pingInterval || Infinity);
    if (shortest === Infinity) return undefined;
    const period = Math.min(1000, Math.max(25, shortest / 4));
    return setInterval(() => {
      const now = performance.now();
      const oldest = link.oldestSentAt;
      if (oldest !== undefined) {
        // Overdue: the oldest command has waited, and nothing at all arrived, for replyTimeout.
        // (A large reply still streaming in keeps lastReceived fresh and is not cut.)
        if (replyTimeout > 0 && now - Math.max(oldest, link.lastReceived) > replyTimeout) {
          link.destroy(new Error(`no reply from Redis within ${replyTimeout} ms`));
        }
      } else if (
        pingInterval > 0 && this.#up &&
        now - Math.max(link.lastReceived, link.lastSent) >= pingInterval
      ) {
        link.send(["PING"]).catch(() => {}); // a lost link is reported by the link itself
      }
    }, period);
  }

  /** Waits `ms`, or less when close() wakes it: the timer never outlives the client. */
  #sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.#wake = () => {
        clearTimeout(timer);
        resolve();
      };
    }).finally(() => {
      this.#wake = null;
    });
  }
}
