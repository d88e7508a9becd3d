/**
 * Recovery: THE place that decides whether a subscriber's resume is recovered or lost, words
 * the `subscribed` and `lost` notices, and streams the history it missed — for the memory and
 * the Redis broker alike, so what a client is told never depends on `--redis`.
 *
 * A catch-up: make sure the channel is watched (live publications now arrive, and are held for
 * every joining subscriber), read where the channel stands, decide, send the notices, stream
 * the missed history page by page at the pace of the subscriber's writer, then flush what was
 * held meanwhile, skipping ids already sent. With the memory broker every step answers at once,
 * so subscribe, replay and join run in one synchronous step; with Redis they wait for replies.
 *
 * @module
 */
import type { Logger } from "../log.ts";
import type { Broker, ChannelState, HistoryEntry, Position } from "./broker.ts";
import {
  deliverInOrder,
  type LocalSubscriptions,
  type Subscriber,
  type SubscriberState,
} from "./subscriptions.ts";

/** Why a resume cannot be honoured: one wording per situation, whatever the broker. */
export const reasons = {
  /** The position's epoch is not the channel's: its ids mean other messages now. */
  staleEpoch(wanted: string, current: string): string {
    return `epoch ${wanted} belongs to another history than the current ${current} ` +
      "(server restarted or history reset)";
  },
  /** The position is beyond anything published. */
  ahead(id: number, lastId: number): string {
    return `id ${id} is ahead of the channel's last id ${lastId}`;
  },
  /** History no longer holds what follows `after`; `oldest` is the first id it holds. */
  gone(after: number, oldest: number | undefined, lastId: number): string {
    if (oldest === undefined) {
      return `history holds no messages; ${lastId - after} message(s) after ${after} are gone`;
    }
    return `history holds ids ${oldest}..${Math.max(oldest, lastId)}; ${
      oldest - after - 1
    } message(s) after ${after} are gone`;
  },
};

/** The notices a subscriber gets. */
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

/**
 * Whether a resume from `wanted` can be decided without reading history: the reason it is lost
 * (another epoch, an id ahead), or null when history must tell (or nothing was missed).
 */
export function precheck(wanted: Position, now: ChannelState): string | null {
  if (wanted.epoch !== now.epoch) return reasons.staleEpoch(wanted.epoch, now.epoch);
  if (wanted.id > now.lastId) return reasons.ahead(wanted.id, now.lastId);
  return null;
}

/**
 * Whether history's first `page` after `after` continues it without a hole: null when it does,
 * else why the messages are lost.
 */
export function gapIn(after: number, page: readonly HistoryEntry[], lastId: number): string | null {
  return page[0]?.id === after + 1 ? null : reasons.gone(after, page[0]?.id, lastId);
}

/** History entries read at a time: a catch-up streams pages, paced by the writer. */
export const PAGE = 64;

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

/** Options of {@linkcode Recovery}. */
export interface RecoveryOptions {
  /** Where the channels and their history are. */
  broker: Broker;
  /** The local subscribers and their progress. */
  local: LocalSubscriptions;
  /** Where failed catch-ups are logged. */
  logger?: Logger;
}

/** Runs `next` with `value` — at once when it is not a promise — and `fail` on rejection. */
type When = <T>(value: T | Promise<T>, next: (v: T) => void, fail: (err: unknown) => void) => void;

/**
 * Catches the joining and interrupted subscribers of a channel up from history.
 *
 * @example
 * ```ts
 * const recovery = new Recovery({ broker, local });
 * local.add(subscriber, "news", { epoch: "e1", id: 41 });
 * recovery.catchUp("news"); // subscribed (recovered) + ids 42… or lost + subscribed
 * ```
 */
export class Recovery {
  readonly #broker: Broker;
  readonly #local: LocalSubscriptions;
  readonly #logger: Logger | undefined;
  readonly #drains = new DrainWaiters();
  readonly #tasks = new Set<Promise<void>>();
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();
  /** Channels with a catch-up retry scheduled: one per channel, however many joins failed. */
  readonly #retrying = new Set<string>();
  #closed = false;

  /** Creates the recovery of `options.local`'s subscribers from `options.broker`. */
  constructor(options: RecoveryOptions) {
    this.#broker = options.broker;
    this.#local = options.local;
    this.#logger = options.logger;
  }

  readonly #when: When = (value, next, fail) => {
    if (!(value instanceof Promise)) return next(value);
    const task = value.then(next).catch(fail);
    this.#tasks.add(task);
    task.finally(() => this.#tasks.delete(task));
  };

  /**
   * Brings the subscribers of `channel` that are joining or catching up (their `pending` is
   * set) up to date. Every one waits for the watch (at once when it is in place): only then are
   * the publications after the reads below sure to arrive live. An error reply (OOM,
   * READONLY…) is retried with backoff; a lost connection is retried by the broker's restore.
   */
  catchUp(channel: string, attempt = 0): void {
    const fail = (err: unknown) => this.#failed(channel, attempt, err);
    this.#when(this.#broker.watch(channel), () => {
      this.#when(this.#broker.channelState(channel), (now) => {
        for (const [subscriber, state] of this.#local.catchingUp(channel)) {
          if (state.pending === null || state.busy) continue; // another catch-up has it
          if (!this.#local.current(channel, subscriber, state)) continue; // left meanwhile
          this.#recover(subscriber, channel, state, now, fail);
        }
      }, fail);
    }, fail);
  }

  /** Forgets what waits for `subscriber`'s queue (it left every channel). */
  forget(subscriber: Subscriber): void {
    this.#drains.forget(subscriber);
  }

  /** Stops retries (call {@linkcode Recovery.settled} once the broker is closed). */
  close(): void {
    this.#closed = true;
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
  }

  /** Resolves once every catch-up in flight settled (after the broker closed). */
  async settled(): Promise<void> {
    while (this.#tasks.size > 0) await Promise.all(this.#tasks);
  }

  #failed(channel: string, attempt: number, err: unknown): void {
    for (const [, state] of this.#local.catchingUp(channel)) state.busy = false;
    const delay = this.#broker.retryDelay(err, attempt);
    if (delay === null || this.#closed) return;
    // An error reply leaves subscribers pending with no notice: try again, backing off.
    if (this.#retrying.has(channel)) return;
    this.#retrying.add(channel);
    this.#logger?.warn("redis.catch_up_failed", { channel, error: String(err), retry_ms: delay });
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      this.#retrying.delete(channel);
      if (!this.#closed) this.catchUp(channel, attempt + 1);
    }, delay);
    this.#timers.add(timer);
  }

  /**
   * One subscriber's decision: recovered (read its first page) or lost, from where it asked to
   * resume — or, once joined, from the last id it got (an interruption or a gap).
   */
  #recover(
    subscriber: Subscriber,
    channel: string,
    state: SubscriberState,
    now: ChannelState,
    fail: (err: unknown) => void,
  ): void {
    state.busy = true;
    const wanted = state.joined ? { epoch: state.epoch, id: state.lastId } : state.since;
    if (wanted === undefined) return this.#start(subscriber, channel, state, now, undefined, []);
    const reason = precheck(wanted, now);
    if (reason !== null || wanted.id === now.lastId) {
      return this.#start(subscriber, channel, state, now, { wanted, reason }, []);
    }
    this.#when(this.#broker.historyAfter(channel, wanted.id, PAGE), (page) => {
      if (!this.#local.current(channel, subscriber, state)) return;
      const gap = gapIn(wanted.id, page, now.lastId);
      this.#start(subscriber, channel, state, now, { wanted, reason: gap }, gap ? [] : page);
    }, fail);
  }

  /** The notices, then the stream from the decided position. */
  #start(
    subscriber: Subscriber,
    channel: string,
    state: SubscriberState,
    now: ChannelState,
    resume: { wanted: Position; reason: string | null } | undefined,
    page: HistoryEntry[],
  ): void {
    let position = now.lastId; // a plain subscribe, or a lost resume, starts at the live end
    if (resume !== undefined) {
      if (resume.reason === null) position = resume.wanted.id;
      else subscriber.sendText(notices.lost(channel, now.epoch, now.lastId, resume.reason));
    }
    if (!state.joined) {
      const recovered = resume === undefined ? undefined : resume.reason === null;
      subscriber.sendText(notices.subscribed(channel, now.epoch, now.lastId, recovered));
    }
    state.joined = true;
    state.since = undefined;
    state.epoch = now.epoch;
    state.lastId = position;
    state.fresh = now.fresh;
    this.#stream(subscriber, channel, state, page);
  }

  /**
   * Queues `page` while the subscriber's queue is within the replay budget; else waits for its
   * writer to drain and reads history again from where it got (what was evicted meanwhile is
   * then told as lost, as it would be had it been read later). At the end of history, flushes
   * the publications held meanwhile.
   */
  #stream(
    subscriber: Subscriber,
    channel: string,
    state: SubscriberState,
    page: HistoryEntry[],
  ): void {
    for (const entry of page) {
      if (entry.id <= state.lastId) continue;
      if (entry.id > state.lastId + 1) break; // trimmed meanwhile: the flush finds the hole
      const queued = subscriber.queuedBytes;
      if (queued > 0 && queued + entry.frame.length > replayBudget(subscriber)) {
        this.#drains.wait(subscriber, () => {
          // Still the same subscription (not left, or left and subscribed again meanwhile)?
          if (this.#closed || !this.#local.current(channel, subscriber, state)) return;
          this.#next(subscriber, channel, state);
        });
        return;
      }
      if (!subscriber.sendFrame(entry.frame)) return; // closed: it left every channel
      state.lastId = entry.id;
    }
    if (page.length === PAGE && page.at(-1)!.id <= state.lastId) {
      return this.#next(subscriber, channel, state);
    }
    const pending = state.pending ?? [];
    state.pending = null;
    state.busy = false;
    // A hole between history and the held publications: fetch it in another round.
    if (deliverInOrder(subscriber, state, pending)) this.#local.live(channel, state);
    else this.catchUp(channel);
  }

  /** The next page after what `subscriber` got. */
  #next(subscriber: Subscriber, channel: string, state: SubscriberState): void {
    this.#when(this.#broker.historyAfter(channel, state.lastId, PAGE), (page) => {
      if (this.#local.current(channel, subscriber, state)) {
        this.#stream(subscriber, channel, state, page);
      }
    }, (err) => this.#failed(channel, 0, err));
  }
}
