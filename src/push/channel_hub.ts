/**
 * What the endpoints see of the channel engine — the push handler and the publish API alike —
 * and the names and positions they parse.
 *
 * @module
 */
import type { Position, Publication, PublishResult } from "./broker.ts";
import type { Subscriber } from "./subscriptions.ts";

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

/** The channel engine the push endpoint and the publish API talk to. */
export interface ChannelHub {
  /** Publishes `data` on `channel`; rejects with {@linkcode HubUnavailableError} when it cannot. */
  publish(channel: string, data: Publication): PublishResult | Promise<PublishResult>;
  /**
   * Subscribes `subscriber`: a `subscribed` notice then live publications; with `since`, the
   * publications after it first, or a `lost` notice. False when already subscribed, or when
   * refused (a new presence member beyond `--max-presence`: the subscriber was sent the error).
   */
  subscribe(subscriber: Subscriber, channel: string, since?: Position): boolean;
  /** Removes `subscriber` from `channel`; false when it was not subscribed. */
  unsubscribe(subscriber: Subscriber, channel: string): boolean;
  /** Removes `subscriber` from every channel. */
  unsubscribeAll(subscriber: Subscriber): void;
  /** The channels `subscriber` is in. */
  subscriptionsOf(subscriber: Subscriber): ReadonlySet<string>;
  /**
   * The user `subscriber` is — its token's `sub`, or `anon:<client id>` without one, with
   * `@<instance>` after it when instances share the broker (Redis) — as presence lists it and as
   * the session registries key it, so `POST /disconnect?user=` reaches what `GET /presence` names.
   */
  userOf(subscriber: Pick<Subscriber, "id" | "identity">): string;
  /** Numbers for metrics. */
  stats(): HubStats;
  /** "ok", or "degraded" with the reason (e.g. Redis unreachable). */
  health(): { status: "ok" | "degraded"; reason?: string };
  /** Stops background work (connections, timers). */
  close(): Promise<void>;
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
