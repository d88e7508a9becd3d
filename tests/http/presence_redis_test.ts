/**
 * Presence of two instances sharing one real redis-server, through real sockets and the HTTP
 * API: anonymous clients with the same client id on both instances are two members named
 * `anon:<id>@<instance>` (event streams too), and `POST /disconnect` with a listed name reaches
 * that connection only;
 * every way of leaving (an `unsubscribe` message, `POST /unsubscribe`, `POST /disconnect`, the
 * last of two tabs on two instances) is a leave notice on the other instance and out of the list.
 */
import { assertEquals, assertMatch } from "@std/assert";
import type { Hub } from "../../src/push/hub.ts";
import type { RedisBroker } from "../../src/push/redis_broker.ts";
import { startTestServer, type TestServer } from "../support/server.ts";
import { startRedisServer } from "../support/redis_server.ts";
import { pollUntil, withDeadline } from "../support/async.ts";
import { TestSocket } from "../support/ws_client.ts";
import { claims, hsToken, SECRET } from "../support/jwt.ts";
import { SseClient } from "../support/sse_client.ts";

const KEY = { authorization: "Bearer api-key" };

/** Two instances on one Redis with `args`, both connected to it. */
async function twoInstances(redisUrl: string, args: string[]): Promise<[TestServer, TestServer]> {
  const common = ["--redis", redisUrl, "--publish-token", "api-key", ...args];
  const a = await startTestServer(common);
  const b = await startTestServer(common);
  for (const s of [a, b]) {
    await withDeadline((s.hub as Hub<RedisBroker>).broker.ready(), 10_000, "redis");
  }
  return [a, b];
}

/** The first 8 hex digits of `server`'s instance id, as anonymous members carry them. */
function tagOf(server: TestServer): string {
  return (server.hub as Hub<RedisBroker>).broker.instance.slice(0, 8);
}

/** A connection subscribed to `channel`, with a token for `user` or anonymous (null). */
async function open(server: TestServer, user: string | null, channel: string) {
  const token = user === null
    ? ""
    : `&token=${await hsToken(claims(user, { channels: ["room.*"] }))}`;
  const ws = new TestSocket(`${server.wsUrl}/?demo=false&channels=${channel}${token}`);
  await ws.nextMatching(/"notice":"subscribed"/);
  return ws;
}

async function members(server: TestServer, channel: string): Promise<string[]> {
  const response = await fetch(`${server.httpUrl}/presence?channel=${channel}`, { headers: KEY });
  assertEquals(response.status, 200);
  const body = await response.json() as { users: { user: string; connections: number }[] };
  return body.users.map((u) => `${u.user}:${u.connections}`).sort();
}

async function post(server: TestServer, path: string): Promise<unknown> {
  const response = await fetch(`${server.httpUrl}${path}`, { method: "POST", headers: KEY });
  assertEquals(response.status, 200);
  return await response.json();
}

/** The next join or leave `ws` gets, as [notice, user]. */
async function nextPresence(ws: TestSocket): Promise<[string, string]> {
  const notice = JSON.parse(await ws.nextMatching(/"notice":"(join|leave)"/));
  return [notice.notice, notice.user];
}

Deno.test("Redis: anonymous clients with the same id on two instances are two members anon:<id>@<instance>", async () => {
  await using redis = await startRedisServer();
  const [a, b] = await twoInstances(redis.url, [
    "--jwt-secret",
    SECRET,
    "--anonymous",
    "--public-channels",
    "lobby",
    "--presence",
    "lobby",
  ]);
  await using _a = a;
  await using _b = b;
  // Each instance's first client: the same process-local id on both.
  await using x = await open(a, null, "lobby");
  await using y = await open(b, null, "lobby");
  const [xId, yId] = [[...a.ws.clients][0].id, [...b.ws.clients][0].id];
  assertEquals(xId, yId, "the case this is about: one client id on two instances");
  const xName = `anon:${xId}@${tagOf(a)}`;
  const yName = `anon:${yId}@${tagOf(b)}`;
  assertMatch(xName, /^anon:\d+@[0-9a-f]{8}$/);
  await using watcher = await open(a, "watcher", "lobby");
  assertEquals(await members(b, "lobby"), [`${xName}:1`, `${yName}:1`, "watcher:1"].sort());
  // x hears of y under y's name (never of itself).
  assertEquals(await nextPresence(x), ["join", yName]);
  // The listed name reaches that connection only, from the other instance too.
  assertEquals(await post(b, `/disconnect?user=${xName}`), { disconnected: 0, instances: 2 });
  assertEquals((await x.closed).code, 4003);
  assertEquals(await nextPresence(watcher), ["leave", xName]);
  assertEquals(await members(a, "lobby"), [`${yName}:1`, "watcher:1"]);
  // y is still there, and its own leave is one too (not hidden behind x's entry).
  y.socket.send("unsubscribe lobby");
  assertEquals(await nextPresence(watcher), ["leave", yName]);
  assertEquals(await members(a, "lobby"), ["watcher:1"]);
  // An anonymous event stream is named the same way, and the name reaches it from A.
  await using sse = await SseClient.open(`${b.httpUrl}/events?channels=lobby`);
  await sse.nextWhere((e) => e.data?.includes('"subscribed"') ?? false);
  const [notice, streamName] = await nextPresence(watcher);
  assertEquals(notice, "join");
  assertMatch(streamName, new RegExp(`^anon:\\d+@${tagOf(b)}$`));
  assertEquals(await post(a, `/disconnect?user=${streamName}`), { disconnected: 0, instances: 2 });
  const closed = await sse.nextWhere((e) => e.data?.includes('"closed"') ?? false);
  assertEquals(JSON.parse(closed.data!).code, 4003);
  assertEquals(await nextPresence(watcher), ["leave", streamName]);
});

Deno.test("Redis: every way of leaving is a leave on the other instance and out of the list", async () => {
  await using redis = await startRedisServer();
  const [a, b] = await twoInstances(redis.url, ["--jwt-secret", SECRET, "--presence", "room.*"]);
  await using _a = a;
  await using _b = b;
  await using watcher = await open(b, "watcher", "room.1");
  const rejoin = async () => {
    const ws = await open(a, "alice", "room.1");
    assertEquals(await nextPresence(watcher), ["join", "alice"]);
    assertEquals(await members(b, "room.1"), ["alice:1", "watcher:1"]);
    return ws;
  };
  const left = async () => {
    assertEquals(await nextPresence(watcher), ["leave", "alice"]);
    assertEquals(await members(b, "room.1"), ["watcher:1"]);
  };
  // The client's own unsubscribe.
  await using first = await rejoin();
  first.socket.send("unsubscribe room.1");
  await left();
  // POST /unsubscribe on the other instance.
  await using second = await rejoin();
  assertEquals(await post(b, "/unsubscribe?user=alice&channel=room.1"), {
    unsubscribed: 0,
    instances: 2,
  });
  await second.nextMatching(/"notice":"unsubscribed"/);
  await left();
  // POST /disconnect on the other instance.
  const third = await rejoin();
  assertEquals(await post(b, "/disconnect?user=alice"), { disconnected: 0, instances: 2 });
  assertEquals((await third.closed).code, 4003);
  await left();
  // Two tabs on two instances: the first to close is no leave, the last is.
  const tabA = await rejoin();
  const tabB = await open(b, "alice", "room.1");
  assertEquals(await members(a, "room.1"), ["alice:2", "watcher:1"]);
  await tabA[Symbol.asyncDispose]();
  await pollUntil(async () => (await members(a, "room.1"))[0] === "alice:1", 5000, "tab A gone");
  // Bob's join is the next notice: tab A's close sent none.
  await using bob = await open(a, "bob", "room.1");
  assertEquals(await nextPresence(watcher), ["join", "bob"]);
  await tabB[Symbol.asyncDispose]();
  assertEquals(await nextPresence(watcher), ["leave", "alice"]);
  assertEquals(await members(a, "room.1"), ["bob:1", "watcher:1"]);
  void bob;
});
