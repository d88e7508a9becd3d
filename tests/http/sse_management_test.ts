/**
 * `POST /disconnect` and `POST /unsubscribe` reach event streams (`GET /events`) as they reach
 * WebSocket connections: counted in the answer, told in-stream (`closed` 4003, `unsubscribed`),
 * on this instance and, through Redis' `push:control`, on the others. Streams have a user only
 * when a key is configured; a stream whose token expires ends with `closed` 4001; shutdown ends
 * streams with `closed` 1001.
 */
import { assert, assertEquals } from "@std/assert";
import type { Hub } from "../../src/push/hub.ts";
import type { RedisBroker } from "../../src/push/redis_broker.ts";
import { startTestServer, type TestServer } from "../support/server.ts";
import { startRedisServer } from "../support/redis_server.ts";
import { withDeadline } from "../support/async.ts";
import { SseClient, type SseEvent } from "../support/sse_client.ts";
import { TestSocket } from "../support/ws_client.ts";
import { publishOk } from "../support/push_api.ts";
import { claims, hsToken, seconds, SECRET } from "../support/jwt.ts";

const ARGS = ["--jwt-secret", SECRET];
const isData = (e: SseEvent) => e.data !== undefined && e.event === undefined;
const notice = (name: string) => (e: SseEvent) =>
  e.event === "notice" && JSON.parse(e.data!).notice === name;

/** A stream of `user` (a token allowing news and sports) on both, once both are subscribed. */
async function streamOf(
  server: TestServer,
  user: string,
  extra: Record<string, unknown> = {},
): Promise<SseClient> {
  const token = await hsToken(claims(user, { channels: ["news", "sports"], ...extra }));
  const sse = await SseClient.open(`${server.httpUrl}/events?channels=news,sports&token=${token}`);
  await sse.nextWhere((e) => notice("subscribed")(e) && e.data!.includes('"sports"'));
  return sse;
}

async function post(server: TestServer, path: string) {
  const response = await fetch(`${server.httpUrl}${path}`, { method: "POST" });
  return { status: response.status, body: await response.json() };
}

Deno.test("POST /disconnect ends the user's event streams with a closed 4003 notice and counts them with its WebSockets", async () => {
  await using server = await startTestServer(ARGS);
  await using alice1 = await streamOf(server, "alice");
  await using alice2 = await streamOf(server, "alice");
  await using bob = await streamOf(server, "bob");
  const token = await hsToken(claims("alice", { channels: ["news"] }));
  await using ws = new TestSocket(`${server.wsUrl}/?demo=false&channels=news&token=${token}`);
  await ws.nextMatching(/subscribed/);
  assertEquals(await post(server, "/disconnect?user=alice"), {
    status: 200,
    body: { disconnected: 3 },
  });
  for (const sse of [alice1, alice2]) {
    const last = await sse.nextWhere(notice("closed"));
    assertEquals(JSON.parse(last.data!), {
      notice: "closed",
      code: 4003,
      reason: "disconnected by server",
    });
    // The notice is the stream's last event: the response ends right after it.
    await sse.ended();
  }
  assertEquals((await ws.closed).code, 4003);
  assertEquals(server.metrics.userDisconnects, 3);
  // Bob's stream is untouched, and alice has no stream left to close.
  await publishOk(server, "news", "for bob");
  assertEquals(JSON.parse((await bob.nextWhere(isData)).data!).data, "for bob");
  assertEquals((await post(server, "/disconnect?user=alice")).body, { disconnected: 0 });
  assert(
    server.logs.some((l) => l.includes("sse.closed") && l.includes("disconnected by server")),
    "sse.closed names the reason",
  );
});

Deno.test("POST /unsubscribe takes the user's event streams out of the channel with the unsubscribed notice; id: drops it", async () => {
  await using server = await startTestServer(ARGS);
  await using alice = await streamOf(server, "alice");
  await using bob = await streamOf(server, "bob");
  assertEquals(await post(server, "/unsubscribe?user=alice&channel=news"), {
    status: 200,
    body: { unsubscribed: 1 },
  });
  const told = await alice.nextWhere(notice("unsubscribed"));
  assertEquals(JSON.parse(told.data!), {
    notice: "unsubscribed",
    channel: "news",
    reason: "unsubscribed by server",
  });
  assertEquals(told.id, `sports:${server.epoch}:0`);
  await publishOk(server, "news", "n1");
  await publishOk(server, "sports", "s1");
  // Alice's next publication is sports': news' was not sent to her stream. Bob gets both.
  const next = await alice.nextWhere(isData);
  assertEquals(JSON.parse(next.data!).channel, "sports");
  assertEquals(next.id, `sports:${server.epoch}:1`);
  assertEquals(JSON.parse((await bob.nextWhere(isData)).data!).channel, "news");
  assertEquals(server.metrics.userUnsubscribes, 1);
  // Nothing is left to take out.
  assertEquals((await post(server, "/unsubscribe?user=alice&channel=news")).body, {
    unsubscribed: 0,
  });
});

Deno.test("without a key streams have no user: /disconnect and /unsubscribe reach none of them", async () => {
  await using server = await startTestServer();
  await using sse = await SseClient.open(`${server.httpUrl}/events?channels=news`);
  await sse.nextWhere(notice("subscribed"));
  // The name it would have under a key (`anon:<stream id>`, as a WebSocket's `anon:<id>`).
  const id = /client=(\d+)/.exec(await server.waitForLog("sse.open"))![1];
  assertEquals((await post(server, `/disconnect?user=anon:${id}`)).body, { disconnected: 0 });
  await publishOk(server, "news", "still here");
  assertEquals(JSON.parse((await sse.nextWhere(isData)).data!).data, "still here");
});

Deno.test("Redis: /unsubscribe and /disconnect on instance A reach the user's event stream on B", async () => {
  await using redis = await startRedisServer();
  const start = async () => {
    const server = await startTestServer(["--redis", redis.url, ...ARGS]);
    const broker = (server.hub as Hub<RedisBroker>).broker;
    await withDeadline(broker.ready(), 10_000, "the hub to connect");
    return server;
  };
  await using a = await start();
  await using b = await start();
  await using onB = await streamOf(b, "alice");
  await using bobOnB = await streamOf(b, "bob");
  assertEquals(await post(a, "/unsubscribe?user=alice&channel=news"), {
    status: 200,
    body: { unsubscribed: 0, instances: 2 },
  });
  const told = await onB.nextWhere(notice("unsubscribed"), 10_000);
  assertEquals(JSON.parse(told.data!).channel, "news");
  assert(!told.id!.includes("news"), `id: still names news: ${told.id}`);
  assertEquals(b.metrics.userUnsubscribes, 1);
  await publishOk(a, "news", "n1");
  await publishOk(a, "sports", "s1");
  assertEquals(JSON.parse((await onB.nextWhere(isData, 10_000)).data!).channel, "sports");
  assertEquals(JSON.parse((await bobOnB.nextWhere(isData, 10_000)).data!).channel, "news");

  assertEquals(await post(a, "/disconnect?user=alice"), {
    status: 200,
    body: { disconnected: 0, instances: 2 },
  });
  const last = await onB.nextWhere(notice("closed"), 10_000);
  assertEquals(JSON.parse(last.data!).code, 4003);
  await onB.ended();
  assertEquals(b.metrics.userDisconnects, 1);
});

Deno.test("an event stream whose token expires ends with a closed 4001 notice, as a WebSocket gets 4001", async () => {
  await using server = await startTestServer(ARGS);
  // exp one second away: the stream ends once exp plus the 5 s leeway has passed.
  await using sse = await streamOf(server, "alice", { exp: seconds(1) });
  const last = await sse.nextWhere(notice("closed"), 10_000);
  assertEquals(JSON.parse(last.data!), { notice: "closed", code: 4001, reason: "token expired" });
  await sse.ended();
  assert(server.logs.some((l) => l.includes("sse.token_expired")), "sse.token_expired logged");
});

Deno.test("shutdown ends event streams with a closed 1001 going away notice", async () => {
  const server = await startTestServer();
  const sse = await SseClient.open(`${server.httpUrl}/events?channels=news`);
  await sse.nextWhere(notice("subscribed"));
  const last = sse.nextWhere(notice("closed"), 10_000);
  await server.shutdown();
  assertEquals(JSON.parse((await last).data!), {
    notice: "closed",
    code: 1001,
    reason: "going away",
  });
  await sse.ended();
});
