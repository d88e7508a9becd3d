/**
 * The Redis broker, for several server instances behind a load balancer.
 *
 * - A publish runs one Lua script: the channel's next id (INCR), the history entry (a stream
 *   trimmed to `--history`), and a PUBLISH to every instance, atomically, so ids are global per
 *   channel and every instance sees publications in id order. The script only fills the epoch
 *   and id into the envelope TypeScript built ({@linkcode envelopeTemplate}).
 * - Each instance holds ONE Redis subscription per channel that has local subscribers (not one
 *   per client) and frames each publication once for the engine's fan-out.
 * - When Redis goes away, publishes answer 503, health says degraded and the engine holds live
 *   publications; when both connections are back (every subscription restored), the engine
 *   catches every local client up from history.
 * - A control channel (`push:control`) carries instructions for every instance — today
 *   `POST /disconnect`'s `{"disconnect":SUB,"from":INSTANCE}`, `POST /unsubscribe`'s, and
 *   presence's joins and leaves, which the presence script publishes itself (`"from":"redis"`,
 *   `redis_presence.ts`) — see `control.ts`. Each instance subscribes to it at start and hands
 *   `onControl` every message but its own (`from` its instance id): the script's reach every
 *   instance, the one that ran it included.
 *
 * @module
 */
import { encodeFrame } from "../protocol/frame_encoder.ts";
import { Opcode } from "../protocol/opcode.ts";
import type { Logger } from "../log.ts";
import { reconnectDelay, RedisClient, RedisUnavailableError } from "../redis/client.ts";
import { RedisSubscriber } from "../redis/subscriber.ts";
import type { RedisOptions } from "../redis/url.ts";
import {
  type Broker,
  type BrokerEvents,
  type BrokerStats,
  type ChannelState,
  envelopeTemplate,
  type HistoryEntry,
  HubUnavailableError,
  newEpoch,
  type Publication,
  type PublishResult,
} from "./broker.ts";
import { type ControlMessage, parseControl } from "./control.ts";

export type { ControlMessage } from "./control.ts";

/** Options of {@linkcode RedisBroker}. */
export interface RedisBrokerOptions {
  /** Where Redis is. */
  redis: RedisOptions;
  /** Publications kept per channel (the stream is trimmed to this length; 0 = no history). */
  historySize: number;
  /**
   * The history stream and id counter of a channel expire this many ms after its newest
   * publication (0 or omitted = never).
   */
  historyTtl?: number;
  /** Key prefix, so several deployments can share one Redis. */
  prefix?: string;
  /** Where events are logged. */
  logger: Logger;
  /**
   * Receives the control messages other instances broadcast (never this one's own) and the
   * presence notices of every instance's scripts (`"from":"redis"`, this one's included). Must
   * not throw (a throw is logged and the message dropped).
   */
  onControl?: (message: ControlMessage) => void;
}

/**
 * KEYS: seq, history stream, epoch, id floor. ARGV: the envelope before the epoch, between
 * epoch and id, after the id; epoch candidate, maxlen, pubsub channel, ttl ms (0 = never).
 *
 * A channel whose keys expired starts again above the id floor (the highest id any channel
 * reached), so its ids never repeat within the epoch: an old position gets a `lost` notice
 * instead of a replay of the wrong messages.
 */
const PUBLISH_SCRIPT = `
local floor = tonumber(redis.call('GET', KEYS[4]) or '0')
if floor > 0 and redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('SET', KEYS[1], floor)
end
local id = redis.call('INCR', KEYS[1])
if id > floor then
  redis.call('SET', KEYS[4], id)
end
local epoch = redis.call('GET', KEYS[3])
if not epoch then
  epoch = ARGV[4]
  redis.call('SET', KEYS[3], epoch)
end
local env = ARGV[1] .. epoch .. ARGV[2] .. id .. ARGV[3]
if tonumber(ARGV[5]) > 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[5], id .. '-0', 'm', env)
end
if tonumber(ARGV[7]) > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[7])
  redis.call('PEXPIRE', KEYS[2], ARGV[7])
end
local n = redis.call('PUBLISH', ARGV[6], id .. ' ' .. env)
return {id, epoch, n}
`;

const decoder = new TextDecoder();

/**
 * Channels shared by every server instance through Redis.
 *
 * @example
 * ```ts
 * const broker = new RedisBroker({ redis: parseRedisUrl("redis://127.0.0.1:6379"), historySize: 100, logger });
 * const hub = new Hub(broker, logger);
 * broker.start();
 * await hub.publish("news", { kind: "text", text: "hello" }); // { epoch, id: 1, delivered: 2 }
 * ```
 */
export class RedisBroker implements Broker {
  readonly #options: RedisBrokerOptions;
  readonly #prefix: string;
  /** `push:control`, made once: every pub/sub message is compared with it. */
  readonly #control: string;
  readonly #client: RedisClient;
  readonly #subscriber: RedisSubscriber;
  readonly #watched = new Set<string>();
  readonly #tasks = new Set<Promise<void>>();
  #events: BrokerEvents | null = null;
  /** `SET epoch NX` on the current commands connection: once per connection, not per join. */
  #epochSet: Promise<unknown> | null = null;
  /** A candidate epoch, used by the script only when Redis holds none (fresh or wiped). */
  readonly #epochCandidate = newEpoch();
  /** This instance on the control channel: it skips its own messages (it acted already). */
  readonly #instance = crypto.randomUUID();

  /** This instance's id (a UUID): its own control messages are skipped, its presence keyed. */
  get instance(): string {
    return this.#instance;
  }

  /** Creates the broker; call {@linkcode RedisBroker.start} to connect. */
  constructor(options: RedisBrokerOptions) {
    this.#options = options;
    this.#prefix = options.prefix ?? "push:";
    this.#control = `${this.#prefix}control`;
    const logger = options.logger;
    this.#client = new RedisClient(options.redis, {
      logger,
      name: "commands",
      onStatus: (up) => this.#onStatus("commands", up),
    });
    this.#subscriber = new RedisSubscriber(options.redis, {
      logger,
      onMessage: (channel, payload) => this.#onMessage(channel, payload),
      onStatus: (up) => this.#onStatus("subscriber", up),
    });
  }

  /** Registers the engine's callbacks. */
  attach(events: BrokerEvents): void {
    this.#events = events;
  }

  /** Connects both Redis connections in the background (they reconnect by themselves). */
  start(): void {
    // Wanted before connecting, so the subscriber reports "up" only with it in place; it is
    // restored on every reconnect like the channels. Rejects only on close: nothing to do then.
    this.#subscriber.subscribe(this.#control).catch(() => {});
    this.#client.start();
    this.#subscriber.start();
  }

  /** Resolves once both connections are up (for start-up logging and tests). */
  async ready(): Promise<void> {
    await Promise.all([this.#client.ready(), this.#subscriber.ready()]);
  }

  #key(channel: string, part: string): string {
    return `${this.#prefix}{${channel}}:${part}`;
  }

  #pubsubChannel(channel: string): string {
    return `${this.#prefix}ch:${channel}`;
  }

  /**
   * The control channel (`push:control`), where the presence script publishes its notices too.
   * Outside the `ch:` namespace, so no channel name can collide with it.
   */
  get controlChannel(): string {
    return this.#control;
  }

  /**
   * Publishes `message` to every instance's `onControl` (not this one's: the caller acts
   * locally itself); resolves with the number of instances Redis handed it to, this one
   * included. Rejects with {@linkcode HubUnavailableError} while Redis is away.
   */
  async broadcastControl(message: ControlMessage): Promise<number> {
    const payload = JSON.stringify({ ...message, from: this.#instance });
    try {
      return await this.#client.command(["PUBLISH", this.#control, payload]) as number;
    } catch (err) {
      if (err instanceof RedisUnavailableError) {
        throw new HubUnavailableError("Redis is unavailable: other instances were not reached.");
      }
      throw err;
    }
  }

  /**
   * Runs one command on the commands connection, for state other parts keep in Redis under
   * {@linkcode RedisBroker.prefix} (the `Idempotency-Key` answers, `http/idempotency_redis.ts`).
   * Rejects with {@linkcode HubUnavailableError} while Redis is away.
   */
  async command(args: readonly (string | number | Uint8Array)[]): Promise<unknown> {
    try {
      return await this.#client.command(args);
    } catch (err) {
      if (err instanceof RedisUnavailableError) {
        throw new HubUnavailableError(
          "Redis is unavailable: nothing was published. Retry shortly.",
        );
      }
      throw err;
    }
  }

  /** The key prefix of this deployment (`push:` by default). */
  get prefix(): string {
    return this.#prefix;
  }

  /** Runs the publish script; rejects with {@linkcode HubUnavailableError} while Redis is away. */
  async publish(channel: string, data: Publication): Promise<PublishResult> {
    let reply;
    try {
      reply = await this.#client.command([
        "EVAL",
        PUBLISH_SCRIPT,
        4,
        this.#key(channel, "seq"),
        this.#key(channel, "history"),
        `${this.#prefix}epoch`,
        `${this.#prefix}floor`,
        ...envelopeTemplate(channel, data),
        this.#epochCandidate,
        this.#options.historySize,
        this.#pubsubChannel(channel),
        Math.max(0, Math.round(this.#options.historyTtl ?? 0)),
      ]);
    } catch (err) {
      if (err instanceof RedisUnavailableError) {
        throw new HubUnavailableError(
          "Redis is unavailable: the publication was not accepted. Retry shortly.",
        );
      }
      throw err;
    }
    const [id, epoch, delivered] = reply as [number, Uint8Array, number];
    return { epoch: decoder.decode(epoch), id, delivered };
  }

  /**
   * The channel's epoch and last id. The epoch is fixed in Redis (`SET NX`) before anyone reads
   * it, so every instance agrees on it even when Redis was just wiped.
   */
  async channelState(channel: string): Promise<ChannelState> {
    await this.#ensureEpoch();
    const [seq, epochBytes, floor] = await Promise.all([
      this.#client.command(["GET", this.#key(channel, "seq")]),
      this.#client.command(["GET", `${this.#prefix}epoch`]),
      this.#client.command(["GET", `${this.#prefix}floor`]),
    ]) as (Uint8Array | null)[];
    if (epochBytes === null) {
      this.#epochSet = null; // wiped since it was set (FLUSHALL): set it again
      throw new Error("Redis holds no epoch");
    }
    const counter = seq ?? floor;
    return {
      epoch: decoder.decode(epochBytes),
      lastId: counter === null ? 0 : Number(decoder.decode(counter)),
      fresh: seq === null,
    };
  }

  /** `SET epoch NX`, once per commands connection (shared by every catch-up meanwhile). */
  #ensureEpoch(): Promise<unknown> {
    this.#epochSet ??= this.#client.command([
      "SET",
      `${this.#prefix}epoch`,
      this.#epochCandidate,
      "NX",
    ])
      .catch((err) => {
        this.#epochSet = null;
        throw err;
      });
    return this.#epochSet;
  }

  /** Up to `limit` history entries of `channel` after id `id` (`XRANGE … COUNT`). */
  async historyAfter(channel: string, id: number, limit: number): Promise<HistoryEntry[]> {
    const reply = await this.#client.command([
      "XRANGE",
      this.#key(channel, "history"),
      `${id + 1}-0`,
      "+",
      "COUNT",
      limit,
    ]) as [Uint8Array, Uint8Array[]][];
    return reply.map(([entryId, fields]) => ({
      id: Number(decoder.decode(entryId).split("-")[0]),
      frame: encodeFrame(Opcode.Text, fields[1]),
    }));
  }

  /** Subscribes to the channel in Redis; resolves once Redis confirmed the subscription. */
  watch(channel: string): Promise<void> {
    this.#watched.add(channel);
    return this.#subscriber.subscribe(this.#pubsubChannel(channel));
  }

  /** Unsubscribes from the channel in Redis (in the background). */
  unwatch(channel: string): void {
    this.#watched.delete(channel);
    const task = this.#subscriber.unsubscribe(this.#pubsubChannel(channel)).catch(() => {});
    this.#tasks.add(task);
    task.finally(() => this.#tasks.delete(task));
  }

  /** A lost connection is retried by the restore; an error reply with backoff. */
  retryDelay(err: unknown, attempt: number): number | null {
    return err instanceof RedisUnavailableError ? null : Math.round(reconnectDelay(attempt));
  }

  /** Watched channels; no history is held in this process. */
  stats(): BrokerStats {
    // History lives in Redis; this process holds none of it.
    return { channels: this.#watched.size, historyMessages: 0, historyBytes: 0 };
  }

  /** "degraded" while either Redis connection is down. */
  health(): { status: "ok" | "degraded"; reason?: string } {
    if (this.#client.connected && this.#subscriber.connected) return { status: "ok" };
    return {
      status: "degraded",
      reason: "Redis is unreachable: publishing is refused, clients stay connected.",
    };
  }

  /** Closes both connections and waits for background unsubscribes. */
  async close(): Promise<void> {
    await Promise.all([this.#client.close(), this.#subscriber.close()]);
    while (this.#tasks.size > 0) await Promise.all(this.#tasks);
  }

  #onStatus(which: string, up: boolean): void {
    this.#options.logger[up ? "info" : "warn"](up ? "redis.up" : "redis.down", {
      connection: which,
    });
    if (which === "commands") this.#epochSet = null; // a new connection sets it once again
    // The subscriber reports "up" only once every channel subscription is restored: from then on
    // live delivery is in place. Publications may have been missed while either connection was
    // down, so everyone catches up.
    if (!up) this.#events?.onInterrupted();
    else if (this.#client.connected && this.#subscriber.connected) this.#events?.onRestored();
  }

  /** A publication from Redis: `ID ENVELOPE`, framed once for every local subscriber. */
  #onMessage(pubsubChannel: string, payload: Uint8Array): void {
    if (pubsubChannel === this.#control) return this.#onControlMessage(payload);
    const channel = pubsubChannel.slice(this.#prefix.length + 3);
    if (!this.#watched.has(channel)) return;
    const space = payload.indexOf(0x20);
    const id = Number(decoder.decode(payload.subarray(0, space)));
    this.#events?.onPublication(channel, id, encodeFrame(Opcode.Text, payload.subarray(space + 1)));
  }

  /** A control message: checked (anyone with Redis access can publish here), then handed on. */
  #onControlMessage(payload: Uint8Array): void {
    let message;
    try {
      message = JSON.parse(decoder.decode(payload));
    } catch {
      message = null;
    }
    const control = parseControl(message);
    if (control === null) {
      this.#options.logger.warn("redis.control_invalid", { bytes: payload.length });
      return;
    }
    // This instance acted on its own messages already. The presence script's (`"from":"redis"`)
    // are nobody's own: this instance learns of the joins and leaves its scripts decided here too,
    // in the order Redis decided them.
    if (message.from === this.#instance) return;
    this.#options.onControl?.(control);
  }
}
