/**
 * Local subscriptions: what the engine needs of a client, which channels each client is in,
 * each subscriber's place in each channel, and the fan-out of a publication to them — the same
 * frame object to every subscriber (encoded once by the broker; the client queues' batch cache
 * then joins identical runs once).
 *
 * @module
 */
import type { HistoryEntry, Position } from "./broker.ts";

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
  /** Who it is (a verified token's identity), for presence; null or absent without one. */
  readonly identity?: unknown;
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

/** One local subscriber's progress on one channel. */
export interface SubscriberState {
  /** Whose progress this is (kept here so the fan-out iterates values only). */
  readonly subscriber: Subscriber;
  /** The last id queued to it. */
  lastId: number;
  /** The epoch `lastId` belongs to. */
  epoch: string;
  /** Live publications held while it joins or catches up; null when it is live. */
  pending: HistoryEntry[] | null;
  /** Whether it got its `subscribed` notice. */
  joined: boolean;
  /** The position it asked to resume from, until it joined. */
  since?: Position;
  /** A catch-up is streaming history to it: other catch-ups leave it alone. */
  busy: boolean;
  /** The channel had no id counter when read: its next publication's id is where it starts. */
  fresh: boolean;
}

/**
 * Live publications held per subscriber while it catches up. Beyond this the oldest are dropped:
 * the catch-up reads them from history anyway, and a gap left behind triggers another round.
 */
const MAX_PENDING = 10_000;

/** Held publications kept for a subscriber whose catch-up is streaming (it reads the rest). */
export const STREAM_PENDING = 64;

/**
 * Queues `entries` (ascending ids) that follow `state.lastId` without a hole, skipping ids
 * already sent. At a hole it stops, keeps the rest in `state.pending` and returns false.
 */
export function deliverInOrder(
  subscriber: Subscriber,
  state: SubscriberState,
  entries: HistoryEntry[],
): boolean {
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

/** One channel's local subscribers. */
class LocalChannel {
  /**
   * The progress of the local subscribers that are not in the group (joining, catching up, or
   * live at another position). A live subscriber in the group has no state object of its own:
   * its position is the group's, and an object per subscriber is memory on every idle client.
   */
  readonly states = new Map<Subscriber, SubscriberState>();
  /**
   * The live subscribers that got exactly the ids up to {@linkcode LocalChannel.lastId}: the
   * fan-out's fast path, a plain loop of `sendFrame` as cheap as a set of sockets.
   */
  readonly group = new Set<Subscriber>();
  /**
   * The states joining or catching up (`pending` set): a join looks for these, and scanning
   * every state instead would make each of N joins cost N.
   */
  readonly joining = new Set<SubscriberState>();
  /** The last id the group got. */
  lastId = 0;
  /** The epoch of the group's ids. */
  epoch = "";
  /** The group's channel had no counter: its next id, whatever it is, continues it. */
  fresh = false;

  /** Whether the channel has no local subscriber left. */
  get empty(): boolean {
    return this.states.size === 0 && this.group.size === 0;
  }

  /**
   * Takes `subscriber` out of the group into a state of its own at the group's position;
   * undefined when it was not in the group.
   */
  ungroup(subscriber: Subscriber): SubscriberState | undefined {
    if (!this.group.delete(subscriber)) return undefined;
    const state: SubscriberState = {
      subscriber,
      lastId: this.lastId,
      epoch: this.epoch,
      pending: null,
      joined: true,
      busy: false,
      fresh: this.fresh,
    };
    this.states.set(subscriber, state);
    return state;
  }

  /** Puts a live `state` in the group when its position is the group's (or the group is empty). */
  regroup(state: SubscriberState): void {
    if (this.group.size === 0) {
      this.lastId = state.lastId;
      this.epoch = state.epoch;
      this.fresh = state.fresh;
    } else if (state.lastId !== this.lastId || state.fresh !== this.fresh) return;
    this.group.add(state.subscriber);
    this.states.delete(state.subscriber);
  }
}

/** The local subscribers of every channel, with their progress, and the channel index. */
export class LocalSubscriptions {
  readonly #channels = new Map<string, LocalChannel>();
  readonly #index = new SubscriptionIndex();

  /** Channels with local subscribers. */
  get size(): number {
    return this.#channels.size;
  }

  /** Channels with local subscribers. */
  channels(): IterableIterator<string> {
    return this.#channels.keys();
  }

  /** How many local subscribers `channel` has (joining, catching up or live). */
  count(channel: string): number {
    const local = this.#channels.get(channel);
    // A subscriber is either in the group or has a state of its own, never both.
    return local ? local.group.size + local.states.size : 0;
  }

  /**
   * The subscribers of `channel` that are joining or catching up (their `pending` is set),
   * with their progress.
   */
  catchingUp(channel: string): [Subscriber, SubscriberState][] {
    const local = this.#channels.get(channel);
    if (!local) return [];
    const found: [Subscriber, SubscriberState][] = [];
    for (const state of local.joining) {
      if (state.pending !== null) found.push([state.subscriber, state]);
    }
    return found;
  }

  /** Whether `state` is still `subscriber`'s subscription to `channel` (not left meanwhile). */
  current(channel: string, subscriber: Subscriber, state: SubscriberState): boolean {
    return this.#channels.get(channel)?.states.get(subscriber) === state;
  }

  /** `state` (pending flushed) is live now: it joins the fast path when it can. */
  live(channel: string, state: SubscriberState): void {
    if (state.pending !== null) return;
    const local = this.#channels.get(channel);
    local?.joining.delete(state);
    local?.regroup(state);
  }

  /** The channels `subscriber` is in. */
  subscriptionsOf(subscriber: Subscriber): ReadonlySet<string> {
    return this.#index.of(subscriber);
  }

  /** Whether `subscriber` is in `channel`. */
  has(subscriber: Subscriber, channel: string): boolean {
    return this.#index.has(subscriber, channel);
  }

  /** The subscribers of `channel`; with `joinedOnly`, those that got `subscribed` (or `lost`). */
  *subscribers(channel: string, joinedOnly = false): Generator<Subscriber> {
    const local = this.#channels.get(channel);
    if (!local) return;
    yield* local.group;
    for (const state of local.states.values()) {
      if (state.joined || !joinedOnly) yield state.subscriber;
    }
  }

  /** The channels `subscriber` is in, as a new array (safe to iterate while removing). */
  list(subscriber: Subscriber): string[] {
    return this.#index.list(subscriber);
  }

  /** Adds `subscriber` to `channel`, joining (live publications held); false when it was in. */
  add(subscriber: Subscriber, channel: string, since?: Position): boolean {
    if (!this.#index.add(subscriber, channel)) return false;
    let local = this.#channels.get(channel);
    if (!local) this.#channels.set(channel, local = new LocalChannel());
    const state: SubscriberState = {
      subscriber,
      lastId: 0,
      epoch: "",
      pending: [],
      joined: false,
      since,
      busy: false,
      fresh: false,
    };
    local.states.set(subscriber, state);
    local.joining.add(state);
    return true;
  }

  /**
   * Removes `subscriber` from `channel`: "left" when it was there, "last" when it was the
   * channel's last local subscriber, null when it was not subscribed.
   */
  remove(subscriber: Subscriber, channel: string): "left" | "last" | null {
    if (!this.#index.remove(subscriber, channel)) return null;
    const local = this.#channels.get(channel);
    if (local === undefined) return "left";
    if (!local.group.delete(subscriber)) {
      const state = local.states.get(subscriber);
      if (state !== undefined) local.joining.delete(state);
      local.states.delete(subscriber);
    }
    if (!local.empty) return "left";
    this.#channels.delete(channel);
    return "last";
  }

  /** From now on, every subscriber holds live publications until a catch-up checked them. */
  holdAll(): void {
    for (const local of this.#channels.values()) {
      for (const subscriber of [...local.group]) local.ungroup(subscriber);
      for (const state of local.states.values()) {
        state.pending ??= [];
        local.joining.add(state);
      }
    }
  }

  /**
   * Queues a publication of `channel` to each local subscriber: live ones get `frame` (the same
   * object for all) when it follows their last id; joining ones hold it. `onGap` hears of each
   * subscriber that missed publications before this one. Returns how many it was queued to.
   */
  fanOut(
    channel: string,
    id: number,
    frame: Uint8Array,
    onGap: (subscriber: Subscriber, expected: number) => void,
  ): number {
    const local = this.#channels.get(channel);
    if (!local) return 0;
    let delivered = 0;
    const group = local.group;
    if (group.size > 0) {
      if (id === local.lastId + 1 || (local.fresh && id > local.lastId)) {
        local.lastId = id;
        local.fresh = false;
        for (const subscriber of group) if (subscriber.sendFrame(frame)) delivered++;
      } else if (id > local.lastId) {
        // The whole group missed publications (Redis dropped pub/sub messages, e.g. across a
        // restart): each leaves it, and the loop below holds this one and reports the gap.
        for (const subscriber of [...group]) local.ungroup(subscriber);
      }
    }
    // The rest: joining or catching up, or live at another position than the group's.
    if (local.states.size === 0) return delivered;
    for (const state of local.states.values()) {
      if (state.pending !== null) {
        state.pending.push({ id, frame });
        delivered++;
        // A stream paced by a slow reader may run for long: it reads what it misses from
        // history anyway, so hold only the newest few for it, not 10,000 frames.
        if (state.pending.length > (state.busy ? STREAM_PENDING : MAX_PENDING)) {
          state.pending.shift();
        }
      } else if (id === state.lastId + 1 || (state.fresh && id > state.lastId)) {
        state.lastId = id;
        state.fresh = false;
        if (state.subscriber.sendFrame(frame)) delivered++;
        local.regroup(state);
      } else if (id > state.lastId) {
        // Publications were missed: hold this one; the catch-up fetches the missing ones.
        const expected = state.lastId + 1;
        state.pending = [{ id, frame }];
        local.joining.add(state);
        onGap(state.subscriber, expected);
      }
    }
    return delivered;
  }
}
