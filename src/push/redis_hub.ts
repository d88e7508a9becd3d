/**
 * The Redis-backed channel engine, for several server instances behind a load balancer.
 *
 * - A publish runs one Lua script: the channel's next id (INCR), the envelope, the history entry
 *   (a stream trimmed to `--history`), and a PUBLISH to every instance, atomically, so ids are
 *   global per channel and every instance sees publications in id order.
 * - Each instance holds ONE Redis subscription per channel that has local subscribers (not one
 *   per client), turns each publication into a frame once and queues it to its local clients.
 * - Resume works on any instance: the client is registered as "joining" (live publications are
 *   buffered for it), the channel subscription is confirmed, history is read with XRANGE, then the
 *   buffer is flushed skipping ids already sent. Ids make duplicates impossible to miss.
 * - When Redis goes away, local clients stay connected, publishes answer 503 and health says
 *   degraded. When it returns, the subscriber restores its subscriptions and every local client is
 *   caught up from history, or told plainly that messages were lost.
 *
 * @module
 */
import { encodeFrame } from "../protocol/frame_encoder.ts";
import { Opcode } from "../protocol/opcode.ts";
import type { Logger } from "../log.ts";
import { RedisClient, RedisUnavailableError } from "../redis/client.ts";
import { RedisSubscriber } from "../redis/subscriber.ts";
import type { RedisOptions } from "../redis/url.ts";
import {
  type ChannelHub,
  envelopeTail,
  type HubStats,
  HubUnavailableError,
  newEpoch,
  notices,
  type Position,
  type Publication,
  type PublishResult,
  type Subscriber,
  SubscriptionIndex,
} from "./channel_hub.ts";

/** Options of {@linkcode RedisHub}. */
export interface RedisHubOptions {
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
}

/** KEYS: seq, history stream, epoch. ARGV: channel JSON, data tail, epoch candidate, maxlen, pubsub channel. */
const PUBLISH_SCRIPT = `
local id = redis.call('INCR', KEYS[1])
local epoch = redis.call('GET', KEYS[3])
if not epoch then
  epoch = ARGV[3]
  redis.call('SET', KEYS[3], epoch)
end
local env = '{"channel":' .. ARGV[1] .. ',"epoch":"' .. epoch .. '","id":' .. id .. ',"data":' .. ARGV[2]
if tonumber(ARGV[4]) > 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[4], id .. '-0', 'm', env)
end
local n = redis.call('PUBLISH', ARGV[5], id .. ' ' .. env)
return {id, epoch, n}
`;

/** One local subscriber's progress on one channel. */
interface SubscriberState {
  /** The last id queued to it. */
  lastId: number;
  /** The epoch `lastId` belongs to. */
  epoch: string;
  /** Live publications held while it joins or catches up; null when it is live. */
  pending: { id: number; frame: Uint8Array }[] | null;
  /** Whether it got its `subscribed` notice (false until Redis answered once). */
  joined: boolean;
  /** The position it asked to resume from, until it joined. */
  since?: Position;
}

const decoder = new TextDecoder();

/**
 * Live publications held per subscriber while it catches up. Beyond this the oldest are dropped:
 * the catch-up reads them from history anyway, and a gap left behind triggers another round.
 */
const MAX_PENDING = 10_000;

type Entry = { id: number; frame: Uint8Array };

/**
 * Channels shared by every server instance through Redis.
 *
 * @example
 * ```ts
 * const hub = new RedisHub({ redis: parseRedisUrl("redis://127.0.0.1:6379"), historySize: 100, logger });
 * hub.start();
 * await hub.publish("news", { kind: "text", text: "hello" }); // { epoch, id: 1, delivered: 2 }
 * ```
 */
export class RedisHub implements ChannelHub {
  readonly #options: RedisHubOptions;
  readonly #prefix: string;
  readonly #client: RedisClient;
  readonly #subscriber: RedisSubscriber;
  readonly #channels = new Map<string, Map<Subscriber, SubscriberState>>();
  readonly #subscriptions = new SubscriptionIndex();
  readonly #tasks = new Set<Promise<void>>();
  /** A candidate epoch, used by the script only when Redis holds none (fresh or wiped). */
  readonly #epochCandidate = newEpoch();
  #epoch = "";

  /** Creates the hub; call {@linkcode RedisHub.start} to connect. */
  constructor(options: RedisHubOptions) {
    this.#options = options;
    this.#prefix = options.prefix ?? "push:";
    const logger = options.logger;
    this.#client = new RedisClient(options.redis, {
      logger,
      name: "commands",
      onStatus: (up) => this.#onStatus("commands", up),
    });
    this.#subscriber = new RedisSubscriber(options.redis, {
      logger,
      onMessage: (channel, payload) => this.#onPublication(channel, payload),
      onStatus: (up) => this.#onStatus("subscriber", up),
    });
  }

  /** Connects both Redis connections in the background (they reconnect by themselves). */
  start(): void {
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

  async publish(channel: string, data: Publication): Promise<PublishResult> {
    let reply;
    try {
      reply = await this.#client.command([
        "EVAL",
        PUBLISH_SCRIPT,
        3,
        this.#key(channel, "seq"),
        this.#key(channel, "history"),
        `${this.#prefix}epoch`,
        JSON.stringify(channel),
        envelopeTail(data),
        this.#epochCandidate,
        this.#options.historySize,
        this.#pubsubChannel(channel),
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
    this.#epoch = decoder.decode(epoch);
    return { epoch: this.#epoch, id, delivered };
  }

  subscribe(subscriber: Subscriber, channel: string, since?: Position): boolean {
    if (!this.#subscriptions.add(subscriber, channel)) return false;
    let local = this.#channels.get(channel);
    const first = !local;
    if (!local) this.#channels.set(channel, local = new Map());
    local.set(subscriber, { lastId: 0, epoch: "", pending: [], joined: false, since });
    this.#track(this.#catchUp(channel, first ? "watch" : "join"));
    return true;
  }

  unsubscribe(subscriber: Subscriber, channel: string): boolean {
    if (!this.#subscriptions.remove(subscriber, channel)) return false;
    const local = this.#channels.get(channel);
    local?.delete(subscriber);
    if (local?.size === 0) {
      this.#channels.delete(channel);
      this.#track(this.#subscriber.unsubscribe(this.#pubsubChannel(channel)).catch(() => {}));
    }
    return true;
  }

  unsubscribeAll(subscriber: Subscriber): void {
    for (const channel of this.#subscriptions.list(subscriber)) {
      this.unsubscribe(subscriber, channel);
    }
  }

  subscriptionsOf(subscriber: Subscriber): ReadonlySet<string> {
    return this.#subscriptions.of(subscriber);
  }

  stats(): HubStats {
    // History lives in Redis; this process holds none of it.
    return {
      channels: this.#channels.size,
      active: this.#channels.size,
      historyMessages: 0,
      historyBytes: 0,
    };
  }

  health(): { status: "ok" | "degraded"; reason?: string } {
    if (this.#client.connected && this.#subscriber.connected) return { status: "ok" };
    return {
      status: "degraded",
      reason: "Redis is unreachable: publishing is refused, clients stay connected.",
    };
  }

  async close(): Promise<void> {
    await Promise.all([this.#client.close(), this.#subscriber.close()]);
    while (this.#tasks.size > 0) await Promise.all(this.#tasks);
  }

  #track(task: Promise<void>): void {
    this.#tasks.add(task);
    task.finally(() => this.#tasks.delete(task));
  }

  #onStatus(which: string, up: boolean): void {
    this.#options.logger[up ? "info" : "warn"](up ? "redis.up" : "redis.down", {
      connection: which,
    });
    // The subscriber reports "up" only once every channel subscription is restored: from then on
    // live delivery is in place, so catching every local client up from history leaves no gap.
    // Publications may have been missed while either connection was down, so everyone catches up.
    if (!up) {
      // Hold live publications from now on: after an outage they must pass the catch-up's
      // checks (a wiped Redis restarts ids at 1, which would otherwise look like duplicates).
      for (const local of this.#channels.values()) {
        for (const state of local.values()) state.pending ??= [];
      }
    } else if (this.#client.connected && this.#subscriber.connected) {
      for (const channel of this.#channels.keys()) this.#track(this.#catchUp(channel, "join"));
    }
  }

  /** A publication from Redis: `ID ENVELOPE`, framed once for every local subscriber. */
  #onPublication(pubsubChannel: string, payload: Uint8Array): void {
    const channel = pubsubChannel.slice(this.#prefix.length + 3);
    const local = this.#channels.get(channel);
    if (!local) return;
    const space = payload.indexOf(0x20);
    const id = Number(decoder.decode(payload.subarray(0, space)));
    const frame = encodeFrame(Opcode.Text, payload.subarray(space + 1));
    for (const [subscriber, state] of local) {
      if (state.pending) {
        state.pending.push({ id, frame });
        if (state.pending.length > MAX_PENDING) state.pending.shift();
      } else if (!this.#sendInOrder(subscriber, state, [{ id, frame }])) {
        // Publications were missed (Redis dropped pub/sub messages, e.g. across a restart):
        // hold this one and fetch the missing ones from history.
        this.#options.logger.warn("redis.gap", {
          channel,
          client: subscriber.id,
          expected: state.lastId + 1,
          got: id,
        });
        this.#track(this.#catchUp(channel, "join"));
      }
    }
  }

  /**
   * Queues `entries` (ascending ids) that follow `state.lastId` without a hole, skipping ids
   * already sent. At a hole it stops, keeps the rest in `state.pending` and returns false.
   */
  #sendInOrder(subscriber: Subscriber, state: SubscriberState, entries: Entry[]): boolean {
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i];
      if (entry.id <= state.lastId) continue;
      if (entry.id > state.lastId + 1) {
        state.pending = entries.slice(i);
        return false;
      }
      subscriber.sendFrame(entry.frame);
      state.lastId = entry.id;
    }
    return true;
  }

  /**
   * Brings the local subscribers of `channel` that are joining or catching up (their `pending`
   * is set) up to date: confirm the Redis subscription ("watch"), read the channel's position and
   * the history they miss, queue it, then flush what arrived live meanwhile.
   */
  async #catchUp(channel: string, mode: "watch" | "join"): Promise<void> {
    try {
      if (mode === "watch") await this.#subscriber.subscribe(this.#pubsubChannel(channel));
      // Pipelined in this order: the epoch is fixed in Redis before anyone reads it, so every
      // instance agrees on it even when Redis was just wiped.
      const epochKey = `${this.#prefix}epoch`;
      const [, seq, epochBytes] = await Promise.all([
        this.#client.command(["SET", epochKey, this.#epochCandidate, "NX"]),
        this.#client.command(["GET", this.#key(channel, "seq")]),
        this.#client.command(["GET", epochKey]),
      ]) as [unknown, Uint8Array | null, Uint8Array];
      const lastId = seq === null ? 0 : Number(decoder.decode(seq));
      const epoch = decoder.decode(epochBytes);
      this.#epoch = epoch;
      const local = this.#channels.get(channel);
      if (!local) return;
      const waiting = [...local].filter(([, s]) => s.pending !== null);
      // One XRANGE from the oldest position any waiting subscriber needs.
      let from = Infinity;
      for (const [, s] of waiting) {
        const position = s.joined
          ? (s.epoch === epoch ? s.lastId : lastId)
          : s.since?.epoch === epoch
          ? s.since.id
          : lastId;
        from = Math.min(from, position);
      }
      const history = from < lastId ? await this.#history(channel, from + 1) : [];
      for (const [subscriber, state] of waiting) {
        if (this.#channels.get(channel)?.get(subscriber) !== state) continue; // left meanwhile
        this.#deliverCatchUp(subscriber, channel, state, epoch, lastId, history);
      }
    } catch (err) {
      if (!(err instanceof RedisUnavailableError)) {
        this.#options.logger.error("redis.catch_up_failed", { channel, error: String(err) });
      }
      // Redis went away: the subscriber's next "up" runs this again for everyone still pending.
    }
  }

  async #history(channel: string, from: number): Promise<Entry[]> {
    const reply = await this.#client.command([
      "XRANGE",
      this.#key(channel, "history"),
      `${from}-0`,
      "+",
    ]) as [
      Uint8Array,
      Uint8Array[],
    ][];
    return reply.map(([id, fields]) => ({
      id: Number(decoder.decode(id).split("-")[0]),
      frame: encodeFrame(Opcode.Text, fields[1]),
    }));
  }

  #deliverCatchUp(
    subscriber: Subscriber,
    channel: string,
    state: SubscriberState,
    epoch: string,
    lastId: number,
    history: Entry[],
  ): void {
    if (state.pending === null) return; // another catch-up got here first
    const wanted = state.joined ? { epoch: state.epoch, id: state.lastId } : state.since;
    let recovered: boolean | undefined;
    let position = lastId; // a plain subscribe, or a lost resume, starts at the live end
    if (wanted !== undefined) {
      const reason = wanted.epoch !== epoch
        ? `epoch ${wanted.epoch} is not the current ${epoch} (the history was reset)`
        : wanted.id > lastId
        ? `id ${wanted.id} is ahead of the channel's last id ${lastId}`
        : wanted.id < lastId && !history.some((e) => e.id === wanted.id + 1)
        ? `history no longer holds the messages after ${wanted.id}`
        : null;
      recovered = reason === null;
      if (reason === null) position = wanted.id;
      else subscriber.sendText(notices.lost(channel, epoch, lastId, reason));
    }
    if (!state.joined) subscriber.sendText(notices.subscribed(channel, epoch, lastId, recovered));
    state.joined = true;
    state.since = undefined;
    state.epoch = epoch;
    state.lastId = position;
    const pending = state.pending;
    state.pending = null;
    const newest = history.at(-1)?.id ?? 0;
    const entries = [...history, ...pending.filter((e) => e.id > newest)];
    if (!this.#sendInOrder(subscriber, state, entries)) {
      // A hole between history and the live buffer: fetch it in another round.
      this.#track(this.#catchUp(channel, "join"));
    }
  }
}
