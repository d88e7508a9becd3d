/**
 * Local subscriptions: what the engine needs of a client, and which channels each client is in.
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
