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
import {
  type ChannelHub,
  envelope,
  type HubStats,
  newEpoch,
  notices,
  type Position,
  type Publication,
  type PublishResult,
  type Subscriber,
  SubscriptionIndex,
} from "./channel_hub.ts";
import { History } from "./history.ts";

/** Options of {@linkcode Hub}. */
export interface HubOptions {
  /** Publications kept per channel. */
  historySize: number;
  /** Bytes kept per channel. */
  historyBytes: number;
  /** The epoch of this server run; random when omitted. */
  epoch?: string;
}

class Channel {
  readonly subscribers = new Set<Subscriber>();
  readonly history: History;
  constructor(size: number, bytes: number) {
    this.history = new History(size, bytes);
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

  /** Creates an empty hub. */
  constructor(options: HubOptions) {
    this.#options = options;
    this.epoch = options.epoch ?? newEpoch();
  }

  #channel(name: string): Channel {
    let channel = this.#channels.get(name);
    if (!channel) {
      channel = new Channel(this.#options.historySize, this.#options.historyBytes);
      this.#channels.set(name, channel);
    }
    return channel;
  }

  /**
   * Publishes `data` on `channel`: assigns the next id, encodes the frame once, stores it in
   * history and queues the same bytes to every subscriber, in publish order.
   */
  publish(channel: string, data: Publication): PublishResult {
    const ch = this.#channel(channel);
    const id = ch.history.nextId();
    const frame = encodeTextFrame(envelope(channel, this.epoch, id, data));
    ch.history.add(id, frame);
    let delivered = 0;
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
   */
  subscribe(subscriber: Subscriber, channel: string, since?: Position): boolean {
    if (!this.#subscriptions.add(subscriber, channel)) return false;
    const ch = this.#channel(channel);
    const lastId = ch.history.lastId;
    if (since === undefined) {
      subscriber.sendText(notices.subscribed(channel, this.epoch, lastId));
    } else {
      const recovery = since.epoch === this.epoch ? ch.history.since(since.id) : {
        recovered: false as const,
        reason: `epoch ${since.epoch} is not the current ${this.epoch} (server restarted)`,
      };
      if (recovery.recovered) {
        subscriber.sendText(notices.subscribed(channel, this.epoch, lastId, true));
        for (const entry of recovery.entries) if (!subscriber.sendFrame(entry.frame)) break;
      } else {
        subscriber.sendText(notices.lost(channel, this.epoch, lastId, recovery.reason));
        subscriber.sendText(notices.subscribed(channel, this.epoch, lastId, false));
      }
    }
    // The replay may have closed it (a slow consumer), which already unsubscribed it everywhere:
    // joining now would keep a closed client in the channel for good.
    if (this.#subscriptions.has(subscriber, channel)) ch.subscribers.add(subscriber);
    return true;
  }

  /** Removes `subscriber` from `channel`; false when it was not subscribed. */
  unsubscribe(subscriber: Subscriber, channel: string): boolean {
    if (!this.#subscriptions.remove(subscriber, channel)) return false;
    const ch = this.#channels.get(channel);
    if (ch) {
      ch.subscribers.delete(subscriber);
      // A channel nobody listens to and nobody ever published to holds nothing worth keeping.
      if (ch.subscribers.size === 0 && ch.history.lastId === 0) this.#channels.delete(channel);
    }
    return true;
  }

  /** Removes `subscriber` from every channel (it disconnected). */
  unsubscribeAll(subscriber: Subscriber): void {
    for (const channel of this.#subscriptions.list(subscriber)) {
      this.unsubscribe(subscriber, channel);
    }
  }

  /** Numbers for metrics: channels, channels with subscribers, history messages and bytes. */
  stats(): HubStats {
    let active = 0;
    let historyMessages = 0;
    let historyBytes = 0;
    for (const ch of this.#channels.values()) {
      if (ch.subscribers.size > 0) active++;
      historyMessages += ch.history.size;
      historyBytes += ch.history.bytes;
    }
    return { channels: this.#channels.size, active, historyMessages, historyBytes };
  }

  /** Always "ok": nothing outside this process can fail. */
  health(): { status: "ok" } {
    return { status: "ok" };
  }

  /** Nothing to stop. */
  close(): Promise<void> {
    return Promise.resolve();
  }
}
