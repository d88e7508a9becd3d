/**
 * Presence (README, "Presence"): who is in a channel that keeps it (`--presence`), as users
 * rather than sockets. A member is a user — its token's `sub`, or `anon:<client id>` for a
 * client without one (`anon:<client id>@<instance>` with Redis, see {@linkcode userOfSubject}) —
 * and its FIRST connection to the channel joins, its LAST leaves, so a user with two tabs is one
 * member with two connections.
 *
 * The other subscribers of the channel get `{"notice":"join",…}` and `{"notice":"leave",…}`;
 * the joining user's own connections do not get its join (they got `subscribed`), as with
 * Centrifugo's join/leave, and nobody is left to get a user's leave. `--max-presence` bounds the
 * members of one channel: a new member beyond it is refused, a member's extra connection is not.
 *
 * In memory the table here is the whole truth. With Redis a {@linkcode SharedPresence}
 * (`redis_presence.ts`) is told of every local change and decides the cluster's joins and
 * leaves itself (a user may be on another instance already), sending the notices through
 * {@linkcode Presence.notify}.
 *
 * @module
 */
import type { Metrics } from "../metrics.ts";
import type { Identity } from "./auth.ts";
import type { ChannelPatterns } from "./channel_patterns.ts";
import { ANONYMOUS } from "./client_auth.ts";

/** One member as `GET /presence` lists it. */
export interface PresenceMember {
  /** The user (`sub`, or `anon:<client id>`, `anon:<client id>@<instance>` with Redis). */
  user: string;
  /** Its connections subscribed to the channel (on every instance, with Redis). */
  connections: number;
  /** The token's `info` claim, when it had one. */
  info?: Record<string, unknown>;
}

/** A join or a leave, as the notices say it (`info` as JSON text, for joins that have one). */
export interface PresenceChange {
  /** Which. */
  notice: "join" | "leave";
  /** The channel. */
  channel: string;
  /** The member. */
  user: string;
  /** The `info` claim as JSON text (joins only). */
  info?: string;
}

/** What presence needs of a subscriber: its id, and its identity when it has one. */
export interface PresenceSubject {
  /** A process-unique id. */
  readonly id: number;
  /** A verified token's {@linkcode Identity}; null or absent without one. */
  readonly identity?: unknown;
}

/**
 * The user `subject` is: its token's `sub`, or `anon:<client id>` without one. Client ids are
 * unique in one process only, so when several instances share presence (Redis) `instance` (this
 * one's id) is given and the name is `anon:<client id>@<its first 8 hex digits>`: client 5 of
 * instance A and client 5 of instance B are two members, and `POST /disconnect?user=` with the
 * name `GET /presence` lists reaches that one connection only. Every place that names a
 * subscriber (presence, the hub's filters, the session registries) goes through this with the
 * instance the hub's broker has (`Hub.userOf`), so they all agree.
 */
export function userOfSubject(subject: PresenceSubject, instance?: string): string {
  const identity = subject.identity as Identity | null | undefined;
  if (identity != null && identity !== ANONYMOUS) return identity.user;
  return instance === undefined
    ? `anon:${subject.id}`
    : `anon:${subject.id}@${instance.slice(0, 8)}`;
}

/** The member `subject` is: its user (see {@linkcode userOfSubject}) and its token's `info`. */
export function memberOf(subject: PresenceSubject, instance?: string): {
  user: string;
  info?: string;
} {
  const user = userOfSubject(subject, instance);
  const info = (subject.identity as Identity | null | undefined)?.info;
  return info === undefined ? { user } : { user, info };
}

/** The notice text of `change`. */
export function noticeText(change: PresenceChange): string {
  const { notice, channel, user } = change;
  let info: unknown;
  if (notice === "join" && change.info !== undefined) {
    try {
      info = JSON.parse(change.info);
    } catch {
      info = undefined; // relayed from Redis and not JSON: the join goes out without it
    }
  }
  return JSON.stringify(
    info === undefined ? { notice, channel, user } : {
      notice,
      channel,
      user,
      info,
    },
  );
}

/** One member's local entry. */
export interface LocalMember {
  /** Its local connections in the channel. */
  connections: number;
  /** Its `info` claim as JSON text (of the connection that joined). */
  info?: string;
}

/** The local members of every channel that keeps presence. */
export class PresenceTable {
  readonly #channels = new Map<string, Map<string, LocalMember>>();
  #members = 0;

  /** Members over every channel (the `push_presence_members` gauge). */
  get members(): number {
    return this.#members;
  }

  /** Channels with local members. */
  channels(): IterableIterator<[string, ReadonlyMap<string, LocalMember>]> {
    return this.#channels.entries();
  }

  /** Members of `channel`. */
  count(channel: string): number {
    return this.#channels.get(channel)?.size ?? 0;
  }

  /** `user`'s entry in `channel`, if it is a member. */
  get(channel: string, user: string): LocalMember | undefined {
    return this.#channels.get(channel)?.get(user);
  }

  /** One more connection of `user` in `channel`; true when it is the first (a join). */
  add(channel: string, user: string, info?: string): boolean {
    let members = this.#channels.get(channel);
    if (members === undefined) this.#channels.set(channel, members = new Map());
    const member = members.get(user);
    if (member !== undefined) {
      member.connections++;
      return false;
    }
    members.set(user, info === undefined ? { connections: 1 } : { connections: 1, info });
    this.#members++;
    return true;
  }

  /** One connection fewer; true when it was the last (a leave), false otherwise or unknown. */
  remove(channel: string, user: string): boolean {
    const members = this.#channels.get(channel);
    const member = members?.get(user);
    if (members === undefined || member === undefined) return false;
    if (--member.connections > 0) return false;
    members.delete(user);
    this.#members--;
    if (members.size === 0) this.#channels.delete(channel);
    return true;
  }

  /** The members of `channel`, as `GET /presence` lists them. */
  list(channel: string): PresenceMember[] {
    const members = this.#channels.get(channel);
    if (members === undefined) return [];
    return [...members].map(([user, m]) => listed(user, m.connections, m.info));
  }
}

/** A member for `GET /presence`, its `info` text parsed (left out when it is not JSON). */
export function listed(user: string, connections: number, info?: string): PresenceMember {
  if (info === undefined || info === "") return { user, connections };
  try {
    return { user, connections, info: JSON.parse(info) };
  } catch {
    return { user, connections };
  }
}

/** Presence shared by several instances (Redis): told of every local change. */
export interface SharedPresence {
  /** `user`'s local connections in `channel` changed to `member` (undefined: none left here). */
  changed(channel: string, user: string, member: LocalMember | undefined): void;
  /** The members of `channel` on every live instance. */
  list(channel: string): Promise<PresenceMember[]>;
  /** Stops refreshing; with `goodbye`, removes this instance's entries first. */
  close(goodbye?: boolean): Promise<void>;
}

/** Options of {@linkcode Presence}. */
export interface PresenceOptions {
  /** The channels that keep presence (`--presence`). */
  patterns: ChannelPatterns;
  /** The most members of one channel (`--max-presence`). */
  maxMembers: number;
  /** Where refusals are counted (`push_presence_refused_total`). */
  metrics?: Metrics;
}

/** The presence of every channel that keeps it, local table and notices. */
export class Presence {
  /** The local members. */
  readonly table: PresenceTable = new PresenceTable();
  readonly #options: PresenceOptions;
  #shared: SharedPresence | null = null;
  #deliver: (channel: string, text: string, user: string) => void = () => {};
  #evict: (channel: string, user: string, error: string) => void = () => {};
  #instance: string | undefined;

  /** Presence for the channels `options.patterns` matches. */
  constructor(options: PresenceOptions) {
    this.#options = options;
  }

  /**
   * The hub's local fan-out of a notice about `user` (not sent to `user`'s own connections), how
   * it takes `user`'s connections out of a channel with an error (a refusal decided in Redis),
   * and the instance id anonymous members are named with (its broker's, with Redis; see
   * {@linkcode userOfSubject}), so the table and the hub's filters use the same names.
   */
  attach(
    deliver: (channel: string, text: string, user: string) => void,
    evict: (channel: string, user: string, error: string) => void,
    instance?: string,
  ): void {
    this.#deliver = deliver;
    this.#evict = evict;
    this.#instance = instance;
  }

  /** Hands joins, leaves and the list to `shared` (Redis) from now on. */
  share(shared: SharedPresence): void {
    this.#shared = shared;
  }

  /** Whether `channel` keeps presence. */
  keeps(channel: string): boolean {
    return this.#options.patterns.matches(channel);
  }

  /** The most members of one channel (`--max-presence`). */
  get maxMembers(): number {
    return this.#options.maxMembers;
  }

  /**
   * Why `subject` may not subscribe to `channel` (it would be a new member beyond
   * `--max-presence` here), or null when it may. With Redis this checks this instance's members
   * only (they are the cluster's too); the cluster-wide check is the script's, which refuses
   * through {@linkcode Presence.refused} (a member elsewhere may add a connection here).
   */
  refusal(subject: PresenceSubject, channel: string): string | null {
    if (!this.keeps(channel)) return null;
    if (this.table.get(channel, userOfSubject(subject, this.#instance)) !== undefined) return null;
    if (this.table.count(channel) < this.#options.maxMembers) return null;
    return this.#refusalText(channel);
  }

  /**
   * Redis refused `user` as a new member of a full `channel`: its local connections there leave
   * it with the refusal error (they had not got `subscribed` yet: the script answers before the
   * catch-up's reads, on the same connection).
   */
  refused(channel: string, user: string): void {
    this.#evict(channel, user, this.#refusalText(channel));
  }

  #refusalText(channel: string): string {
    if (this.#options.metrics) this.#options.metrics.presenceRefused++;
    return `Too many members in ${channel}: at most ${this.#options.maxMembers} users keep ` +
      "presence in one channel (--max-presence).";
  }

  /** `subject` subscribed to `channel`: a member, or one more connection of one. */
  added(subject: PresenceSubject, channel: string): void {
    if (!this.keeps(channel)) return;
    const { user, info } = memberOf(subject, this.#instance);
    const joined = this.table.add(channel, user, info);
    if (this.#shared !== null) this.#shared.changed(channel, user, this.table.get(channel, user));
    else if (joined) this.notify({ notice: "join", channel, user, info });
  }

  /** `subject` left `channel` (unsubscribed or disconnected). */
  removed(subject: PresenceSubject, channel: string): void {
    if (!this.keeps(channel)) return;
    const user = userOfSubject(subject, this.#instance);
    if (this.table.get(channel, user) === undefined) return;
    const left = this.table.remove(channel, user);
    if (this.#shared !== null) this.#shared.changed(channel, user, this.table.get(channel, user));
    else if (left) this.notify({ notice: "leave", channel, user });
  }

  /** Sends `change`'s notice to the local subscribers of its channel (but the user's own). */
  notify(change: PresenceChange): void {
    this.#deliver(change.channel, noticeText(change), change.user);
  }

  /** The members of `channel`; null when it keeps no presence. */
  list(channel: string): PresenceMember[] | Promise<PresenceMember[]> | null {
    if (!this.keeps(channel)) return null;
    return this.#shared !== null ? this.#shared.list(channel) : this.table.list(channel);
  }

  /** Stops the shared part (saying goodbye: this instance's entries leave Redis). */
  async close(): Promise<void> {
    await this.#shared?.close(true);
  }
}
