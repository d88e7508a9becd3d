/**
 * Shared presence when Redis fails it, with a real redis-server: a notice Redis refuses to publish
 * loses only that notice (every write of the script stands), and a leave whose script failed
 * because Redis was away is sent again once Redis is back, long before the entry would expire.
 */
import { assertEquals } from "@std/assert";
import { Presence } from "../../src/push/presence.ts";
import { RedisPresence } from "../../src/push/redis_presence.ts";
import { ChannelPatterns } from "../../src/push/channel_patterns.ts";
import { RedisClient } from "../../src/redis/client.ts";
import { parseRedisUrl } from "../../src/redis/url.ts";
import { Logger } from "../../src/log.ts";
import { startRedisServer } from "../support/redis_server.ts";
import { pollUntil } from "../support/async.ts";
import { Member } from "../support/subscribers.ts";

const PATTERNS = ChannelPatterns.parse(["room.*"]);

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
  const presence = new Presence({ patterns: PATTERNS, maxMembers: 100 });
  const link = {
    command: (args: readonly (string | number | Uint8Array)[]) => client.command(args),
    controlChannel: "push:control",
    prefix: "push:",
    instance: crypto.randomUUID(),
  };
  const shared = new RedisPresence({ link, presence, logger, refreshMs: 60_000 });
  presence.share(shared);
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
