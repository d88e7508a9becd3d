/**
 * The channel engine the endpoints talk to: local subscriptions and fan-out on top of a
 * {@linkcode Broker} (memory or Redis), with {@linkcode Recovery} deciding every resume.
 *
 * @module
 */
import type { Logger } from "../log.ts";
import type { ChannelHub, HubStats } from "./channel_hub.ts";
import type { Broker, Position, Publication } from "./broker.ts";
import { Recovery } from "./recovery.ts";
import { LocalSubscriptions, type Subscriber } from "./subscriptions.ts";

/**
 * Channels for the push endpoint and the publish API, whatever broker holds them.
 *
 * @example
 * ```ts
 * const hub = new Hub(new MemoryBroker({ historySize: 100, historyBytes: 1 << 20 }));
 * hub.subscribe(client, "news");
 * hub.publish("news", { kind: "text", text: "hello" }); // { epoch, id: 1, delivered: 1 }
 * ```
 */
export class Hub<B extends Broker = Broker> implements ChannelHub {
  /** Where publications are numbered, stored and delivered. */
  readonly broker: B;
  readonly #logger: Logger | undefined;
  readonly #local = new LocalSubscriptions();
  readonly #recovery: Recovery;

  /** Creates the engine on `broker` (attaching to its events); `logger` hears of gaps. */
  constructor(broker: B, logger?: Logger) {
    this.broker = broker;
    this.#logger = logger;
    this.#recovery = new Recovery({ broker, local: this.#local, logger });
    broker.attach({
      onPublication: (channel, id, frame) =>
        this.#local.fanOut(channel, id, frame, (subscriber, expected) => {
          this.#logger?.warn("redis.gap", { channel, client: subscriber.id, expected, got: id });
          this.#recovery.catchUp(channel);
        }),
      // Hold live publications from now on: after an outage they must pass the catch-up's
      // checks (a wiped Redis restarts ids at 1, which would otherwise look like duplicates).
      onInterrupted: () => this.#local.holdAll(),
      // Live delivery is in place again: catching every local client up from history leaves
      // no gap (publications may have been missed meanwhile, so everyone catches up).
      onRestored: () => {
        for (const channel of [...this.#local.channels()]) this.#recovery.catchUp(channel);
      },
    });
  }

  /** Every channel with local subscribers and how many it has (the management API's list). */
  channels(): { channel: string; subscribers: number }[] {
    return [...this.#local.channels()].map((channel) => ({
      channel,
      subscribers: this.#local.count(channel),
    }));
  }

  /** Publishes `data` on `channel` (see {@linkcode Broker.publish}). */
  publish(channel: string, data: Publication): ReturnType<B["publish"]> {
    // The broker's own answer type: a memory hub's publish is synchronous.
    return this.broker.publish(channel, data) as ReturnType<B["publish"]>;
  }

  /**
   * Subscribes `subscriber` to `channel`. Without `since`, it gets a `subscribed` notice, then
   * live publications. With `since`, the publications after it are replayed from history first;
   * when history no longer covers them (or the epoch is another history's), it gets a `lost`
   * notice instead, then live publications. Returns false when it was already subscribed.
   *
   * A replay is paced by the subscriber's writer: it queues at most half its queue limit at a
   * time and the next part when the queue has drained, so a resume larger than the queue
   * streams instead of dropping the client as a slow consumer.
   */
  subscribe(subscriber: Subscriber, channel: string, since?: Position): boolean {
    if (!this.#local.add(subscriber, channel, since)) return false;
    this.#recovery.catchUp(channel);
    return true;
  }

  /** Removes `subscriber` from `channel`; false when it was not subscribed. */
  unsubscribe(subscriber: Subscriber, channel: string): boolean {
    const left = this.#local.remove(subscriber, channel);
    if (left === "last") this.broker.unwatch(channel);
    return left !== null;
  }

  /** Removes `subscriber` from every channel (it disconnected). */
  unsubscribeAll(subscriber: Subscriber): void {
    for (const channel of this.#local.list(subscriber)) this.unsubscribe(subscriber, channel);
    this.#recovery.forget(subscriber);
  }

  /** The channels `subscriber` is in. */
  subscriptionsOf(subscriber: Subscriber): ReadonlySet<string> {
    return this.#local.subscriptionsOf(subscriber);
  }

  /** Numbers for metrics: channels, channels with local subscribers, history held here. */
  stats(): HubStats {
    const { channels, historyMessages, historyBytes } = this.broker.stats();
    return { channels, active: this.#local.size, historyMessages, historyBytes };
  }

  /** The broker's health. */
  health(): { status: "ok" | "degraded"; reason?: string } {
    return this.broker.health();
  }

  /** Stops retries and the broker, then waits for catch-ups in flight. */
  async close(): Promise<void> {
    this.#recovery.close();
    await this.broker.close();
    await this.#recovery.settled();
  }
}
