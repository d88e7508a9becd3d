/**
 * `POST /unsubscribe?user=U&channel=C` through real sockets: every connection of the user leaves
 * the channel with the `unsubscribed` notice, others stay; the refusals; across two instances
 * through Redis.
 */
import { assertEquals, assertStringIncludes } from "@std/assert";
import type { Hub } from "../../src/push/hub.ts";
import type { RedisBroker } from "../../src/push/redis_broker.ts";
import { startTestServer, type TestServer } from "../support/server.ts";
import { startRedisServer } from "../support/redis_server.ts";
import { withDeadline } from "../support/async.ts";
import { TestSocket } from "../support/ws_client.ts";
import { claims, hsToken, SECRET } from "../support/jwt.ts";

const NOTICE = { notice: "unsubscribed", channel: "news", reason: "unsubscribed by server" };

/** A connection of `user` (a JWT allowing news and sports) subscribed to both. */
async function connectAs(server: TestServer, user: string): Promise<TestSocket> {
  const token = await hsToken(claims(user, { channels: ["news", "sports"] }));
  const ws = new TestSocket(`${server.wsUrl}/?demo=false&channels=news,sports&token=${token}`);
  await ws.nextMatching(/"subscribed","channel":"news"/);
  await ws.nextMatching(/"subscribed","channel":"sports"/);
  return ws;
}

async function unsubscribe(server: TestServer, query: string, headers = {}, method = "POST") {
  const response = await fetch(`${server.httpUrl}/unsubscribe?${query}`, { method, headers });
  return { status: response.status, body: await response.json() };
}

const KEY = { authorization: "Bearer api-key" };

/** Publishes `text` to `channel` with the API key, asserting it was accepted. */
async function publishOk(server: TestServer, channel: string, text: string): Promise<void> {
  const response = await fetch(`${server.httpUrl}/publish?channel=${channel}`, {
    method: "POST",
    body: text,
    headers: KEY,
  });
  assertEquals(response.status, 200, await response.text());
}
const ARGS = ["--jwt-secret", SECRET, "--publish-token", "api-key"];

Deno.test("POST /unsubscribe takes every connection of the user out of the channel, told why", async () => {
  await using server = await startTestServer(ARGS);
  await using a1 = await connectAs(server, "alice");
  await using a2 = await connectAs(server, "alice");
  await using bob = await connectAs(server, "bob");
  assertEquals(await unsubscribe(server, "user=alice&channel=news", KEY), {
    status: 200,
    body: { unsubscribed: 2 },
  });
  for (const ws of [a1, a2]) {
    assertEquals(JSON.parse(await ws.nextMatching(/unsubscribed/)), NOTICE);
  }
  // Again: nobody is left in it.
  assertEquals((await unsubscribe(server, "user=alice&channel=news", KEY)).body, {
    unsubscribed: 0,
  });
  await publishOk(server, "news", "after");
  await publishOk(server, "sports", "still");
  assertEquals(JSON.parse(await bob.nextMatching(/"data"/)).channel, "news", "bob stays");
  for (const ws of [a1, a2]) {
    // The next publication alice gets is sports': news' was not sent to her.
    assertEquals(JSON.parse(await ws.nextMatching(/"data"/)).channel, "sports");
  }
  assertEquals(server.metrics.userUnsubscribes, 2);
  // Refusals.
  assertEquals((await unsubscribe(server, "user=bob&channel=news")).status, 401);
  assertEquals((await unsubscribe(server, "user=bob&channel=news", KEY, "GET")).status, 405);
  const noUser = await unsubscribe(server, "channel=news", KEY);
  assertEquals(noUser.status, 400);
  assertStringIncludes(noUser.body.error, "?user=");
  const badChannel = await unsubscribe(server, "user=bob&channel=a:b", KEY);
  assertEquals(badChannel.status, 400);
  assertStringIncludes(badChannel.body.error, "?channel=");
  assertEquals(server.metrics.managementRejected.get(400), 2);
  assertStringIncludes(server.metrics.render(), 'push_management_rejected_total{status="401"} 1');
});

Deno.test("Redis: POST /unsubscribe on instance A takes the user out of the channel on A and B", async () => {
  await using redis = await startRedisServer();
  const start = async () => {
    const server = await startTestServer(["--redis", redis.url, ...ARGS]);
    const broker = (server.hub as Hub<RedisBroker>).broker;
    await withDeadline(broker.ready(), 10_000, "the hub to connect");
    return server;
  };
  await using a = await start();
  await using b = await start();
  await using onA = await connectAs(a, "alice");
  await using onB = await connectAs(b, "alice");
  await using bobOnB = await connectAs(b, "bob");
  assertEquals(await unsubscribe(a, "user=alice&channel=news", KEY), {
    status: 200,
    body: { unsubscribed: 1, instances: 2 },
  });
  for (const ws of [onA, onB]) {
    const notice = await withDeadline(ws.nextMatching(/unsubscribed/), 10_000, "the notice");
    assertEquals(JSON.parse(notice), NOTICE);
  }
  await publishOk(a, "news", "after");
  await publishOk(a, "sports", "still");
  const got = await withDeadline(bobOnB.nextMatching(/"data"/), 10_000, "bob's message");
  assertEquals(JSON.parse(got).channel, "news");
  const next = await withDeadline(onB.nextMatching(/"data"/), 10_000, "alice's message");
  assertEquals(JSON.parse(next).channel, "sports", "alice on B left news");
  assertEquals([a.metrics.userUnsubscribes, b.metrics.userUnsubscribes], [1, 1]);
});
