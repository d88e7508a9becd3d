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
import { History } from "./history.ts";

/** What the hub needs of a client. */
export interface Subscriber {
  /** A process-unique id. */
  readonly id: number;
  /** Queues an encoded frame; false when the client is gone or was dropped as slow. */
  sendFrame(frame: Uint8Array): boolean;
  /** Queues a text message. */
  sendText(text: string): boolean;
}

/** The data of one publication, as the publish API received it. */
export type Publication =
  | { kind: "text"; text: string }
  | { kind: "json"; json: string }
  | { kind: "binary"; bytes: Uint8Array };

/** A resume position: the epoch and the last id a client saw. */
export interface Position {
  /** The server run the id belongs to. */
  epoch: string;
  /** The last id received. */
  id: number;
}

/** Options of {@linkcode Hub}. */
export interface HubOptions {
  /** Publications kept per channel. */
  historySize: number;
  /** Bytes kept per channel. */
  historyBytes: number;
  /** The epoch of this server run; random when omitted. */
  epoch?: string;
}

/** A channel name: 1–64 of `A–Z a–z 0–9 _ - .` (no `:` or `,`, which separate positions). */
export const CHANNEL_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

/** Whether `name` is a valid channel name (see {@linkcode CHANNEL_NAME}). */
export function isValidChannelName(name: string): boolean {
  return CHANNEL_NAME.test(name);
}

/** Parses "EPOCH:ID" into a {@linkcode Position}, or null when malformed. */
export function parsePosition(text: string): Position | null {
  const m = /^([A-Za-z0-9]{1,32}):(\d{1,15})$/.exec(text);
  return m ? { epoch: m[1], id: Number(m[2]) } : null;
}

/** A fresh random epoch: 8 base-36 characters. */
export function newEpoch(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return [...bytes].map((b) => (b % 36).toString(36)).join("");
}

class Channel {
  readonly subscribers = new Set<Subscriber>();
  readonly history: History;
  constructor(size: number, bytes: number) {
    this.history = new History(size, bytes);
  }
}

/** The envelope of a publication, built once per publish. */
export function envelope(channel: string, epoch: string, id: number, data: Publication): string {
  const head = `{"channel":${JSON.stringify(channel)},"epoch":"${epoch}","id":${id},"data":`;
  switch (data.kind) {
    case "text":
      return head + JSON.stringify(data.text) + "}";
    case "json":
      return head + data.json + "}";
    case "binary":
      return head + `"${data.bytes.toBase64()}","encoding":"base64"}`;
  }
}

/**
 * The channel registry.
 *
 * @example
 * ```ts
 * const hub = new Hub({ historySize: 100, historyBytes: 1 << 20 });
 * hub.subscribe(client, "news");
 * hub.publish("news", { kind: "text", text: "hello" }); // { id: 1, delivered: 1 }
 * ```
 */
export class Hub {
  /** This server run's epoch. */
  readonly epoch: string;
  readonly #options: HubOptions;
  readonly #channels = new Map<string, Channel>();
  readonly #subscriptions = new Map<Subscriber, Set<string>>();

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
  publish(channel: string, data: Publication): { id: number; delivered: number } {
    const ch = this.#channel(channel);
    const id = ch.history.nextId();
    const frame = encodeTextFrame(envelope(channel, this.epoch, id, data));
    ch.history.add(id, frame);
    let delivered = 0;
    for (const subscriber of ch.subscribers) {
      if (subscriber.sendFrame(frame)) delivered++;
    }
    return { id, delivered };
  }

  /** The channels `subscriber` is in. */
  subscriptionsOf(subscriber: Subscriber): ReadonlySet<string> {
    return this.#subscriptions.get(subscriber) ?? new Set();
  }

  /**
   * Subscribes `subscriber` to `channel`. Without `since`, it gets a `subscribed` notice, then
   * live publications. With `since`, the publications after it are replayed from history first;
   * when history no longer covers them (or the epoch is another run's), it gets a `lost` notice
   * instead, then live publications. Returns false when it was already subscribed.
   */
  subscribe(subscriber: Subscriber, channel: string, since?: Position): boolean {
    let mine = this.#subscriptions.get(subscriber);
    if (mine?.has(channel)) return false;
    const ch = this.#channel(channel);
    const position = { channel, epoch: this.epoch, id: ch.history.lastId };
    if (since === undefined) {
      subscriber.sendText(JSON.stringify({ notice: "subscribed", ...position }));
    } else {
      const recovery = since.epoch === this.epoch ? ch.history.since(since.id) : {
        recovered: false as const,
        reason: `epoch ${since.epoch} is not the current ${this.epoch} (server restarted)`,
      };
      if (recovery.recovered) {
        subscriber.sendText(JSON.stringify({ notice: "subscribed", ...position, recovered: true }));
        for (const entry of recovery.entries) subscriber.sendFrame(entry.frame);
      } else {
        subscriber.sendText(
          JSON.stringify({ notice: "lost", ...position, reason: recovery.reason }),
        );
        subscriber.sendText(
          JSON.stringify({ notice: "subscribed", ...position, recovered: false }),
        );
      }
    }
    ch.subscribers.add(subscriber);
    if (!mine) this.#subscriptions.set(subscriber, mine = new Set());
    mine.add(channel);
    return true;
  }

  /** Removes `subscriber` from `channel`; false when it was not subscribed. */
  unsubscribe(subscriber: Subscriber, channel: string): boolean {
    const mine = this.#subscriptions.get(subscriber);
    if (!mine?.delete(channel)) return false;
    if (mine.size === 0) this.#subscriptions.delete(subscriber);
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
    for (const channel of [...this.subscriptionsOf(subscriber)]) {
      this.unsubscribe(subscriber, channel);
    }
  }

  /** Numbers for metrics: channels, channels with subscribers, history messages and bytes. */
  stats(): { channels: number; active: number; historyMessages: number; historyBytes: number } {
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
}
