/**
 * Presence across instances through one real redis-server: two servers share the member list and
 * each other's join/leave notices (a user on both is one member), notices take no id, and an
 * instance that dies without goodbye loses its members within the TTL, with leave notices sent by
 * the survivor; and every instance, the deciding ones included, gets a user's joins and leaves in
 * the order the scripts ran.
 */
import { assertEquals } from "@std/assert";
import { Hub } from "../../src/push/hub.ts";
import { RedisBroker } from "../../src/push/redis_broker.ts";
import { Logger } from "../../src/log.ts";
import { startTestServer, type TestServer } from "../support/server.ts";
import { startRedisServer } from "../support/redis_server.ts";
import { presenceInstance } from "../support/presence_instance.ts";
import { pollUntil, withDeadline } from "../support/async.ts";
import { TestSocket } from "../support/ws_client.ts";
import { claims, hsToken, SECRET } from "../support/jwt.ts";
import { Member } from "../support/subscribers.ts";

const KEY = { authorization: "Bearer api-key" };

async function join(server: TestServer, user: string): Promise<TestSocket> {
  const token = await hsToken(claims(user, { channels: ["room.*"], info: { name: user } }));
  const ws = new TestSocket(`${server.wsUrl}/?demo=false&channels=room.1&token=${token}`);
  await ws.nextMatching(/"notice":"subscribed"/);
  return ws;
}

/** Two servers on the Redis at `url` keeping presence for `room.*`, both connected to it. */
async function twoInstances(url: string, extra: string[] = []) {
  const args = [
    "--redis",
    url,
    "--jwt-secret",
    SECRET,
    "--publish-token",
    "api-key",
    "--presence",
    "room.*",
    ...extra,
  ];
  const a = await startTestServer(args);
  const b = await startTestServer(args).catch(async (err) => {
    await a[Symbol.asyncDispose]();
    throw err;
  });
  const servers = {
    a,
    b,
    async [Symbol.asyncDispose]() {
      await Promise.all([a[Symbol.asyncDispose](), b[Symbol.asyncDispose]()]);
    },
  };
  try {
    for (const s of [a, b]) {
      await withDeadline((s.hub as Hub<RedisBroker>).broker.ready(), 10_000, "redis");
    }
  } catch (err) {
    await servers[Symbol.asyncDispose]();
    throw err;
  }
  return servers;
}

async function users(server: TestServer, channel = "room.1"): Promise<unknown> {
  const response = await fetch(`${server.httpUrl}/presence?channel=${channel}`, { headers: KEY });
  assertEquals(response.status, 200);
  return (await response.json()).users;
}

Deno.test("Redis: two instances share presence and each other's join and leave notices", async () => {
  await using redis = await startRedisServer();
  await using servers = await twoInstances(redis.url);
  const { a, b } = servers;
  await using bob = await join(b, "bob");
  const alice = await join(a, "alice");
  assertEquals(JSON.parse(await bob.nextMatching(/"notice":"join"/)), {
    notice: "join",
    channel: "room.1",
    user: "alice",
    info: { name: "alice" },
  });
  // A second connection of alice, on the other instance: still one member, no second join.
  const aliceOnB = await join(b, "alice");
  const expected = [
    { user: "bob", connections: 1, info: { name: "bob" } },
    { user: "alice", connections: 2, info: { name: "alice" } },
  ];
  const sorted = (list: unknown) =>
    (list as { user: string }[]).toSorted((x, y) => x.user.localeCompare(y.user));
  await pollUntil(
    async () => JSON.stringify(sorted(await users(a))) === JSON.stringify(sorted(expected)),
    5000,
    "both instances' entries in GET /presence",
  );
  assertEquals(sorted(await users(b)), sorted(expected));
  await alice[Symbol.asyncDispose]();
  await aliceOnB[Symbol.asyncDispose]();
  // The next presence notice bob gets is alice's leave (her first tab's close was no leave).
  assertEquals(JSON.parse(await bob.nextMatching(/"notice":"(join|leave)"/)), {
    notice: "leave",
    channel: "room.1",
    user: "alice",
  });
  assertEquals(await users(a), [{ user: "bob", connections: 1, info: { name: "bob" } }]);
  // Notices never entered the channel's ids or history.
  const history = await fetch(`${a.httpUrl}/history?channel=room.1`, { headers: KEY });
  assertEquals((await history.json()).publications, []);
});

Deno.test("Redis: --max-presence counts the members of every instance", async () => {
  await using redis = await startRedisServer();
  await using servers = await twoInstances(redis.url, ["--max-presence", "2"]);
  const { a, b } = servers;
  await using alice = await join(a, "alice");
  await using bob = await join(b, "bob");
  await alice.nextMatching(/"notice":"join","channel":"room.1","user":"bob"/);
  // A has one member of its own, but the channel has two: Redis refuses carol, who gets the error
  // and never `subscribed` (the script answers before the join's reads).
  const token = await hsToken(claims("carol", { channels: ["room.*"] }));
  await using carol = new TestSocket(`${a.wsUrl}/?demo=false&channels=room.1&token=${token}`);
  assertEquals(JSON.parse(await carol.next() as string), {
    error: "Too many members in room.1: at most 2 users keep presence in one channel " +
      "(--max-presence).",
    channel: "room.1",
  });
  assertEquals(a.hub.subscriptionsOf([...a.ws.clients].at(-1)!).size, 0);
  // A member's connection on an instance where it is not a member yet is still fine.
  await using aliceOnB = await join(b, "alice");
  const users = (await (await fetch(`${b.httpUrl}/presence?channel=room.1`, { headers: KEY }))
    .json()).users as { user: string; connections: number }[];
  assertEquals(users.map((u) => `${u.user}:${u.connections}`).sort(), ["alice:2", "bob:1"]);
  void bob;
  void aliceOnB;
});

Deno.test("Redis: an instance that dies without goodbye loses its members; survivors send leaves", async () => {
  await using redis = await startRedisServer();
  const logger = new Logger("error", () => {});
  const timings = { refreshMs: 100, ttlMs: 400 };
  const a = presenceInstance(redis.url, logger, timings);
  const b = presenceInstance(redis.url, logger, timings);
  try {
    await Promise.all([a.broker.ready(), b.broker.ready()]);
    const watcher = new Member("watcher");
    a.hub.subscribe(watcher, "room.1");
    await pollUntil(() => watcher.notices.length > 0, 5000, "the watcher's subscribed notice");
    const ghost = new Member("ghost", { name: "G" });
    b.hub.subscribe(ghost, "room.1");
    await pollUntil(() => watcher.presence.length === 1, 5000, "the ghost's join on A");
    assertEquals(watcher.presence[0], {
      notice: "join",
      channel: "room.1",
      user: "ghost",
      info: { name: "G" },
    });
    // Several refreshes pass: the ghost stays (its instance keeps its entry alive).
    const kept = performance.now();
    await pollUntil(() => performance.now() - kept > 3 * timings.ttlMs, 5000, "time to pass");
    assertEquals((await a.hub.presenceOf("room.1"))?.map((m) => m.user).sort(), [
      "ghost",
      "watcher",
    ]);
    // B dies: no refresh, no goodbye, its Redis connections gone.
    const died = performance.now();
    await b.shared.close(false);
    await b.broker.close();
    await pollUntil(() => watcher.presence.length === 2, 5000, "the ghost's leave from A");
    const leaveMs = performance.now() - died;
    assertEquals(watcher.presence[1], { notice: "leave", channel: "room.1", user: "ghost" });
    // Bounded: within the TTL plus one refresh (and some slack for a loaded machine).
    assertEquals(leaveMs < timings.ttlMs + timings.refreshMs + 1000, true, `${leaveMs} ms`);
    assertEquals(await a.hub.presenceOf("room.1"), [{ user: "watcher", connections: 1 }]);
  } finally {
    await a.hub.close();
    await b.hub.close();
  }
});

Deno.test("Redis: every instance gets a user's joins and leaves in the order the scripts ran", async () => {
  await using redis = await startRedisServer();
  const logger = new Logger("error", () => {});
  // No refresh during the test: every script run is one of the changes below.
  const timings = { refreshMs: 60_000, ttlMs: 180_000 };
  const [a, b, c] = [0, 1, 2].map(() => presenceInstance(redis.url, logger, timings));
  try {
    await Promise.all([a, b, c].map((i) => i.broker.ready()));
    const watchers = [a, b, c].map((i, n) => {
      const watcher = new Member(`watcher-${n}`);
      i.hub.subscribe(watcher, "room.1");
      return watcher;
    });
    await pollUntil(
      () => watchers.every((w) => w.notices.some((n) => n.notice === "subscribed")),
      5000,
      "the watchers' subscribed notices",
    );
    // An info that cjson escapes (`/` as `\/`, quotes) and that is not ASCII.
    const info = { path: "a/b</script>", name: 'Zoë "q"' };
    // u joins on A, a tab on B, A's tab goes, B's last tab goes (the leave decided on B), again:
    // nothing awaited within a burst, so the two instances' scripts interleave as Redis runs
    // them; each burst ends when both instances' scripts have run (a listing after them on the
    // same connections), so every burst is one more chance for their notices to cross.
    for (let burst = 0; burst < 10; burst++) {
      for (let round = 0; round < 10; round++) {
        const onA = new Member("u", info);
        const onB = new Member("u", info);
        a.hub.subscribe(onA, "room.1");
        b.hub.subscribe(onB, "room.1");
        a.hub.unsubscribe(onA, "room.1");
        b.hub.unsubscribe(onB, "room.1");
      }
      await Promise.all([a.hub.presenceOf("room.1"), b.hub.presenceOf("room.1")]);
    }
    a.hub.subscribe(new Member("u", info), "room.1");
    // Each instance's scripts run in the order it sent them: once a watcher has heard both
    // sentinels' joins, it has heard every notice of the changes before them.
    a.hub.subscribe(new Member("end-a"), "room.1");
    b.hub.subscribe(new Member("end-b"), "room.1");
    await pollUntil(
      () =>
        watchers.every((w) =>
          w.presence.filter((n) => /^end-/.test(n.user as string)).length === 2
        ),
      10_000,
      "the sentinels' joins on every instance",
    );
    const join = { notice: "join", channel: "room.1", user: "u", info };
    const leave = { notice: "leave", channel: "room.1", user: "u" };
    const heard = watchers.map((w) => w.presence.filter((n) => n.user === "u"));
    for (const notices of heard) {
      // In Redis's order a user's joins and leaves alternate (0 → 1 instances, 1 → 0), and the
      // last is a join: u is still there.
      assertEquals(notices, notices.map((_, i) => i % 2 === 0 ? join : leave));
      assertEquals(notices.length % 2, 1, "the last notice is a join");
    }
    assertEquals(heard[1], heard[0], "B heard what A heard");
    assertEquals(heard[2], heard[0], "C heard what A heard");
    assertEquals(
      (await c.hub.presenceOf("room.1"))?.find((m) => m.user === "u"),
      { user: "u", connections: 1, info },
    );
    const sentinel = watchers[2].presence.find((n) => n.user === "end-a");
    assertEquals(sentinel, { notice: "join", channel: "room.1", user: "end-a" }, "no info: none");
  } finally {
    await Promise.all([a, b, c].map((i) => i.hub.close()));
  }
});
