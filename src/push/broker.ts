/**
 * The broker interface (centrifuge's split): where publications are numbered, stored and
 * delivered — in this process or in Redis — and the envelope every broker stores and sends.
 *
 * @module
 */

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

/** Thrown by a publish when the engine cannot take it now (Redis down): the API answers 503. */
export class HubUnavailableError extends Error {
  /** Creates the error with a message for the publisher. */
  constructor(message: string) {
    super(message);
    this.name = "HubUnavailableError";
  }
}

/** A fresh random epoch: 8 base-36 characters. */
export function newEpoch(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return [...bytes].map((b) => (b % 36).toString(36)).join("");
}

/**
 * The part of the envelope after `"data":` — the JSON string, the JSON value, or base64 with
 * its encoding — and the closing brace.
 */
function envelopeTail(data: Publication): string {
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
 * The envelope of a publication with its epoch and id left out: the text before the epoch,
 * between epoch and id, and after the id. Every broker fills it in, so the envelope's shape is
 * written here only; the Redis script just joins `[0] .. epoch .. [1] .. id .. [2]` (only Redis
 * knows the epoch and the next id when it runs).
 */
export function envelopeTemplate(
  channel: string,
  data: Publication,
): [string, string, string] {
  return [
    `{"channel":${JSON.stringify(channel)},"epoch":"`,
    `","id":`,
    `,"data":${envelopeTail(data)}`,
  ];
}

/**
 * The envelope of a publication, built once per publish:
 * `{"channel":…,"epoch":…,"id":…,"data":…}` (plus `"encoding":"base64"` for binary data).
 */
export function envelope(channel: string, epoch: string, id: number, data: Publication): string {
  const [head, middle, tail] = envelopeTemplate(channel, data);
  return head + epoch + middle + id + tail;
}

/** One stored publication. */
export interface HistoryEntry {
  /** The publication id within its channel (1, 2, 3 …). */
  id: number;
  /** The encoded WebSocket frame that subscribers received. */
  frame: Uint8Array;
}

/** Where a channel stands now. */
export interface ChannelState {
  /** The epoch its ids belong to. */
  epoch: string;
  /** Its newest id (0, or the id floor, before its first publication). */
  lastId: number;
  /**
   * It has no id counter (new, or expired in Redis): its first publication's id, whatever it
   * is (the floor may move meanwhile), is where a subscriber starts, not a gap.
   */
  fresh: boolean;
}

/** What a broker tells the engine. */
export interface BrokerEvents {
  /**
   * A publication on a watched channel, in id order per channel, framed once. Returns how many
   * local subscribers it was queued to (the memory broker reports that as `delivered`).
   */
  onPublication(channel: string, id: number, frame: Uint8Array): number;
  /** Publications may be missed from now on (a connection dropped): hold live ones. */
  onInterrupted(): void;
  /** Delivery is back in place: every watched channel must catch up from history. */
  onRestored(): void;
}

/** A broker's numbers for metrics. */
export interface BrokerStats {
  /** Channels this process knows. */
  channels: number;
  /** Publications held in this process's memory. */
  historyMessages: number;
  /** Bytes held in this process's memory. */
  historyBytes: number;
}

/**
 * Where publications go and history lives: in this process ({@linkcode MemoryBroker}) or in
 * Redis (`RedisBroker`). Each method returns its answer directly when it has it: the memory
 * broker never returns a promise, so subscribe, replay and join happen in one synchronous step
 * and no publication can fall between them.
 */
export interface Broker {
  /**
   * This instance's id among the instances sharing the broker (Redis: a UUID); absent when the
   * broker is this process's alone (memory). Anonymous users are named with it (`anon:<id>@…`),
   * client ids being unique in one process only.
   */
  readonly instance?: string;
  /** Registers the engine's callbacks (once, before anything is watched). */
  attach(events: BrokerEvents): void;
  /**
   * Assigns `channel`'s next id, stores the envelope in history and delivers it to every
   * watcher; rejects with {@linkcode HubUnavailableError} when it cannot take it now.
   */
  publish(channel: string, data: Publication): PublishResult | Promise<PublishResult>;
  /** Where `channel` stands now. */
  channelState(channel: string): ChannelState | Promise<ChannelState>;
  /**
   * Up to `limit` publications of `channel` with ids above `id`, oldest first. When history no
   * longer holds `id + 1`, the first entry is the oldest it holds (none when it holds none).
   */
  historyAfter(
    channel: string,
    id: number,
    limit: number,
  ): HistoryEntry[] | Promise<HistoryEntry[]>;
  /**
   * Starts delivering `channel`'s publications to `onPublication` (again: idempotent); resolves
   * once every publication from then on is sure to arrive.
   */
  watch(channel: string): void | Promise<void>;
  /** Stops delivering `channel` (no local subscriber is left). */
  unwatch(channel: string): void;
  /**
   * How long to wait before retrying a catch-up that failed with `err` (an error reply such as
   * OOM), or null when the broker recovers by itself and calls `onRestored` (a lost connection).
   */
  retryDelay(err: unknown, attempt: number): number | null;
  /** Numbers for metrics. */
  stats(): BrokerStats;
  /** "ok", or "degraded" with the reason. */
  health(): { status: "ok" | "degraded"; reason?: string };
  /** Stops background work. */
  close(): Promise<void>;
}
