/**
 * `Idempotency-Key` in Redis mode: the key lives in Redis, so a retry that reaches another
 * instance replays the first instance's answer and publishes nothing; the key has the window as
 * its TTL; a repeat while the first is in flight (on another instance) waits for its answer, or
 * answers 409 when it does not come in time.
 */
import { assert, assertEquals, assertGreater, assertRejects } from "@std/assert";
import { startTestServer, type TestServer } from "../support/server.ts";
import { startRedisServer } from "../support/redis_server.ts";
import { withDeadline } from "../support/async.ts";
import { TestSocket } from "../support/ws_client.ts";
import { idsUntil } from "../support/push_api.ts";
import type { Hub } from "../../src/push/hub.ts";
import type { RedisBroker } from "../../src/push/redis_broker.ts";
import { RedisIdempotencyStore } from "../../src/http/idempotency_redis.ts";
import { ApiError } from "../../src/http/api_key.ts";
import { Logger } from "../../src/log.ts";
import { Metrics } from "../../src/metrics.ts";

async function start(url: string, window: string): Promise<TestServer> {
  const server = await startTestServer(["--redis", url, "--idempotency-window", window]);
  await withDeadline(brokerOf(server).ready(), 10_000, "the hub to connect");
  return server;
}

function brokerOf(server: TestServer): RedisBroker {
  return (server.hub as Hub<RedisBroker>).broker;
}

// deno-lint-ignore no-explicit-any
async function post(server: TestServer, key: string | null, body = "hello"): Promise<any> {
  const response = await fetch(`${server.httpUrl}/publish?channel=news`, {
    method: "POST",
    body,
    headers: { "content-type": "text/plain", ...(key === null ? {} : { "idempotency-key": key }) },
  });
  return { status: response.status, body: await response.json() };
}

Deno.test("Redis: the same Idempotency-Key on A then B publishes once; B replays A's answer", async () => {
  await using redis = await startRedisServer();
  await using a = await start(redis.url, "200ms");
  await using b = await start(redis.url, "200ms");
  await using onA = new TestSocket(a.wsUrl + "/?channels=news");
  await using onB = new TestSocket(b.wsUrl + "/?channels=news");
  await onA.nextMatching(/"subscribed"/);
  await onB.nextMatching(/"subscribed"/);
  const first = await post(a, "order-1");
  assertEquals(first.status, 200);
  assertEquals(first.body.id, 1);
  assertEquals(first.body.delivered, 2);
  assertEquals(await post(b, "order-1", "hello again"), first, "A's answer, nothing published");
  assertEquals(b.metrics.idempotentReplays, 1);
  // The key is in Redis with the window as its TTL.
  const broker = brokerOf(a);
  const keys = await broker.command(["KEYS", "push:idem:*"]) as Uint8Array[];
  assertEquals(keys.length, 1);
  const ttl = await broker.command(["PTTL", keys[0]]) as number;
  assertGreater(ttl, 0);
  assert(ttl <= 200, `PTTL ${ttl} is at most the window`);
  // A marker without a key: each subscriber got id 1 once, then the marker as id 2.
  assertEquals((await post(b, null, "marker")).body.id, 2);
  assertEquals(await idsUntil(onA, "news", 2), [1, 2]);
  assertEquals(await idsUntil(onB, "news", 2), [1, 2]);
  // After the window, the same key publishes again (poll: replays of id 1 until it expired).
  const deadline = Date.now() + 5_000;
  let id = 1;
  while (id === 1) {
    assert(Date.now() < deadline, "the key never expired");
    await new Promise((resolve) => setTimeout(resolve, 20));
    id = (await post(b, "order-1")).body.id;
  }
  assertEquals(id, 3);
  assertEquals(await idsUntil(onA, "news", 3), [3]);
});

Deno.test("Redis: a repeat while another instance publishes waits for its answer, or 409", async () => {
  await using redis = await startRedisServer();
  await using a = await start(redis.url, "5s");
  await using b = await start(redis.url, "5s");
  const logger = new Logger("silent");
  const onA = new RedisIdempotencyStore(brokerOf(a), 5_000, new Metrics(), logger);
  const metricsB = new Metrics();
  const onB = new RedisIdempotencyStore(brokerOf(b), 5_000, metricsB, logger);
  const first = await onA.claim("scope\nk");
  assert(first.replay === null);
  const waiting = onB.claim("scope\nk");
  const answer = { status: 200, body: { id: 7 }, headers: {} };
  await first.settle(answer);
  assertEquals((await withDeadline(waiting, 5_000, "the replay")).replay, answer);
  assertEquals(metricsB.idempotentReplays, 1);
  // A first request that never settles (its instance died): 409 after the bounded wait.
  const impatient = new RedisIdempotencyStore(brokerOf(b), 5_000, new Metrics(), logger, 100);
  assert((await onA.claim("scope\nstuck")).replay === null);
  const refused = await assertRejects(() => impatient.claim("scope\nstuck"), ApiError);
  assertEquals(refused.status, 409);
  // Nothing published releases the key: the next claim may publish.
  const released = await onA.claim("scope\nfailed");
  assert(released.replay === null);
  await released.settle(null);
  assertEquals((await onB.claim("scope\nfailed")).replay, null);
});
