/**
 * A Redis pub/sub subscriber on its own connection (a connection in subscribe mode accepts no
 * other commands), with subscriptions that survive reconnects.
 *
 * - The set of channels the caller wants is kept here. On every (re)connect each one is
 *   subscribed again, and the status goes up only once Redis confirmed all of them: from then on
 *   live delivery is in place, so a caller that now reads missed messages from history leaves no
 *   gap.
 * - One SUBSCRIBE / UNSUBSCRIBE per channel, so each command has exactly one reply and replies
 *   stay matched to commands first in, first out; deliveries (`message` arrays) are taken out of
 *   the reply stream before matching.
 *
 * @module
 */
import type { Logger } from "../log.ts";
import {
  RedisClient,
  type RedisClientHooks,
  type RedisLink,
  RedisUnavailableError,
} from "./client.ts";
import { RespError, type RespValue } from "./resp.ts";
import type { RedisOptions } from "./url.ts";

/** Collaborators of a {@linkcode RedisSubscriber}. */
export interface RedisSubscriberHooks
  extends Pick<RedisClientHooks, "connectTimeout" | "replyTimeout" | "pingInterval"> {
  /**
   * Receives each message of a subscribed channel, in the order Redis sent them. `message` is a
   * fresh copy the receiver owns. Must not throw (a throw is logged and the message dropped).
   */
  onMessage: (channel: string, message: Uint8Array) => void;
  /**
   * Called with `true` once connected AND every wanted channel is subscribed again, with `false`
   * when that connection is lost. Not called by {@linkcode RedisSubscriber.close}.
   */
  onStatus?: (up: boolean) => void;
  /** Where connection events are logged. */
  logger?: Logger;
  /** Names this connection in log lines (default "subscriber"). */
  name?: string;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const MESSAGE = encoder.encode("message");
const PMESSAGE = encoder.encode("pmessage");

function isWord(value: RespValue, word: Uint8Array): boolean {
  if (!(value instanceof Uint8Array) || value.length !== word.length) return false;
  for (let i = 0; i < word.length; i++) if (value[i] !== word[i]) return false;
  return true;
}

type Verb = "SUBSCRIBE" | "UNSUBSCRIBE";

/**
 * Subscribes to Redis channels and hands their messages to `onMessage`, reconnecting and
 * re-subscribing by itself until {@linkcode RedisSubscriber.close}.
 *
 * @example
 * ```ts
 * const sub = new RedisSubscriber(parseRedisUrl("redis://127.0.0.1:6379"), {
 *   onMessage: (channel, message) => console.log(channel, new TextDecoder().decode(message)),
 *   onStatus: (up) => console.log(up ? "live" : "down"),
 * });
 * sub.start();
 * await sub.subscribe("news"); // Redis confirmed it: PUBLISH news ... now arrives
 * ```
 */
export class RedisSubscriber {
  readonly #client: RedisClient;
  readonly #onMessage: (channel: string, message: Uint8Array) => void;
  readonly #logger?: Logger;
  readonly #name: string;
  /** The channels the caller asked for: what every new connection subscribes to. */
  readonly #wanted = new Set<string>();
  /** The channels Redis confirmed on the current connection, as of the replies processed. */
  readonly #confirmed = new Set<string>();
  /** SUBSCRIBE/UNSUBSCRIBE commands per channel still awaiting their reply on `#link`. */
  readonly #inflight = new Map<string, number>();
  /** `subscribe()` calls waiting for their channel to be confirmed. */
  readonly #waiters = new Map<string, { resolve: () => void; reject: (err: Error) => void }[]>();
  #link: RedisLink | null = null;
  #closed = false;

  /** Creates a subscriber; nothing happens until {@linkcode RedisSubscriber.start}. */
  constructor(options: RedisOptions, hooks: RedisSubscriberHooks) {
    this.#onMessage = hooks.onMessage;
    this.#logger = hooks.logger;
    this.#name = hooks.name ?? "subscriber";
    this.#client = new RedisClient(options, {
      logger: hooks.logger,
      name: this.#name,
      onStatus: hooks.onStatus,
      connectTimeout: hooks.connectTimeout,
      replyTimeout: hooks.replyTimeout,
      pingInterval: hooks.pingInterval,
      onPush: (value) => this.#onPush(value),
      onConnect: (link) => this.#restore(link),
    });
  }

  /** Whether connected with every wanted channel subscribed (see `onStatus`). */
  get connected(): boolean {
    return this.#client.connected;
  }

  /** The channels subscribed or to be subscribed (the set restored on every reconnect). */
  get channels(): ReadonlySet<string> {
    return this.#wanted;
  }

  /** Starts connecting in the background; the subscriber then reconnects by itself. Idempotent. */
  start(): void {
    this.#client.start();
  }

  /**
   * Resolves when {@linkcode RedisSubscriber.connected} — at once if it is. Rejects with
   * {@linkcode RedisUnavailableError} if closed first, or with the signal's reason on abort.
   */
  ready(signal?: AbortSignal): Promise<void> {
    return this.#client.ready(signal);
  }

  /**
   * Subscribes to `channel`. Resolves once Redis confirmed the subscription — at once if it
   * already is. While disconnected the channel is recorded and the promise resolves when it is
   * subscribed after the reconnect. Rejects with {@linkcode RespError} if Redis refuses the
   * channel (an ACL, say; it is then forgotten) and with {@linkcode RedisUnavailableError} if the
   * subscriber is closed first. Resolves early if {@linkcode RedisSubscriber.unsubscribe} is
   * called for the channel meanwhile.
   */
  subscribe(channel: string): Promise<void> {
    if (this.#closed) return Promise.reject(closedError());
    this.#wanted.add(channel);
    const link = this.#link;
    const open = link !== null && link.open;
    if (open && this.#confirmed.has(channel) && !this.#inflight.has(channel)) {
      return Promise.resolve();
    }
    const confirmed = new Promise<void>((resolve, reject) => {
      let list = this.#waiters.get(channel);
      if (list === undefined) this.#waiters.set(channel, list = []);
      list.push({ resolve, reject });
    });
    if (open) this.#send(link, "SUBSCRIBE", channel);
    // While down there is nothing to send: #restore subscribes every wanted channel.
    return confirmed;
  }

  /**
   * Unsubscribes from `channel`: no more of its messages are delivered from now on. Resolves when
   * Redis confirmed it, or at once while disconnected (a new connection will not subscribe it).
   */
  unsubscribe(channel: string): Promise<void> {
    this.#wanted.delete(channel);
    this.#settleWaiters(channel);
    const link = this.#link;
    if (this.#closed || link === null || !link.open) return Promise.resolve();
    return this.#send(link, "UNSUBSCRIBE", channel).then(
      () => {},
      (err) => {
        // A lost connection holds no subscriptions: the goal is reached.
        if (!(err instanceof RedisUnavailableError)) throw err;
      },
    );
  }

  /**
   * Closes the connection and stops reconnecting; pending `subscribe()` promises reject with
   * {@linkcode RedisUnavailableError}. Resolves once every loop and timer has ended.
   */
  async close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      for (const [channel, list] of this.#waiters) {
        this.#waiters.delete(channel);
        for (const waiter of list) waiter.reject(closedError());
      }
    }
    await this.#client.close();
  }

  /** Runs on every new connection, before the status goes up: subscribe every wanted channel. */
  async #restore(link: RedisLink): Promise<void> {
    this.#link = link;
    this.#confirmed.clear();
    this.#inflight.clear();
    const replies = [...this.#wanted].map((channel) => this.#send(link, "SUBSCRIBE", channel));
    // All pipelined in one write. A channel Redis refuses is that channel's failure (handled in
    // #send), not the connection's; a lost connection fails the set-up, and it is retried.
    for (const result of await Promise.allSettled(replies)) {
      if (result.status === "rejected" && !(result.reason instanceof RespError)) {
        throw result.reason;
      }
    }
  }

  /** Sends one SUBSCRIBE/UNSUBSCRIBE and keeps the bookkeeping in reply order. */
  #send(link: RedisLink, verb: Verb, channel: string): Promise<RespValue> {
    this.#inflight.set(channel, (this.#inflight.get(channel) ?? 0) + 1);
    const reply = link.send([verb, channel]);
    // Attached first, so the bookkeeping runs before any caller's continuation.
    reply.then(
      () => this.#onReply(link, verb, channel),
      (err) => this.#onRefused(link, verb, channel, err),
    );
    return reply;
  }

  #doneInflight(channel: string): void {
    const n = (this.#inflight.get(channel) ?? 1) - 1;
    if (n > 0) this.#inflight.set(channel, n);
    else this.#inflight.delete(channel);
  }

  #onReply(link: RedisLink, verb: Verb, channel: string): void {
    if (link !== this.#link) return;
    this.#doneInflight(channel);
    if (verb === "SUBSCRIBE") this.#confirmed.add(channel);
    else this.#confirmed.delete(channel);
    // Only when the LAST command sent for the channel is answered does its state hold for good.
    if (!this.#inflight.has(channel) && this.#confirmed.has(channel)) this.#settleWaiters(channel);
  }

  #onRefused(link: RedisLink, verb: Verb, channel: string, err: unknown): void {
    // A lost connection: nothing to do, the next one subscribes every wanted channel again.
    if (link !== this.#link || !(err instanceof RespError)) return;
    this.#doneInflight(channel);
    this.#logger?.error("redis.subscribe_refused", {
      name: this.#name,
      command: verb,
      channel,
      error: err.message,
    });
    if (verb === "SUBSCRIBE") {
      // Retrying on every reconnect would only fail again: forget it, tell the waiters.
      this.#wanted.delete(channel);
      this.#settleWaiters(channel, err);
    }
  }

  #settleWaiters(channel: string, err?: Error): void {
    const list = this.#waiters.get(channel);
    if (list === undefined) return;
    this.#waiters.delete(channel);
    for (const waiter of list) {
      if (err === undefined) waiter.resolve();
      else waiter.reject(err);
    }
  }

  /** Claims deliveries (`message` arrays) before replies are matched to commands. */
  #onPush(value: RespValue): boolean {
    if (!Array.isArray(value)) return false;
    if (value.length === 3 && isWord(value[0], MESSAGE)) {
      const [, channelBytes, payload] = value;
      if (!(channelBytes instanceof Uint8Array) || !(payload instanceof Uint8Array)) return true;
      const channel = decoder.decode(channelBytes);
      // After unsubscribe() Redis may still deliver until it processes the UNSUBSCRIBE.
      if (!this.#wanted.has(channel)) return true;
      try {
        this.#onMessage(channel, payload);
      } catch (err) {
        this.#logger?.error("redis.on_message_failed", {
          name: this.#name,
          channel,
          error: err instanceof Error ? err.message : String(err),
        });
      }
      return true;
    }
    // Pattern deliveries are never asked for; should one come, it must not pass for a reply.
    return value.length === 4 && isWord(value[0], PMESSAGE);
  }
}

function closedError(): RedisUnavailableError {
  return new RedisUnavailableError("The Redis subscriber is closed.");
}
