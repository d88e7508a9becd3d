/**
 * The in-process broker: ids, history rings and delivery in this process's memory.
 *
 * Everything here is synchronous — a publish delivers before it returns, and history is read
 * without waiting — so the engine can replay a resuming client's history and join it to the
 * live subscribers in one step, with no publication in between: resume is free of gaps and
 * duplicates without locks or sequence juggling.
 *
 * @module
 */
import { encodeTextFrame } from "../protocol/frame_encoder.ts";
import { clockMs } from "../clock.ts";
import {
  type Broker,
  type BrokerEvents,
  type BrokerStats,
  type ChannelState,
  envelope,
  type HistoryEntry,
  newEpoch,
  type Publication,
  type PublishResult,
} from "./broker.ts";
import { History } from "./history.ts";

/** Options of {@linkcode MemoryBroker}. */
export interface MemoryBrokerOptions {
  /** Publications kept per channel. */
  historySize: number;
  /** Bytes kept per channel. */
  historyBytes: number;
  /**
   * Drop a channel nobody watches whose newest publication is this many ms old, with its
   * history (0 or omitted = never).
   */
  historyTtl?: number;
  /** The epoch of this server run; random when omitted. */
  epoch?: string;
}

class Channel {
  readonly history: History;
  /** Whether the engine watches it (it has local subscribers): then it is never swept. */
  watched = false;
  /** When the newest publication happened ({@linkcode clockMs}); 0 before the first. */
  publishedAt = 0;
  constructor(size: number, bytes: number, lastId: number) {
    this.history = new History(size, bytes, lastId);
  }
}

/**
 * Channels, history rings and delivery in this process.
 *
 * @example
 * ```ts
 * const hub = new Hub(new MemoryBroker({ historySize: 100, historyBytes: 1 << 20 }));
 * hub.subscribe(client, "news");
 * hub.publish("news", { kind: "text", text: "hello" }); // { epoch, id: 1, delivered: 1 }
 * ```
 */
export class MemoryBroker implements Broker {
  /** This server run's epoch. */
  readonly epoch: string;
  readonly #options: MemoryBrokerOptions;
  readonly #channels = new Map<string, Channel>();
  #events: BrokerEvents | null = null;
  /**
   * The highest last id of any channel dropped for its TTL. A channel made again starts above
   * it: its ids then never repeat within the epoch, so a client's old position cannot pass for
   * a position in the new history (it gets a `lost` notice instead of the wrong replay).
   */
  #idFloor = 0;
  readonly #sweeper: ReturnType<typeof setInterval> | undefined;

  /** Creates an empty broker; with a `historyTtl`, one unref'd interval sweeps idle channels. */
  constructor(options: MemoryBrokerOptions) {
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

  /** Registers the engine's callbacks. */
  attach(events: BrokerEvents): void {
    this.#events = events;
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
   * Drops every channel that nobody watches and whose newest publication is at least
   * `historyTtl` old (`now` from {@linkcode clockMs}). The broker's interval calls this.
   */
  sweep(now: number = clockMs()): void {
    const ttl = this.#options.historyTtl ?? 0;
    if (ttl <= 0) return;
    for (const [name, ch] of this.#channels) {
      if (!ch.watched && now - ch.publishedAt >= ttl) this.#drop(name, ch);
    }
  }

  #drop(name: string, ch: Channel): void {
    this.#channels.delete(name);
    this.#idFloor = Math.max(this.#idFloor, ch.history.lastId);
  }

  /**
   * Assigns the next id, encodes the frame once, stores it in history and hands it to the
   * engine, which queues the same bytes to every local subscriber, before returning.
   */
  publish(channel: string, data: Publication): PublishResult {
    const ch = this.#channel(channel);
    const id = ch.history.nextId();
    const frame = encodeTextFrame(envelope(channel, this.epoch, id, data));
    ch.history.add(id, frame);
    ch.publishedAt = clockMs();
    const delivered = ch.watched ? this.#events?.onPublication(channel, id, frame) ?? 0 : 0;
    return { epoch: this.epoch, id, delivered };
  }

  /** The epoch and the channel's last id (making the channel, as a subscribe always did). */
  channelState(channel: string): ChannelState {
    return { epoch: this.epoch, lastId: this.#channel(channel).history.lastId, fresh: false };
  }

  /** Up to `limit` entries after `id` from the ring (from its oldest when `id + 1` is gone). */
  historyAfter(channel: string, id: number, limit: number): HistoryEntry[] {
    const history = this.#channels.get(channel)?.history;
    if (history === undefined) return [];
    const entries: HistoryEntry[] = [];
    for (let next = Math.max(id + 1, history.oldestId); next <= history.lastId; next++) {
      if (entries.length === limit) break;
      entries.push({ id: next, frame: history.frame(next)! });
    }
    return entries;
  }

  /** Marks the channel listened: publications reach the engine, and the sweep spares it. */
  watch(channel: string): void {
    this.#channel(channel).watched = true;
  }

  /** No local subscriber is left: the sweep may drop it (at once when never published to). */
  unwatch(channel: string): void {
    const ch = this.#channels.get(channel);
    if (!ch) return;
    ch.watched = false;
    // A channel nobody listens to and nobody ever published to holds nothing worth keeping.
    if (ch.publishedAt === 0) this.#drop(channel, ch);
  }

  /** Nothing here fails; were it to, retrying would not help. */
  retryDelay(): null {
    return null;
  }

  /** Channels and the history held in this process. */
  stats(): BrokerStats {
    let historyMessages = 0;
    let historyBytes = 0;
    for (const ch of this.#channels.values()) {
      historyMessages += ch.history.size;
      historyBytes += ch.history.bytes;
    }
    return { channels: this.#channels.size, historyMessages, historyBytes };
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
