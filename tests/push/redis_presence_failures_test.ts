/**
 * Shared presence when Redis fails it, with a real redis-server: a notice Redis refuses to publish
 * loses only that notice (every write of the script stands); a leave whose script failed because
 * Redis was away is sent again once Redis is back, long before the entry would expire (but not for
 * a user back meanwhile); and at most MAX_PRESENCE_RETRIES such removals are kept.
 */
import { assertEquals } from "@std/assert";
import { Presence } from "../../src/push/presence.ts";
import { MAX_PRESENCE_RETRIES, RedisPresence } from "../../src/push/redis_presence.ts";
import { ChannelPatterns } from "../../src/push/channel_patterns.ts";
import { RedisClient } from "../../src/redis/client.ts";
import { parseRedisUrl } from "../../src/redis/url.ts";
import { Logger } from "../../src/log.ts";
import { startRedisServer } from "../support/redis_server.ts";
import { presenceInstance } from "../support/presence_instance.ts";
import { pollUntil } from "../support/async.ts";
import { Member } from "../support/subscribers.ts";

const PATTERNS = ChannelPatterns.parse(["room.*"]);

/**
 * A TCP proxy to `port` that can be cut — its connections closed, new ones closed at once — and
 * restored: Redis unreachable for the clients behind it only.
 */
function cuttableProxy(port: number) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const open = new Set<Deno.Conn>();
  const pipes: Promise<void>[] = [];
  let cut = false;
  const close = (conn: Deno.Conn) => {
    open.delete(conn);
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  };
  const pump = async (from: Deno.Conn, to: Deno.Conn) => {
    try {
      for await (const chunk of from.readable) {
        const writer = to.writable.getWriter();
        await writer.write(chunk);
        writer.releaseLock();
      }
    } catch {
      // Either side closed.
    }
    close(from);
    close(to);
  };
  const accepting = (async () => {
    for await (const client of listener) {
      if (cut) {
        close(client);
        continue;
      }
      const upstream = await Deno.connect({ hostname: "127.0.0.1", port });
      open.add(client).add(upstream);
      pipes.push(pump(client, upstream), pump(upstream, client));
    }
  })();
  return {
    url: `redis://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
    cut() {
      cut = true;
      for (const conn of [...open]) close(conn);
    },
    restore() {
      cut = false;
    },
    async [Symbol.asyncDispose]() {
      listener.close();
      await accepting.catch(() => {});
      for (const conn of [...open]) close(conn);
      await Promise.all(pipes);
    },
  };
}

/** The local table and its shared part over a client of its own, as a Redis broker would. */
function sharedPresence(client: RedisClient, logger: Logger, timings: object, maxMembers = 100) {
  const presence = new Presence({ patterns: PATTERNS, maxMembers });
  const link = {
    command: (args: readonly (string | number | Uint8Array)[]) => client.command(args),
    controlChannel: "push:control",
    prefix: "push:",
    instance: crypto.randomUUID(),
  };
  const shared = new RedisPresence({ link, presence, logger, ...timings });
  presence.share(shared);
  return { presence, shared };
}

Deno.test("Redis: a notice Redis refuses to publish is lost, never the change it announces", async () => {
  await using redis = await startRedisServer();
  const admin = new RedisClient(parseRedisUrl(redis.url));
  admin.start();
  await admin.ready();
  // A user that may publish on no channel but "allowed" (an ACL that forgot push:control): the
  // script's PUBLISH fails after its writes.
  await admin.command(["ACL", "SETUSER", "limited", "on", ">pw", "~*", "resetchannels"]);
  await admin.command(["ACL", "SETUSER", "limited", "&allowed", "+@all"]);
  const client = new RedisClient(parseRedisUrl(`redis://limited:pw@127.0.0.1:${redis.port}`));
  client.start();
  await client.ready();
  const logs: string[] = [];
  const logger = new Logger("warn", (line) => logs.push(line));
  const { presence, shared } = sharedPresence(client, logger, { refreshMs: 60_000 });
  try {
    const alice = new Member("alice", { name: "A" });
    presence.added(alice, "room.1");
    presence.added(new Member("bob"), "room.1");
    // Both joins' PUBLISHes were refused, yet every write of both scripts is there.
    assertEquals(await shared.list("room.1"), [
      { user: "alice", connections: 1, info: { name: "A" } },
      { user: "bob", connections: 1 },
    ]);
    presence.removed(alice, "room.1");
    assertEquals(await shared.list("room.1"), [{ user: "bob", connections: 1 }]);
    assertEquals(
      new TextDecoder().decode(
        await admin.command(["HGET", "push:{room.1}:presence:users", "bob"]) as Uint8Array,
      ),
      "1",
    );
    await pollUntil(
      () => logs.filter((l) => l.includes("presence.notices_unpublished")).length === 3,
      5000,
      "a warning for each script whose notice was lost",
    );
    assertEquals(logs.filter((l) => l.includes("presence.redis_failed")), [], "no script failed");
  } finally {
    await shared.close();
    await Promise.all([client.close(), admin.close()]);
  }
});

Deno.test("Redis: a leave whose script failed while Redis was away is sent once it is back, not at expiry", async () => {
  await using redis = await startRedisServer();
  await using proxy = cuttableProxy(redis.port);
  // Refreshed often, expiring late: a leave that only came by expiry would take 30 s.
  const timings = { refreshMs: 100, ttlMs: 30_000 };
  const quiet = new Logger("error", () => {});
  const a = presenceInstance(proxy.url, quiet, timings);
  const b = presenceInstance(redis.url, quiet, timings);
  try {
    await Promise.all([a.broker.ready(), b.broker.ready()]);
    const watcher = new Member("watcher");
    b.hub.subscribe(watcher, "room.1");
    await pollUntil(() => watcher.notices.length > 0, 5000, "the watcher's subscribed notice");
    const alice = new Member("alice");
    const bob = new Member("bob");
    a.hub.subscribe(alice, "room.1");
    a.hub.subscribe(bob, "room.1");
    await pollUntil(() => watcher.presence.length === 2, 5000, "alice's and bob's joins");
    // Redis goes away for A only: B and the watcher's subscription stay connected.
    proxy.cut();
    await pollUntil(() => a.broker.health().status === "degraded", 5000, "A to lose Redis");
    // Their leaves' scripts fail: commands are refused at once while Redis is away.
    a.hub.unsubscribe(alice, "room.1");
    a.hub.unsubscribe(bob, "room.1");
    assertEquals(
      (await b.hub.presenceOf("room.1"))?.map((m) => m.user).sort(),
      ["alice", "bob", "watcher"],
      "their entries outlived the failed leaves",
    );
    // Bob comes back before Redis does: his removal is not sent, his entry is written again.
    a.hub.subscribe(new Member("bob"), "room.1");
    proxy.restore();
    const back = performance.now();
    await pollUntil(
      () => watcher.presence.length === 3,
      10_000,
      "alice's leave once Redis is back",
    );
    assertEquals(watcher.presence[2], { notice: "leave", channel: "room.1", user: "alice" });
    const ms = performance.now() - back;
    assertEquals(ms < timings.ttlMs / 3, true, `${ms} ms`);
    // Carol's join comes next: nothing about bob came between.
    a.hub.subscribe(new Member("carol"), "room.1");
    await pollUntil(() => watcher.presence.length === 4, 5000, "carol's join");
    assertEquals(watcher.presence[3].user, "carol");
    assertEquals(
      (await b.hub.presenceOf("room.1"))?.map((m) => `${m.user}:${m.connections}`).sort(),
      [
        "bob:1",
        "carol:1",
        "watcher:1",
      ],
    );
  } finally {
    await Promise.all([a.hub.close(), b.hub.close()]);
  }
});

Deno.test("Redis: at most MAX_PRESENCE_RETRIES failed removals are kept; beyond, an entry expires", async () => {
  await using redis = await startRedisServer();
  await using proxy = cuttableProxy(redis.port);
  const client = new RedisClient(parseRedisUrl(proxy.url));
  client.start();
  await client.ready();
  const logs: string[] = [];
  const logger = new Logger("warn", (line) => logs.push(line));
  const timings = { refreshMs: 100, ttlMs: 60_000 };
  const { presence, shared } = sharedPresence(client, logger, timings, 2 * MAX_PRESENCE_RETRIES);
  try {
    const members = Array.from({ length: MAX_PRESENCE_RETRIES + 1 }, (_, i) => new Member(`u${i}`));
    for (const m of members) presence.added(m, "room.1");
    assertEquals((await shared.list("room.1")).length, members.length);
    proxy.cut();
    await pollUntil(() => !client.connected, 5000, "the client to lose Redis");
    // Every removal fails; the last one is beyond the bound.
    for (const m of members) presence.removed(m, "room.1");
    await pollUntil(
      () => logs.some((l) => l.includes("presence.retries_full")),
      5000,
      "the warning that retries are full",
    );
    proxy.restore();
    await client.ready();
    // The kept removals went with a refresh; the one beyond the bound waits for its TTL.
    await pollUntil(async () => (await shared.list("room.1")).length === 1, 10_000, "removals");
    assertEquals(await shared.list("room.1"), [{
      user: `u${MAX_PRESENCE_RETRIES}`,
      connections: 1,
    }]);
    assertEquals(logs.filter((l) => l.includes("presence.retries_full")).length, 1, "warned once");
  } finally {
    await shared.close(false);
    await client.close();
  }
});
