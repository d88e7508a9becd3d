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
import { type Presence, type PresenceMember, userOfSubject } from "./presence.ts";

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
  readonly #presence: Presence | null;

  /**
   * Creates the engine on `broker` (attaching to its events); `logger` hears of gaps; with
   * `presence`, the channels it keeps track their members (`--presence`).
   */
  constructor(broker: B, logger?: Logger, presence?: Presence) {
    this.broker = broker;
    this.#logger = logger;
    this.#presence = presence ?? null;
    // A notice about a user goes to every joined subscriber but that user's own connections
    // (a copy of the list: a send may drop a slow consumer, which leaves the channel). A refusal
    // decided in Redis takes the user's connections out of the channel, each told why.
    presence?.attach((channel, text, user) => {
      for (const subscriber of [...this.#local.subscribers(channel, true)]) {
        if (this.userOf(subscriber) !== user) subscriber.sendText(text);
      }
    }, (channel, user, error) => {
      for (const subscriber of [...this.#local.subscribers(channel)]) {
        if (this.userOf(subscriber) !== user || !this.unsubscribe(subscriber, channel)) continue;
        this.#logger?.info("presence.refused", { client: subscriber.id, channel });
        subscriber.sendText(JSON.stringify({ error, channel }));
      }
    }, broker.instance);
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
   *
   * In a channel that keeps presence, a new member beyond `--max-presence` is refused: the
   * subscriber gets `{"error":…,"channel":…}` (sent here, so every transport tells it) and
   * the answer is false, as when it was already subscribed.
   */
  subscribe(subscriber: Subscriber, channel: string, since?: Position): boolean {
    if (this.#local.has(subscriber, channel)) return false;
    const refusal = this.#presence?.refusal(subscriber, channel);
    if (refusal) {
      this.#logger?.info("presence.refused", { client: subscriber.id, channel });
      subscriber.sendText(JSON.stringify({ error: refusal, channel }));
      return false;
    }
    this.#local.add(subscriber, channel, since);
    this.#presence?.added(subscriber, channel);
    this.#recovery.catchUp(channel);
    return true;
  }

  /** Removes `subscriber` from `channel`; false when it was not subscribed. */
  unsubscribe(subscriber: Subscriber, channel: string): boolean {
    const left = this.#local.remove(subscriber, channel);
    if (left === null) return false;
    this.#presence?.removed(subscriber, channel);
    if (left === "last") this.broker.unwatch(channel);
    return true;
  }

  /**
   * The members of `channel` (`GET /presence`), cluster-wide with Redis; null when it keeps no
   * presence (not matched by `--presence`).
   */
  presenceOf(channel: string): PresenceMember[] | Promise<PresenceMember[]> | null {
    return this.#presence?.list(channel) ?? null;
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

  /** See {@linkcode ChannelHub.userOf}: named with the broker's instance id, when it has one. */
  userOf(subscriber: Pick<Subscriber, "id" | "identity">): string {
    return userOfSubject(subscriber, this.broker.instance);
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
    // Before the broker: with Redis, this instance's entries leave through its connection.
    await this.#presence?.close();
    await this.broker.close();
    await this.#recovery.settled();
  }
}
