/**
 * Presence through real sockets: WebSocket clients with JWTs see each other's join and leave
 * notices, `GET /presence` lists the members with their connections and info, `--max-presence`
 * refuses a new member, anonymous clients are `anon:<id>`, and the API's refusals.
 */
import { assertEquals, assertRejects, assertStringIncludes } from "@std/assert";
import { ConfigError } from "../../src/config.ts";
import { startTestServer, type TestServer } from "../support/server.ts";
import { TestSocket } from "../support/ws_client.ts";
import { claims, hsToken, SECRET } from "../support/jwt.ts";
import { gauge } from "../support/push_api.ts";
import { SseClient } from "../support/sse_client.ts";

const KEY = { authorization: "Bearer api-key" };
const ARGS = ["--jwt-secret", SECRET, "--publish-token", "api-key", "--presence", "room.*"];

/** A connection of `user` (its token allowing room.*), subscribed to `channel`. */
async function join(
  server: TestServer,
  user: string,
  channel = "room.1",
  info?: Record<string, unknown>,
): Promise<TestSocket> {
  const token = await hsToken(claims(user, { channels: ["room.*"], ...(info ? { info } : {}) }));
  const ws = new TestSocket(`${server.wsUrl}/?demo=false&channels=${channel}&token=${token}`);
  await ws.nextMatching(/"notice":"subscribed"/);
  return ws;
}

async function presence(server: TestServer, query: string, headers: HeadersInit = KEY) {
  const response = await fetch(`${server.httpUrl}/presence?${query}`, { headers });
  return { status: response.status, body: await response.json() };
}

Deno.test("join and leave notices reach the other members; GET /presence lists them", async () => {
  await using server = await startTestServer(ARGS);
  await using bob = await join(server, "bob");
  const alice = await join(server, "alice", "room.1", { name: "Alice" });
  assertEquals(JSON.parse(await bob.nextMatching(/"notice":"join"/)), {
    notice: "join",
    channel: "room.1",
    user: "alice",
    info: { name: "Alice" },
  });
  const aliceTab = await join(server, "alice", "room.1", { name: "Alice" });
  assertEquals(await presence(server, "channel=room.1"), {
    status: 200,
    body: {
      channel: "room.1",
      users: [
        { user: "bob", connections: 1 },
        { user: "alice", connections: 2, info: { name: "Alice" } },
      ],
    },
  });
  assertEquals(await gauge(server, "push_presence_members"), 2);
  await alice[Symbol.asyncDispose]();
  // Alice's other tab keeps her in: the next notice bob sees is her leave after the last tab.
  await aliceTab[Symbol.asyncDispose]();
  assertEquals(JSON.parse(await bob.nextMatching(/"notice":"(join|leave)"/)), {
    notice: "leave",
    channel: "room.1",
    user: "alice",
  });
  assertEquals((await presence(server, "channel=room.1")).body.users, [
    { user: "bob", connections: 1 },
  ]);
});

Deno.test("a client does not get its own join; an empty channel lists no users", async () => {
  await using server = await startTestServer(ARGS);
  assertEquals((await presence(server, "channel=room.9")).body, { channel: "room.9", users: [] });
  await using alice = await join(server, "alice", "room.9");
  await using bob = await join(server, "bob", "room.9");
  await alice.nextMatching(/"notice":"join","channel":"room.9","user":"bob"/);
  // Bob's first message after subscribed: an echo of what he sends, not his own join.
  bob.socket.send("hello");
  assertEquals(await bob.next(), "Server received: hello");
});

Deno.test("--max-presence refuses a new member with an error; a member's extra tab is fine", async () => {
  await using server = await startTestServer([...ARGS, "--max-presence", "2"]);
  await using a = await join(server, "a");
  await using b = await join(server, "b");
  const token = await hsToken(claims("c", { channels: ["room.*"] }));
  await using c = new TestSocket(`${server.wsUrl}/?demo=false&channels=room.1&token=${token}`);
  assertEquals(JSON.parse(await c.nextMatching(/error/)), {
    error: "Too many members in room.1: at most 2 users keep presence in one channel " +
      "(--max-presence).",
    channel: "room.1",
  });
  await using aTab = await join(server, "a");
  assertEquals(
    (await presence(server, "channel=room.1")).body.users.map((u: { user: string }) => u.user),
    ["a", "b"],
  );
  const metrics = await (await fetch(`${server.httpUrl}/metrics`)).text();
  assertStringIncludes(metrics, "push_presence_refused_total 1");
  // After b leaves, c may join.
  await b[Symbol.asyncDispose]();
  await a.nextMatching(/"notice":"leave"/);
  c.socket.send("subscribe room.1");
  await c.nextMatching(/"notice":"subscribed"/);
  assertEquals(JSON.parse(await a.nextMatching(/"notice":"join"/)).user, "c");
  void aTab;
});

Deno.test("anonymous clients are members anon:<client id>, also without any key", async () => {
  await using server = await startTestServer(["--publish-token", "api-key", "--presence", "lobby"]);
  await using x = new TestSocket(`${server.wsUrl}/?demo=false&channels=lobby`);
  await x.nextMatching(/"notice":"subscribed"/);
  await using y = new TestSocket(`${server.wsUrl}/?demo=false&channels=lobby`);
  await y.nextMatching(/"notice":"subscribed"/);
  const joined = JSON.parse(await x.nextMatching(/"notice":"join"/));
  assertEquals(Object.keys(joined), ["notice", "channel", "user"]);
  const users = (await presence(server, "channel=lobby")).body.users as { user: string }[];
  assertEquals(users.map((u) => u.user), [
    users[0].user,
    joined.user,
  ]);
  for (const u of users) assertEquals(/^anon:\d+$/.test(u.user), true, u.user);
});

Deno.test("GET /presence: 400 without a channel, 404 for one that keeps none, 401 without key", async () => {
  await using server = await startTestServer(ARGS);
  assertEquals(await presence(server, ""), {
    status: 400,
    body: { error: "Invalid or missing ?channel=: use 1-64 of A-Z a-z 0-9 _ - ." },
  });
  assertEquals(await presence(server, "channel=news"), {
    status: 404,
    body: { error: "Channel news keeps no presence: it does not match --presence." },
  });
  assertEquals((await presence(server, "channel=room.1", {})).status, 401);
  assertEquals(
    (await presence(server, "channel=room.1", { authorization: "Bearer no" })).status,
    401,
  );
});

Deno.test("--presence with a pattern that is no channel name stops the start (ConfigError)", async () => {
  const err = await assertRejects(() => startTestServer(["--presence", "room.*,bad name"]));
  assertEquals(err instanceof ConfigError, true);
  assertStringIncludes((err as Error).message, "Invalid --presence");
});

Deno.test("an event stream (GET /events) is a member too, and gets join/leave as notice events", async () => {
  await using server = await startTestServer(ARGS);
  const token = await hsToken(claims("carol", { channels: ["room.*"], info: { via: "sse" } }));
  await using sse = await SseClient.open(`${server.httpUrl}/events?channels=room.1`, {
    authorization: `Bearer ${token}`,
  });
  await sse.nextWhere((e) => e.data?.includes('"subscribed"') ?? false);
  const bob = await join(server, "bob");
  const joined = await sse.nextWhere((e) => e.data?.includes('"join"') ?? false);
  assertEquals([joined.event, JSON.parse(joined.data!)], [
    "notice",
    { notice: "join", channel: "room.1", user: "bob" },
  ]);
  // Bob sees carol listed, with her token's info.
  assertEquals((await presence(server, "channel=room.1")).body.users, [
    { user: "carol", connections: 1, info: { via: "sse" } },
    { user: "bob", connections: 1 },
  ]);
  await bob[Symbol.asyncDispose]();
  const left = await sse.nextWhere((e) => e.data?.includes('"leave"') ?? false);
  assertEquals(JSON.parse(left.data!), { notice: "leave", channel: "room.1", user: "bob" });
});
