/**
 * What every channel engine offers the endpoints — the in-process {@linkcode Hub} and the
 * Redis-backed `RedisHub` alike — and the pieces they share: names, positions, envelopes.
 *
 * @module
 */

/** What a hub needs of a client. */
export interface Subscriber {
  /** A process-unique id. */
  readonly id: number;
  /** Queues an encoded frame; false when the client is gone or was dropped as slow. */
  sendFrame(frame: Uint8Array): boolean;
  /** Queues a text message. */
  sendText(text: string): boolean;
  /** Data bytes waiting in its outgoing queue. */
  readonly queuedBytes: number;
  /** The most data bytes its queue holds before it is dropped as a slow consumer. */
  readonly maxQueueBytes: number;
  /**
   * Calls `callback` once, from its writer, when its queue has drained to a quarter of
   * {@linkcode Subscriber.maxQueueBytes} or less; a later call replaces an earlier one. Only call
   * it while data waits (the writer is busy): an idle writer never calls back. A replay paces
   * itself by this, so a resume larger than the queue streams instead of overflowing it.
   */
  onDrain(callback: () => void): void;
}

/**
 * How much of a subscriber's queue a history replay may fill: the rest stays free for its live
 * traffic (other channels, notices), which must not overflow because a replay filled the queue.
 */
export function replayBudget(subscriber: Subscriber): number {
  return subscriber.maxQueueBytes / 2;
}

/**
 * The replays waiting for each subscriber's queue to drain. A subscriber keeps one drain
 * callback, but a client may resume several channels at once: this runs all of them.
 */
export class DrainWaiters {
  readonly #waiting = new Map<Subscriber, (() => void)[]>();

  /** Runs `resume` once `subscriber`'s queue has drained (see `Subscriber.onDrain`). */
  wait(subscriber: Subscriber, resume: () => void): void {
    const list = this.#waiting.get(subscriber);
    if (list !== undefined) return void list.push(resume);
    this.#waiting.set(subscriber, [resume]);
    subscriber.onDrain(() => {
      const resumes = this.#waiting.get(subscriber) ?? [];
      this.#waiting.delete(subscriber);
      for (const r of resumes) r();
    });
  }

  /** Forgets what waits for `subscriber` (it left every channel). */
  forget(subscriber: Subscriber): void {
    this.#waiting.delete(subscriber);
  }
}

/** The data of one publication, as the publish API received it. */
export type Publication =
  | { kind: "text"; text: string }
  | { kind: "json"; json: string }
  | { kind: "binary"; bytes: Uint8Array };

/** A resume position: the epoch and the last id a client saw. */
export interface Position {
  /** The history the id belongs to (a server run, or a Redis dataset). */
  epoch: string;
  /** The last id received. */
  id: number;
}

/** What a publish did. */
export interface PublishResult {
  /** The epoch of the channel's ids. */
  epoch: string;
  /** The id given to the publication. */
  id: number;
  /**
   * Where it was queued: local subscribers for the in-process hub; server instances listening
   * to the channel for the Redis hub (each fans out to its own clients).
   */
  delivered: number;
}

/** Numbers for metrics. */
export interface HubStats {
  /** Channels known to this process. */
  channels: number;
  /** Channels with local subscribers. */
  active: number;
  /** Publications held in this process's history. */
  historyMessages: number;
  /** Bytes held in this process's history. */
  historyBytes: number;
}

/** Thrown by a publish when the engine cannot take it now (Redis down): the API answers 503. */
export class HubUnavailableError extends Error {
  /** Creates the error with a message for the publisher. */
  constructor(message: string) {
    super(message);
    this.name = "HubUnavailableError";
  }
}

/** The channel engine the push endpoint and the publish API talk to. */
export interface ChannelHub {
  /** Publishes `data` on `channel`; rejects with {@linkcode HubUnavailableError} when it cannot. */
  publish(channel: string, data: Publication): PublishResult | Promise<PublishResult>;
  /**
   * Subscribes `subscriber`: a `subscribed` notice then live publications; with `since`, the
   * publications after it first, or a `lost` notice. False when already subscribed.
   */
  subscribe(subscriber: Subscriber, channel: string, since?: Position): boolean;
  /** Removes `subscriber` from `channel`; false when it was not subscribed. */
  unsubscribe(subscriber: Subscriber, channel: string): boolean;
  /** Removes `subscriber` from every channel. */
  unsubscribeAll(subscriber: Subscriber): void;
  /** The channels `subscriber` is in. */
  subscriptionsOf(subscriber: Subscriber): ReadonlySet<string>;
  /** Numbers for metrics. */
  stats(): HubStats;
  /** "ok", or "degraded" with the reason (e.g. Redis unreachable). */
  health(): { status: "ok" | "degraded"; reason?: string };
  /** Stops background work (connections, timers). */
  close(): Promise<void>;
}

const NO_CHANNELS: ReadonlySet<string> = new Set();

/**
 * Which channels each subscriber is in: the bookkeeping every engine needs, whatever it does
 * with the channels themselves.
 */
export class SubscriptionIndex {
  // One channel is kept as the bare name: most clients are in one channel, and a Set per client
  // costs ~200 bytes on every idle connection.
  readonly #bySubscriber = new Map<Subscriber, string | Set<string>>();

  /** The channels `subscriber` is in (a shared empty set when none; a copy when one). */
  of(subscriber: Subscriber): ReadonlySet<string> {
    const channels = this.#bySubscriber.get(subscriber);
    if (channels === undefined) return NO_CHANNELS;
    return typeof channels === "string" ? new Set([channels]) : channels;
  }

  /** Whether `subscriber` is in `channel` (without making a set). */
  has(subscriber: Subscriber, channel: string): boolean {
    const channels = this.#bySubscriber.get(subscriber);
    return typeof channels === "string" ? channels === channel : channels?.has(channel) ?? false;
  }

  /** The channels `subscriber` is in, as a new array (safe to iterate while removing). */
  list(subscriber: Subscriber): string[] {
    const channels = this.#bySubscriber.get(subscriber);
    if (channels === undefined) return [];
    return typeof channels === "string" ? [channels] : [...channels];
  }

  /** Records `subscriber` in `channel`; false when it already was. */
  add(subscriber: Subscriber, channel: string): boolean {
    const channels = this.#bySubscriber.get(subscriber);
    if (channels === undefined) {
      this.#bySubscriber.set(subscriber, channel);
    } else if (typeof channels === "string") {
      if (channels === channel) return false;
      this.#bySubscriber.set(subscriber, new Set([channels, channel]));
    } else {
      if (channels.has(channel)) return false;
      channels.add(channel);
    }
    return true;
  }

  /** Forgets `subscriber` in `channel`; false when it was not there. */
  remove(subscriber: Subscriber, channel: string): boolean {
    const channels = this.#bySubscriber.get(subscriber);
    if (channels === undefined) return false;
    if (typeof channels === "string") {
      if (channels !== channel) return false;
      this.#bySubscriber.delete(subscriber);
      return true;
    }
    if (!channels.delete(channel)) return false;
    if (channels.size === 0) this.#bySubscriber.delete(subscriber);
    return true;
  }
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

/**
 * The part of the envelope after `"data":` — the JSON string, the JSON value, or base64 with
 * its encoding — and the closing brace. Shared so every engine builds identical envelopes.
 */
export function envelopeTail(data: Publication): string {
  switch (data.kind) {
    case "text":
      return JSON.stringify(data.text) + "}";
    case "json":
      return data.json + "}";
    case "binary":
      return `"${data.bytes.toBase64()}","encoding":"base64"}`;
  }
}

/**
 * The envelope of a publication, built once per publish:
 * `{"channel":…,"epoch":…,"id":…,"data":…}` (plus `"encoding":"base64"` for binary data).
 */
export function envelope(channel: string, epoch: string, id: number, data: Publication): string {
  return `{"channel":${JSON.stringify(channel)},"epoch":"${epoch}","id":${id},"data":` +
    envelopeTail(data);
}

/** The notices a subscriber gets, in one place so both engines word them alike. */
export const notices = {
  /** Subscribed; `recovered` is present only after a resume request. */
  subscribed(channel: string, epoch: string, id: number, recovered?: boolean): string {
    return JSON.stringify({ notice: "subscribed", channel, epoch, id, recovered });
  },
  /** Messages after the client's position cannot be replayed. */
  lost(channel: string, epoch: string, id: number, reason: string): string {
    return JSON.stringify({ notice: "lost", channel, epoch, id, reason });
  },
};
