/**
 * Channels: who is subscribed to what, publishing with history, and gap-free resume.
 *
 * Everything here is synchronous, so a publish can never run between a resuming client's history
 * replay and its joining the live subscribers: that is what makes resume free of gaps and
 * duplicates without locks or sequence juggling.
 *
 * @module
 */
import { encodeTextFrame } from "../protocol/frame_encoder.ts";
import type { ChannelHub, HubStats } from "./channel_hub.ts";
import {
  envelope,
  newEpoch,
  type Position,
  type Publication,
  type PublishResult,
} from "./broker.ts";
import { DrainWaiters, notices, replayBudget } from "./recovery.ts";
import { type Subscriber, SubscriptionIndex } from "./subscriptions.ts";
import { History } from "./history.ts";
import { clockMs } from "../clock.ts";

/** Options of {@linkcode Hub}. */
export interface HubOptions {
  /** Publications kept per channel. */
  historySize: number;
  /** Bytes kept per channel. */
  historyBytes: number;
  /**
   * Drop a channel with no subscribers whose newest publication is this many ms old, with its
   * history (0 or omitted = never).
   */
  historyTtl?: number;
  /** The epoch of this server run; random when omitted. */
  epoch?: string;
}

/** A resuming subscriber's place in history: the last id queued to it. */
interface Replay {
  cursor: number;
}

class Channel {
  /** Live subscribers: each publication is queued to them as it happens. */
  readonly subscribers = new Set<Subscriber>();
  /** Subscribers still replaying history (made on first use: most channels never have any). */
  replays: Map<Subscriber, Replay> | null = null;
  readonly history: History;
  /** When the newest publication happened ({@linkcode clockMs}); 0 before the first. */
  publishedAt = 0;
  constructor(size: number, bytes: number, lastId: number) {
    this.history = new History(size, bytes, lastId);
  }

  /** Whether anyone listens, live or replaying. */
  get listened(): boolean {
    return this.subscribers.size > 0 || this.replays !== null;
  }
}

/**
 * The in-process channel engine: channels, history and fan-out in this process's memory.
 *
 * @example
 * ```ts
 * const hub = new Hub({ historySize: 100, historyBytes: 1 << 20 });
 * hub.subscribe(client, "news");
 * hub.publish("news", { kind: "text", text: "hello" }); // { id: 1, delivered: 1 }
 * ```
 */
export class Hub implements ChannelHub {
  /** This server run's epoch. */
  readonly epoch: string;
  readonly #options: HubOptions;
  readonly #channels = new Map<string, Channel>();
  readonly #subscriptions = new SubscriptionIndex();
  readonly #drains = new DrainWaiters();
  /**
   * The highest last id of any channel dropped for its TTL. A channel made again starts above
   * it: its ids then never repeat within the epoch, so a client's old position cannot pass for
   * a position in the new history (it gets a `lost` notice instead of the wrong replay).
   */
  #idFloor = 0;
  readonly #sweeper: ReturnType<typeof setInterval> | undefined;

  /** Creates an empty hub; with a `historyTtl`, one unref'd interval sweeps idle channels. */
  constructor(options: HubOptions) {
    this.#options = options;
    this.epoch = options.epoch ?? newEpoch();
    const ttl = options.historyTtl ?? 0;
    if (ttl > 0) {
      // One sweep for all channels, every half TTL (at most a minute, which also keeps huge TTLs
      // within the timer's range): a channel goes between one and one and a half TTLs after
      // its last publication, with no timer per channel.
      const sweeper = setInterval(() => this.sweep(), Math.min(60_000, Math.max(10, ttl / 2)));
      Deno.unrefTimer(sweeper);
      this.#sweeper = sweeper;
    }
  }

  #channel(name: string): Channel {
    let channel = this.#channels.get(name);
    if (!channel) {
      const o = this.#options;
      channel = new Channel(o.historySize, o.historyBytes, this.#idFloor);
      this.#channels.set(name, channel);
    }
    return channel;
  }

  /**
   * Drops every channel that nobody listens to and whose newest publication is at least
   * `historyTtl` old (`now` from {@linkcode clockMs}). The hub's interval calls this.
   */
  sweep(now: number = clockMs()): void {
    const ttl = this.#options.historyTtl ?? 0;
    if (ttl <= 0) return;
    for (const [name, ch] of this.#channels) {
      if (!ch.listened && now - ch.publishedAt >= ttl) this.#drop(name, ch);
    }
  }

  #drop(name: string, ch: Channel): void {
    this.#channels.delete(name);
    this.#idFloor = Math.max(this.#idFloor, ch.history.lastId);
  }

  /**
   * Publishes `data` on `channel`: assigns the next id, encodes the frame once, stores it in
   * history and queues the same bytes to every live subscriber, in publish order. Subscribers
   * still replaying history read it from there when they reach it.
   */
  publish(channel: string, data: Publication): PublishResult {
    const ch = this.#channel(channel);
    const id = ch.history.nextId();
    const frame = encodeTextFrame(envelope(channel, this.epoch, id, data));
    ch.history.add(id, frame);
    ch.publishedAt = clockMs();
    let delivered = ch.replays?.size ?? 0;
    for (const subscriber of ch.subscribers) {
      if (subscriber.sendFrame(frame)) delivered++;
    }
    return { epoch: this.epoch, id, delivered };
  }

  /** The channels `subscriber` is in. */
  subscriptionsOf(subscriber: Subscriber): ReadonlySet<string> {
    return this.#subscriptions.of(subscriber);
  }

  /**
   * Subscribes `subscriber` to `channel`. Without `since`, it gets a `subscribed` notice, then
   * live publications. With `since`, the publications after it are replayed from history first;
   * when history no longer covers them (or the epoch is another run's), it gets a `lost` notice
   * instead, then live publications. Returns false when it was already subscribed.
   *
   * A replay is paced by the subscriber's writer: it queues at most half its queue limit at a
   * time and the next chunk when the queue has drained, so a resume larger than the queue
   * streams instead of dropping the client as a slow consumer. Until it reaches the newest
   * publication it reads new ones from history too; it joins the live subscribers in the same
   * synchronous step that sends the newest, so no publication falls between replay and join.
   */
  subscribe(subscriber: Subscriber, channel: string, since?: Position): boolean {
    if (!this.#subscriptions.add(subscriber, channel)) return false;
    const ch = this.#channel(channel);
    const lastId = ch.history.lastId;
    if (since === undefined) {
      subscriber.sendText(notices.subscribed(channel, this.epoch, lastId));
    } else {
      const reason = since.epoch === this.epoch
        ? ch.history.gap(since.id)
        : `epoch ${since.epoch} is not the current ${this.epoch} (server restarted)`;
      if (reason === null) {
        subscriber.sendText(notices.subscribed(channel, this.epoch, lastId, true));
        if (since.id < lastId) {
          const replay = { cursor: since.id };
          (ch.replays ??= new Map()).set(subscriber, replay);
          this.#replay(channel, ch, subscriber, replay);
          return true;
        }
      } else {
        subscriber.sendText(notices.lost(channel, this.epoch, lastId, reason));
        subscriber.sendText(notices.subscribed(channel, this.epoch, lastId, false));
      }
    }
    ch.subscribers.add(subscriber);
    return true;
  }

  /**
   * Queues history after `replay.cursor` up to the replay budget; then waits for the writer to
   * drain, or joins the live subscribers once the newest publication is queued. When history
   * evicted publications the replay had not reached, the subscriber gets a `lost` notice and
   * goes live from the newest.
   */
  #replay(name: string, ch: Channel, subscriber: Subscriber, replay: Replay): void {
    const history = ch.history;
    const budget = replayBudget(subscriber);
    while (replay.cursor < history.lastId) {
      const frame = history.frame(replay.cursor + 1);
      if (frame === undefined) {
        const reason = history.gap(replay.cursor)!;
        subscriber.sendText(notices.lost(name, this.epoch, history.lastId, reason));
        break;
      }
      const queued = subscriber.queuedBytes;
      if (queued > 0 && queued + frame.length > budget) {
        this.#drains.wait(subscriber, () => {
          // Still the same subscription (not left, or left and subscribed again meanwhile)?
          if (ch.replays?.get(subscriber) === replay) this.#replay(name, ch, subscriber, replay);
        });
        return;
      }
      // A refusal closed it, and closing unsubscribed it everywhere (the replay is gone).
      if (!subscriber.sendFrame(frame)) return;
      replay.cursor++;
    }
    ch.replays!.delete(subscriber);
    if (ch.replays!.size === 0) ch.replays = null;
    ch.subscribers.add(subscriber);
  }

  /** Removes `subscriber` from `channel`; false when it was not subscribed. */
  unsubscribe(subscriber: Subscriber, channel: string): boolean {
    if (!this.#subscriptions.remove(subscriber, channel)) return false;
    const ch = this.#channels.get(channel);
    if (ch) {
      ch.subscribers.delete(subscriber);
      if (ch.replays?.delete(subscriber) && ch.replays.size === 0) ch.replays = null;
      // A channel nobody listens to and nobody ever published to holds nothing worth keeping.
      if (!ch.listened && ch.publishedAt === 0) this.#drop(channel, ch);
    }
    return true;
  }

  /** Removes `subscriber` from every channel (it disconnected). */
  unsubscribeAll(subscriber: Subscriber): void {
    for (const channel of this.#subscriptions.list(subscriber)) {
      this.unsubscribe(subscriber, channel);
    }
    this.#drains.forget(subscriber);
  }

  /** Numbers for metrics: channels, channels with subscribers, history messages and bytes. */
  stats(): HubStats {
    let active = 0;
    let historyMessages = 0;
    let historyBytes = 0;
    for (const ch of this.#channels.values()) {
      if (ch.listened) active++;
      historyMessages += ch.history.size;
      historyBytes += ch.history.bytes;
    }
    return { channels: this.#channels.size, active, historyMessages, historyBytes };
  }

  /** Always "ok": nothing outside this process can fail. */
  health(): { status: "ok" } {
    return { status: "ok" };
  }

  /** Stops the TTL sweep. */
  close(): Promise<void> {
    clearInterval(this.#sweeper);
    return Promise.resolve();
  }
}
