/**
 * `POST /disconnect?user=SUB`: the API key rule, 400 without a user, 4003 on every connection of
 * the user, `{"disconnected":N}`; across two instances through Redis.
 *
 * Until the push handler registers its connections in `app.sessions` (the JWT handshake work,
 * issue 14), the in-process tests register real connections themselves, as the handler will.
 */
import { assertEquals, assertStringIncludes } from "@std/assert";
import { createDisconnectHandler } from "../../src/http/management_api.ts";
import { Sessions } from "../../src/push/sessions.ts";
import { Logger } from "../../src/log.ts";
import { Metrics } from "../../src/metrics.ts";
import { HubUnavailableError } from "../../src/push/broker.ts";
import type { Hub } from "../../src/push/hub.ts";
import type { RedisBroker } from "../../src/push/redis_broker.ts";
import { startTestServer, type TestServer } from "../support/server.ts";
import { startRedisServer } from "../support/redis_server.ts";
import { withDeadline } from "../support/async.ts";
import { TestSocket } from "../support/ws_client.ts";

class FakePeer {
  closed: [number | undefined, string | undefined][] = [];
  constructor(readonly id: number) {}
  close(code?: number, reason?: string): void {
    this.closed.push([code, reason]);
  }
}

function handlerWith(token: string, broadcast?: (user: string) => Promise<number>) {
  const sessions = new Sessions<FakePeer>();
  const metrics = new Metrics();
  const handler = createDisconnectHandler({
    sessions,
    token,
    broadcast,
    logger: new Logger("silent"),
    metrics,
  });
  const call = async (
    query: string,
    headers: Record<string, string> = {},
    peer = "127.0.0.1",
    method = "POST",
  ) => {
    const response = await handler(
      new Request(`http://x/disconnect${query}`, { method, headers }),
      peer,
    );
    return { status: response.status, body: await response.json(), headers: response.headers };
  };
  return { sessions, metrics, call };
}

Deno.test("disconnect: every connection of the user closes with 4003; the answer counts them", async () => {
  const { sessions, metrics, call } = handlerWith("api-key");
  const [a1, a2, b1] = [new FakePeer(1), new FakePeer(2), new FakePeer(3)];
  sessions.add("alice", a1);
  sessions.add("alice", a2);
  sessions.add("bob", b1);
  const key = { authorization: "Bearer api-key" };
  const done = await call("?user=alice", key);
  assertEquals([done.status, done.body], [200, { disconnected: 2 }]);
  for (const peer of [a1, a2]) assertEquals(peer.closed, [[4003, "disconnected by server"]]);
  assertEquals(b1.closed, [], "another user's connection stays");
  assertEquals((await call("?user=nobody", key)).body, { disconnected: 0 });
  assertEquals(metrics.userDisconnects, 2);
  // Refusals: no key or a wrong one (401, even from loopback), no user (400), not POST (405).
  const none = await call("?user=bob");
  assertEquals(none.status, 401);
  assertStringIncludes(none.headers.get("www-authenticate") ?? "", "Bearer");
  assertEquals((await call("?user=bob", { authorization: "Bearer wrong" })).status, 401);
  const missing = await call("", key);
  assertEquals(missing.status, 400);
  assertStringIncludes(missing.body.error, "?user=");
  assertEquals((await call(`?user=${"u".repeat(257)}`, key)).status, 400);
  assertEquals((await call("?user=bob", key, "127.0.0.1", "GET")).status, 405);
  assertEquals(b1.closed, [], "no refused request closed anything");
  assertEquals(metrics.disconnectsRejected.get(401), 2);
  assertEquals(metrics.disconnectsRejected.get(400), 2);
});

Deno.test("disconnect without an API key: loopback peers that are not browsers only", async () => {
  const { sessions, call } = handlerWith("");
  const peer = new FakePeer(1);
  sessions.add("alice", peer);
  assertEquals((await call("?user=alice", {}, "192.0.2.7")).status, 403);
  const browser = await call("?user=alice", { origin: "https://evil.example" });
  assertEquals(browser.status, 403);
  assertStringIncludes(browser.body.error, "--publish-token");
  assertEquals(peer.closed, []);
  assertEquals((await call("?user=alice", {}, "::1")).body, { disconnected: 1 });
});

Deno.test("disconnect in Redis mode: instances reached, and 503 (local ones closed) while Redis is away", async () => {
  let down = false;
  const asked: string[] = [];
  const { sessions, call } = handlerWith("", (user) => {
    asked.push(user);
    return down ? Promise.reject(new HubUnavailableError("down")) : Promise.resolve(3);
  });
  sessions.add("alice", new FakePeer(1));
  assertEquals((await call("?user=alice")).body, { disconnected: 1, instances: 3 });
  down = true;
  sessions.add("alice", new FakePeer(2));
  const away = await call("?user=alice");
  assertEquals(away.status, 503);
  assertEquals(away.body.disconnected, 2);
  assertEquals(away.headers.get("retry-after"), "1");
  assertEquals(asked, ["alice", "alice"]);
});

/** Opens a client of `/` on `server` and registers its connection as `user`'s. */
async function connectAs(server: TestServer, user: string): Promise<TestSocket> {
  const before = new Set(server.ws.clients);
  const ws = new TestSocket(`${server.wsUrl}/?demo=false&channels=news`);
  await ws.nextMatching(/subscribed/);
  const mine = [...server.ws.clients].filter((c) => !before.has(c));
  assertEquals(mine.length, 1);
  server.sessions.add(user, mine[0]);
  return ws;
}

async function disconnect(server: TestServer, user: string) {
  const response = await fetch(`${server.httpUrl}/disconnect?user=${user}`, {
    method: "POST",
    headers: { authorization: "Bearer api-key" },
  });
  return { status: response.status, body: await response.json() };
}

Deno.test("POST /disconnect on the HTTP port closes the user's sockets with 4003", async () => {
  await using server = await startTestServer(["--publish-token", "api-key"]);
  await using a1 = await connectAs(server, "alice");
  await using a2 = await connectAs(server, "alice");
  await using b1 = await connectAs(server, "bob");
  assertEquals(await disconnect(server, "alice"), { status: 200, body: { disconnected: 2 } });
  for (const ws of [a1, a2]) {
    const ev = await ws.closed;
    assertEquals([ev.code, ev.reason], [4003, "disconnected by server"]);
  }
  assertEquals(b1.socket.readyState, WebSocket.OPEN);
  assertStringIncludes(server.metrics.render(), 'push_close_codes_sent_total{code="4003"} 2');
  assertStringIncludes(server.metrics.render(), "push_user_disconnects_total 2");
});

Deno.test("Redis: POST /disconnect on instance A closes the user's connections on A and B", async () => {
  await using redis = await startRedisServer();
  const start = async () => {
    const server = await startTestServer(["--redis", redis.url, "--publish-token", "api-key"]);
    const broker = (server.hub as Hub<RedisBroker>).broker;
    await withDeadline(broker.ready(), 10_000, "the hub to connect");
    return server;
  };
  await using a = await start();
  await using b = await start();
  await using onA = await connectAs(a, "alice");
  await using onB1 = await connectAs(b, "alice");
  await using onB2 = await connectAs(b, "alice");
  await using bobOnB = await connectAs(b, "bob");
  // N is this instance's count; Redis handed the request to both instances.
  assertEquals(await disconnect(a, "alice"), {
    status: 200,
    body: { disconnected: 1, instances: 2 },
  });
  for (const ws of [onA, onB1, onB2]) {
    const ev = await withDeadline(ws.closed, 10_000, "the close");
    assertEquals([ev.code, ev.reason], [4003, "disconnected by server"]);
  }
  assertEquals(bobOnB.socket.readyState, WebSocket.OPEN);
  assertEquals(b.metrics.userDisconnects, 2, "B closed its two, relayed through Redis");
  assertEquals(a.metrics.userDisconnects, 1, "A closed its own once (its own message ignored)");
});
