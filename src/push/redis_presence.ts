/**
 * Presence shared by every instance through Redis (README, "Presence"). Per channel, in one
 * hash slot (`{C}`):
 *
 * - `push:{C}:presence` — a ZSET of `INSTANCE|USER` entries scored by when they expire;
 * - `push:{C}:presence:info` — a HASH `INSTANCE|USER` → `CONNECTIONS\nINFO` (INFO: the `info`
 *   claim's JSON text, or empty);
 * - `push:{C}:presence:users` — a HASH `USER` → how many instances hold an entry for it, so
 *   a join (0 → 1) and a leave (1 → 0) are decided cluster-wide, atomically, in one script.
 *
 * Each instance re-scores its own entries every {@linkcode PRESENCE_REFRESH_MS} to expire
 * {@linkcode PRESENCE_TTL_MS} later, and every script first removes the entries that expired
 * (an instance that died without saying goodbye), so a query costs O(members) and the data
 * cleans itself up: a dead instance's members vanish from `GET /presence` within the TTL, and the
 * leave notices of those that had no other connection are sent by the first survivor whose
 * refresh (or query) removes them, at most TTL + refresh after the last refresh of the dead one.
 * The keys themselves expire with the TTL when no instance refreshes them any more.
 *
 * The notices of the joins and leaves a script decides are PUBLISHed by that script on the
 * control channel (`push:control`, see `control.ts`, `"from":"redis"`), and every instance — the
 * one that ran it included — tells its subscribers when its subscription hands them over: so
 * every instance sees them in the order Redis decided them. (Publishing from TypeScript after the
 * reply, as once done, let two instances' PUBLISHes cross: a join then a leave decided by two
 * scripts could arrive as leave then join, and a third instance's subscribers ended believing the
 * user present.) They never go through the channel's stream: they take no id and stay out of
 * history.
 *
 * A removal whose script failed (Redis away) is kept, (channel, user), and sent again with every
 * refresh until one succeeds, so the user's leave comes soon after Redis is back rather than
 * when the entry expires; at most {@linkcode MAX_PRESENCE_RETRIES} are kept.
 *
 * @module
 */
import type { Logger } from "../log.ts";
import {
  listed,
  type LocalMember,
  type Presence,
  type PresenceMember,
  type SharedPresence,
} from "./presence.ts";

/** How often each instance re-scores its entries (and removes expired ones) by default. */
export const PRESENCE_REFRESH_MS = 5_000;

/** How long an entry lives without a refresh by default: three refreshes may be missed. */
export const PRESENCE_TTL_MS = 3 * PRESENCE_REFRESH_MS;

/**
 * The most removals (channel, user) whose script failed that are kept to be sent again with the
 * next refresh: a long outage with many leaves must not grow memory without bound. Beyond it
 * (logged once per outage: again only after a refresh found none waiting) an entry is left to
 * expire by its TTL, as before there were retries.
 */
export const MAX_PRESENCE_RETRIES = 10_000;

/**
 * KEYS: zset, info hash, users hash. ARGV: ttl ms, "list" or "", the most members, the control
 * channel, the channel, then triples of entry, user, value ("" removes the entry). Returns (with
 * "list") the info hash as a flat array, the users refused — new members of a full channel, whose
 * entries were not written — and how many notices could not be published. Redis's own clock
 * (TIME) scores entries, so instances' clocks may disagree without harm.
 *
 * Each join and leave is PUBLISHed here, in the order decided, as the control message
 * `{"presence":…,"channel":…,"user":…,"info":"…","from":"redis"}` (cjson escapes `/` as `\/`,
 * which JSON.parse reads back; `info`, the value's text after its first newline, is left out when
 * empty). The PUBLISHes come last, after every write, and through pcall: a script's writes are
 * never rolled back, so a PUBLISH that failed half way would otherwise have left the entries
 * written but the script's later writes and notices undone.
 */
const SYNC_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local notices = {}
local function drop(f, user)
  redis.call('HDEL', KEYS[2], f)
  if redis.call('HINCRBY', KEYS[3], user, -1) <= 0 then
    redis.call('HDEL', KEYS[3], user)
    notices[#notices + 1] = {presence = 'leave', user = user}
  end
end
for _, f in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)) do
  redis.call('ZREM', KEYS[1], f)
  drop(f, string.sub(f, (string.find(f, '|', 1, true) or 0) + 1))
end
local ttl, max = tonumber(ARGV[1]), tonumber(ARGV[3])
local kept, refused = false, {}
for i = 6, #ARGV, 3 do
  local f, user, v = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if v == '' then
    if redis.call('ZREM', KEYS[1], f) == 1 then drop(f, user) end
  elseif not redis.call('ZSCORE', KEYS[1], f) and not redis.call('HGET', KEYS[3], user)
    and redis.call('HLEN', KEYS[3]) >= max then
    refused[#refused + 1] = user
  else
    kept = true
    if redis.call('ZADD', KEYS[1], now + ttl, f) == 1 then
      if redis.call('HINCRBY', KEYS[3], user, 1) == 1 then
        local info = string.sub(v, (string.find(v, '\\n', 1, true) or #v) + 1)
        notices[#notices + 1] = {presence = 'join', user = user, info = info ~= '' and info or nil}
      end
    end
    redis.call('HSET', KEYS[2], f, v)
  end
end
if kept then
  for k = 1, 3 do redis.call('PEXPIRE', KEYS[k], ttl) end
end
local listing = {}
if ARGV[2] == 'list' then listing = redis.call('HGETALL', KEYS[2]) end
local unpublished = 0
for _, n in ipairs(notices) do
  n.channel, n.from = ARGV[5], 'redis'
  local r = redis.pcall('PUBLISH', ARGV[4], cjson.encode(n))
  if type(r) == 'table' and r.err then unpublished = unpublished + 1 end
end
return {listing, refused, unpublished}
`;

/** What the shared presence needs of the Redis broker. */
export interface PresenceLink {
  /** Runs one command (rejects while Redis is away). */
  command(args: readonly (string | number | Uint8Array)[]): Promise<unknown>;
  /** Where the script publishes the notices (`push:control`), every instance subscribed. */
  readonly controlChannel: string;
  /** The key prefix (`push:`). */
  readonly prefix: string;
  /** This instance's id (a UUID: no `|` in it). */
  readonly instance: string;
}

/** Options of {@linkcode RedisPresence}. */
export interface RedisPresenceOptions {
  /** The Redis broker. */
  link: PresenceLink;
  /** The local table (the notices reach its subscribers through the control channel). */
  presence: Presence;
  /** Where failures are logged. */
  logger: Logger;
  /** How often entries are refreshed (default {@linkcode PRESENCE_REFRESH_MS}). */
  refreshMs?: number;
  /** How long an entry lives without a refresh (default {@linkcode PRESENCE_TTL_MS}). */
  ttlMs?: number;
}

/** The script's answer: the listing, the users refused, the notices not published. */
type SyncReply = [Uint8Array[], Uint8Array[], number];

const decoder = new TextDecoder();

/** The cluster's presence in Redis, this instance's part kept fresh. */
export class RedisPresence implements SharedPresence {
  readonly #o: RedisPresenceOptions;
  readonly #ttl: number;
  readonly #tasks = new Set<Promise<void>>();
  readonly #timer: ReturnType<typeof setInterval>;
  /** Removals whose script failed, by channel, to be sent with the next refresh. */
  #retries = new Map<string, Set<string>>();
  #retryCount = 0;
  #warnedFull = false;
  #closed = false;

  /** Starts refreshing this instance's entries; {@linkcode RedisPresence.close} stops it. */
  constructor(options: RedisPresenceOptions) {
    this.#o = options;
    const refresh = options.refreshMs ?? PRESENCE_REFRESH_MS;
    this.#ttl = options.ttlMs ?? 3 * refresh;
    this.#timer = setInterval(() => this.#refresh(), refresh);
  }

  /** See {@linkcode SharedPresence.changed}: this instance's entry is written (or removed). */
  changed(channel: string, user: string, member: LocalMember | undefined): void {
    const value = member === undefined ? "" : valueOf(member);
    this.#track(channel, [user], this.#sync(channel, [user], false, value));
  }

  /** See {@linkcode SharedPresence.list}: every live entry, summed by user. */
  async list(channel: string): Promise<PresenceMember[]> {
    const listing = (await this.#sync(channel, [], true))[0];
    const byUser = new Map<string, { connections: number; info: string }>();
    for (let i = 0; i + 1 < listing.length; i += 2) {
      const entry = decoder.decode(listing[i]);
      const user = entry.slice(entry.indexOf("|") + 1);
      const value = decoder.decode(listing[i + 1]);
      const newline = value.indexOf("\n");
      const connections = Number(value.slice(0, newline)) || 0;
      const had = byUser.get(user);
      if (had) had.connections += connections;
      else byUser.set(user, { connections, info: value.slice(newline + 1) });
    }
    return [...byUser].map(([user, m]) => listed(user, m.connections, m.info));
  }

  /** Stops refreshing; with `goodbye`, removes what is left of this instance's entries. */
  async close(goodbye = true): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    if (goodbye) {
      for (const [channel, users] of this.#due()) {
        this.#track(channel, users, this.#sync(channel, users, false, ""));
      }
    }
    while (this.#tasks.size > 0) await Promise.all(this.#tasks);
  }

  /**
   * Re-scores every local entry (and so removes expired ones in each channel held here), and
   * sends again the removals whose script failed: each with "" unless its user is back in the
   * local table (then its entry is written, as any local one's).
   */
  #refresh(): void {
    for (const [channel, users] of this.#due()) {
      this.#track(channel, users, this.#sync(channel, users, false));
    }
  }

  /** The users to sync per channel: the local members, then the failed removals (taken). */
  #due(): Map<string, string[]> {
    const retries = this.#retries;
    this.#retries = new Map();
    this.#retryCount = 0;
    // Nothing was waiting: whatever overflowed before has been sent or expired since.
    if (retries.size === 0) this.#warnedFull = false;
    const table = this.#o.presence.table;
    const due = new Map<string, string[]>();
    for (const [channel, members] of table.channels()) due.set(channel, [...members.keys()]);
    for (const [channel, users] of retries) {
      const list = due.get(channel) ?? [];
      due.set(channel, list);
      // A user back in the table is in the list already, its entry to be written.
      for (const user of users) if (table.get(channel, user) === undefined) list.push(user);
    }
    return due;
  }

  /**
   * Runs `promise` (a script run for `users` of `channel`) in the background, its failure logged.
   * The next refresh repairs what is in the local table; a user of `users` that is not (its
   * removal was in that script) is kept to be removed with the next refresh, rather than waiting
   * for its entry to expire.
   */
  #track(channel: string, users: readonly string[], promise: Promise<unknown>): void {
    const task = promise.then(() => {}, (err) => {
      this.#o.logger.warn("presence.redis_failed", { error: String(err) });
      const table = this.#o.presence.table;
      for (const user of users) {
        if (table.get(channel, user) === undefined) this.#retry(channel, user);
      }
    });
    this.#tasks.add(task);
    task.finally(() => this.#tasks.delete(task));
  }

  /** Keeps (channel, user) for the next refresh, up to {@linkcode MAX_PRESENCE_RETRIES}. */
  #retry(channel: string, user: string): void {
    let users = this.#retries.get(channel);
    if (users?.has(user)) return;
    if (this.#retryCount >= MAX_PRESENCE_RETRIES) {
      if (!this.#warnedFull) {
        this.#warnedFull = true;
        this.#o.logger.warn("presence.retries_full", {
          max: MAX_PRESENCE_RETRIES,
          reason: "more failed presence removals than are kept: the rest expire by their TTL",
        });
      }
      return;
    }
    if (users === undefined) this.#retries.set(channel, users = new Set());
    users.add(user);
    this.#retryCount++;
  }

  /**
   * One script run on `channel`: `users`' entries written from the local table (or removed with
   * `value` ""), expired entries removed, the resulting joins and leaves published by the script.
   */
  async #sync(channel: string, users: string[], list: boolean, value?: string): Promise<SyncReply> {
    const { link, presence } = this.#o;
    const args: (string | number)[] = [
      this.#ttl,
      list ? "list" : "",
      presence.maxMembers,
      link.controlChannel,
      channel,
    ];
    for (const user of users) {
      const member = presence.table.get(channel, user);
      args.push(`${link.instance}|${user}`, user, value ?? (member ? valueOf(member) : ""));
    }
    const key = `${link.prefix}{${channel}}:presence`;
    const reply = await link.command([
      "EVAL",
      SYNC_SCRIPT,
      3,
      key,
      `${key}:info`,
      `${key}:users`,
      ...args,
    ]) as SyncReply;
    for (const user of reply[1]) presence.refused(channel, utf8(user));
    if (reply[2] > 0) {
      // Only a PUBLISH that Redis refused: the entries are right, some notices were lost.
      this.#o.logger.warn("presence.notices_unpublished", { channel, notices: reply[2] });
    }
    return reply;
  }
}

function valueOf(member: LocalMember): string {
  return `${member.connections}\n${member.info ?? ""}`;
}

function utf8(bytes: Uint8Array): string {
  return decoder.decode(bytes);
}
