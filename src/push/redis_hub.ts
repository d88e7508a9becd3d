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
import { reconnectDelay, RedisClient, RedisUnavailableError } from "../redis/client.ts";
import { RedisSubscriber } from "../redis/subscriber.ts";
import type { RedisOptions } from "../redis/url.ts";
import type { ChannelHub, HubStats } from "./channel_hub.ts";
import {
  envelopeTail,
  HubUnavailableError,
  newEpoch,
  type Position,
  type Publication,
  type PublishResult,
} from "./broker.ts";
import { DrainWaiters, notices, replayBudget } from "./recovery.ts";
import { type Subscriber, SubscriptionIndex } from "./subscriptions.ts";

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

/**
 * KEYS: seq, history stream, epoch, id floor. ARGV: channel JSON, data tail, epoch candidate,
 * maxlen, pubsub channel, ttl ms (0 = keys never expire).
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
  epoch = ARGV[3]
  redis.call('SET', KEYS[3], epoch)
end
local env = '{"channel":' .. ARGV[1] .. ',"epoch":"' .. epoch .. '","id":' .. id .. ',"data":' .. ARGV[2]
if tonumber(ARGV[4]) > 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[4], id .. '-0', 'm', env)
end
if tonumber(ARGV[6]) > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[6])
  redis.call('PEXPIRE', KEYS[2], ARGV[6])
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
  /** A catch-up is streaming history to it: other catch-ups leave it alone. */
  busy: boolean;
  /**
   * The channel had no id counter when read (new, or expired): the next publication starts
   * it, whatever its id (the floor may have moved meanwhile).
   */
  fresh: boolean;
  /** Ends its stream's wait for the writer (it left, or the hub closes); null when none. */
  wake: (() => void) | null;
}

const decoder = new TextDecoder();

/**
 * Live publications held per subscriber while it catches up. Beyond this the oldest are dropped:
 * the catch-up reads them from history anyway, and a gap left behind triggers another round.
 */
const MAX_PENDING = 10_000;

/** History entries read per XRANGE: a catch-up streams pages, paced by the writer. */
const PAGE = 64;

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
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();
  /** Channels with a catch-up retry scheduled: one per channel, however many joins failed. */
  readonly #retrying = new Set<string>();
  readonly #drains = new DrainWaiters();
  /** `SET epoch NX` on the current commands connection: once per connection, not per join. */
  #epochSet: Promise<unknown> | null = null;
  #closed = false;
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
        4,
        this.#key(channel, "seq"),
        this.#key(channel, "history"),
        `${this.#prefix}epoch`,
        `${this.#prefix}floor`,
        JSON.stringify(channel),
        envelopeTail(data),
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
    this.#epoch = decoder.decode(epoch);
    return { epoch: this.#epoch, id, delivered };
  }

  subscribe(subscriber: Subscriber, channel: string, since?: Position): boolean {
    if (!this.#subscriptions.add(subscriber, channel)) return false;
    let local = this.#channels.get(channel);
    if (!local) this.#channels.set(channel, local = new Map());
    local.set(subscriber, {
      lastId: 0,
      epoch: "",
      pending: [],
      joined: false,
      since,
      busy: false,
      fresh: false,
      wake: null,
    });
    this.#track(this.#catchUp(channel));
    return true;
  }

  unsubscribe(subscriber: Subscriber, channel: string): boolean {
    if (!this.#subscriptions.remove(subscriber, channel)) return false;
    const local = this.#channels.get(channel);
    const state = local?.get(subscriber);
    local?.delete(subscriber);
    state?.wake?.();
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
    this.#drains.forget(subscriber);
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
    this.#closed = true;
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    await Promise.all([this.#client.close(), this.#subscriber.close()]);
    for (const local of this.#channels.values()) {
      for (const state of local.values()) state.wake?.();
    }
    while (this.#tasks.size > 0) await Promise.all(this.#tasks);
  }

  #track(task: Promise<void>): void {
    this.#tasks.add(task);
    task.finally(() => this.#tasks.delete(task));
  }

  /** Runs `fn` after `ms`, unless the hub closes first. */
  #later(ms: number, fn: () => void): void {
    if (this.#closed) return;
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      if (!this.#closed) fn();
    }, ms);
    this.#timers.add(timer);
  }

  #onStatus(which: string, up: boolean): void {
    this.#options.logger[up ? "info" : "warn"](up ? "redis.up" : "redis.down", {
      connection: which,
    });
    if (which === "commands") this.#epochSet = null; // a new connection sets it once again
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
      for (const channel of this.#channels.keys()) this.#track(this.#catchUp(channel));
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
        // A stream paced by a slow reader may run for long: it reads what it misses from the
        // stream anyway, so hold only the newest few for it, not 10,000 frames.
        if (state.pending.length > (state.busy ? PAGE : MAX_PENDING)) state.pending.shift();
      } else if (!this.#sendInOrder(subscriber, state, [{ id, frame }])) {
        // Publications were missed (Redis dropped pub/sub messages, e.g. across a restart):
        // hold this one and fetch the missing ones from history.
        this.#options.logger.warn("redis.gap", {
          channel,
          client: subscriber.id,
          expected: state.lastId + 1,
          got: id,
        });
        this.#track(this.#catchUp(channel));
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
      if (state.fresh && entry.id > state.lastId) {
        // The first publication of a channel that had no counter: its id is where it starts.
        state.fresh = false;
        state.lastId = entry.id - 1;
      }
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
   * is set) up to date: wait until the channel's Redis subscription is confirmed, read the
   * channel's position, stream the history each one misses, then flush what arrived live
   * meanwhile. An error reply (OOM, READONLY…) is retried with backoff; a lost connection is
   * retried by the next "up".
   */
  async #catchUp(channel: string, attempt = 0): Promise<void> {
    try {
      // Every join waits (at once when the subscription is already confirmed): only then are
      // the publications after the reads below sure to arrive live, for every subscriber.
      await this.#subscriber.subscribe(this.#pubsubChannel(channel));
      // The epoch is fixed in Redis before anyone reads it, so every instance agrees on it
      // even when Redis was just wiped.
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
      const lastId = counter === null ? 0 : Number(decoder.decode(counter));
      const epoch = decoder.decode(epochBytes);
      this.#epoch = epoch;
      const local = this.#channels.get(channel);
      if (!local) return;
      const streams = [...local]
        .filter(([, s]) => s.pending !== null && !s.busy)
        .map(([subscriber, state]) =>
          this.#deliverCatchUp(subscriber, channel, state, epoch, lastId, seq === null)
        );
      for (const result of await Promise.allSettled(streams)) {
        if (result.status === "rejected") throw result.reason;
      }
    } catch (err) {
      if (err instanceof RedisUnavailableError || this.#closed) return;
      // An error reply leaves subscribers pending with no notice: try again, backing off.
      if (this.#retrying.has(channel)) return;
      this.#retrying.add(channel);
      const delay = Math.round(reconnectDelay(attempt));
      this.#options.logger.warn("redis.catch_up_failed", {
        channel,
        error: String(err),
        retry_ms: delay,
      });
      this.#later(delay, () => {
        this.#retrying.delete(channel);
        this.#track(this.#catchUp(channel, attempt + 1));
      });
    }
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

  /** Up to {@linkcode PAGE} history entries of `channel` from id `from` on. */
  async #page(channel: string, from: number): Promise<Entry[]> {
    const reply = await this.#client.command([
      "XRANGE",
      this.#key(channel, "history"),
      `${from}-0`,
      "+",
      "COUNT",
      PAGE,
    ]) as [Uint8Array, Uint8Array[]][];
    return reply.map(([id, fields]) => ({
      id: Number(decoder.decode(id).split("-")[0]),
      frame: encodeFrame(Opcode.Text, fields[1]),
    }));
  }

  /** Whether `state` is still `subscriber`'s subscription to `channel` (not left meanwhile). */
  #current(channel: string, subscriber: Subscriber, state: SubscriberState): boolean {
    return this.#channels.get(channel)?.get(subscriber) === state;
  }

  /** Resolves when `subscriber`'s queue has drained, or it left `channel`, or the hub closes. */
  #drained(subscriber: Subscriber, state: SubscriberState): Promise<void> {
    return new Promise<void>((resolve) => {
      state.wake = resolve;
      this.#drains.wait(subscriber, resolve);
    }).finally(() => state.wake = null);
  }

  /**
   * One subscriber's catch-up: the `lost` or `subscribed` notice, then its history in pages
   * of {@linkcode PAGE}, each entry queued only while the queue is within the replay budget
   * (else it waits for the writer), so a resume larger than the queue streams. Live
   * publications meanwhile wait in `pending`; they are flushed, without duplicates, at the end.
   */
  async #deliverCatchUp(
    subscriber: Subscriber,
    channel: string,
    state: SubscriberState,
    epoch: string,
    lastId: number,
    fresh: boolean,
  ): Promise<void> {
    if (state.pending === null || state.busy) return; // another catch-up got here first
    state.busy = true;
    try {
      const wanted = state.joined ? { epoch: state.epoch, id: state.lastId } : state.since;
      let recovered: boolean | undefined;
      let position = lastId; // a plain subscribe, or a lost resume, starts at the live end
      let page: Entry[] = [];
      if (wanted !== undefined) {
        let reason = wanted.epoch !== epoch
          ? `epoch ${wanted.epoch} is not the current ${epoch} (the history was reset)`
          : wanted.id > lastId
          ? `id ${wanted.id} is ahead of the channel's last id ${lastId}`
          : null;
        if (reason === null && wanted.id < lastId) {
          page = await this.#page(channel, wanted.id + 1);
          if (!this.#current(channel, subscriber, state)) return;
          if (page[0]?.id !== wanted.id + 1) {
            reason = `history no longer holds the messages after ${wanted.id}`;
            page = [];
          }
        }
        recovered = reason === null;
        if (reason === null) position = wanted.id;
        else subscriber.sendText(notices.lost(channel, epoch, lastId, reason));
      }
      if (!state.joined) subscriber.sendText(notices.subscribed(channel, epoch, lastId, recovered));
      state.joined = true;
      state.since = undefined;
      state.epoch = epoch;
      state.lastId = position;
      state.fresh = fresh;
      while (page.length > 0) {
        for (let i = 0; i < page.length; i++) {
          const entry = page[i];
          if (entry.id <= state.lastId) continue;
          if (entry.id > state.lastId + 1) break; // trimmed meanwhile: the flush finds the hole
          const queued = subscriber.queuedBytes;
          if (queued > 0 && queued + entry.frame.length > replayBudget(subscriber)) {
            await this.#drained(subscriber, state);
            if (!this.#current(channel, subscriber, state) || this.#closed) return;
            i--; // this entry again, against the drained queue
            continue;
          }
          if (!subscriber.sendFrame(entry.frame)) return; // closed: it left every channel
          state.lastId = entry.id;
        }
        if (page.length < PAGE || page.at(-1)!.id > state.lastId) break;
        page = await this.#page(channel, state.lastId + 1);
        if (!this.#current(channel, subscriber, state)) return;
      }
      const pending = state.pending;
      state.pending = null;
      if (!this.#sendInOrder(subscriber, state, pending)) {
        // A hole between history and the live buffer: fetch it in another round.
        this.#track(this.#catchUp(channel));
      }
    } finally {
      state.busy = false;
    }
  }
}
