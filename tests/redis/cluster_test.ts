/**
 * Several server processes sharing channels and history through a real redis-server.
 */
import { assert, assertEquals } from "@std/assert";
import {
  type ChildServer,
  FREE_PORTS_NO_DEMO,
  RUN_ARGS,
  spawnServer,
} from "../support/child_server.ts";
import { startRedisServer } from "../support/redis_server.ts";
import { TestSocket } from "../support/ws_client.ts";
import { publish, range } from "../support/push_api.ts";

/** Starts one server process on free ports against `redisUrl`. */
async function instance(redisUrl: string): Promise<ChildServer> {
  const server = await spawnServer(Deno.execPath(), [
    ...RUN_ARGS,
    ...FREE_PORTS_NO_DEMO,
    "--redis",
    redisUrl,
  ]);
  await waitForHealth(server, "ok");
  return server;
}

/** Polls /healthz (bounded): health is a state, not an event a client can await. */
async function waitForHealth(server: ChildServer, status: string): Promise<void> {
  const deadline = performance.now() + 10_000;
  while (true) {
    const health = await (await fetch(`http://127.0.0.1:${server.httpPort}/healthz`)).json();
    if (health.status === status) return;
    if (performance.now() > deadline) {
      throw new Error(`healthz never became ${status}: ${JSON.stringify(health)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Reads publications of `channel` until id `last`; returns [id, data] pairs. */
async function readUntil(
  ws: TestSocket,
  channel: string,
  last: number,
): Promise<[number, unknown][]> {
  const got: [number, unknown][] = [];
  while (got.at(-1)?.[0] !== last) {
    const message = JSON.parse(await ws.nextMatching(/^\{/));
    if (message.channel === channel && "data" in message) got.push([message.id, message.data]);
  }
  return got;
}

Deno.test("a publish to one instance reaches the subscribers of both, in order", async () => {
  await using redis = await startRedisServer();
  await using a = await instance(redis.url);
  await using b = await instance(redis.url);
  await using onA = new TestSocket(`ws://127.0.0.1:${a.wsPort}/?channels=news`);
  await using onB = new TestSocket(`ws://127.0.0.1:${b.wsPort}/?channels=news`);
  for (const ws of [onA, onB]) await ws.nextMatching(/subscribed/);
  const answers = [];
  for (let i = 1; i <= 50; i++) answers.push(await publish(i % 2 ? a : b, "news", `m${i}`));
  assertEquals(answers.map((r) => r.body.id), range(1, 50));
  assertEquals(answers[0].body.delivered, 2, "two instances listen to the channel");
  const expected: [number, unknown][] = range(1, 50).map((i) => [i, `m${i}`]);
  assertEquals(await readUntil(onA, "news", 50), expected);
  assertEquals(await readUntil(onB, "news", 50), expected);
});

Deno.test("a client that moves from instance A to B with its last id misses nothing", async () => {
  await using redis = await startRedisServer();
  await using a = await instance(redis.url);
  await using b = await instance(redis.url);
  const first = new TestSocket(`ws://127.0.0.1:${a.wsPort}/?channels=news`);
  const subscribed = JSON.parse(await first.nextMatching(/subscribed/));
  for (let i = 1; i <= 10; i++) await publish(a, "news", `m${i}`);
  const before = await readUntil(first, "news", 10);
  first.socket.close();
  await first.closed;
  for (let i = 11; i <= 20; i++) await publish(a, "news", `m${i}`);
  const publishing = (async () => {
    for (let i = 21; i <= 30; i++) await publish(b, "news", `m${i}`);
  })();
  await using second = new TestSocket(
    `ws://127.0.0.1:${b.wsPort}/?channels=news&since=news:${subscribed.epoch}:10`,
  );
  const notice = JSON.parse(await second.nextMatching(/subscribed/));
  assertEquals([notice.recovered, notice.epoch], [true, subscribed.epoch]);
  await publishing;
  const after = await readUntil(second, "news", 30);
  assertEquals([...before, ...after].map(([id]) => id), range(1, 30));
});

Deno.test("Redis killed and restarted: clients stay, publishes get 503, then all recover", async () => {
  await using redis = await startRedisServer();
  await using a = await instance(redis.url);
  await using b = await instance(redis.url);
  await using onA = new TestSocket(`ws://127.0.0.1:${a.wsPort}/?channels=news`);
  await using onB = new TestSocket(`ws://127.0.0.1:${b.wsPort}/?channels=news`);
  for (const ws of [onA, onB]) await ws.nextMatching(/subscribed/);
  for (let i = 1; i <= 5; i++) await publish(a, "news", `m${i}`);
  for (const ws of [onA, onB]) await readUntil(ws, "news", 5);

  await redis.stop();
  await waitForHealth(a, "degraded");
  const refused = await publish(a, "news", "while down");
  assertEquals(refused.status, 503);
  assert(String(refused.body.error).includes("Redis"));

  await redis.restart();
  await waitForHealth(a, "ok");
  await waitForHealth(b, "ok");
  // Redis came back empty (no persistence): the history was reset, so each client is told.
  for (const ws of [onA, onB]) {
    const lost = JSON.parse(await ws.nextMatching(/"notice":"lost"/));
    assertEquals(lost.channel, "news");
  }
  const next = await publish(b, "news", "after restart");
  assertEquals([next.status, next.body.id], [200, 1]);
  for (const ws of [onA, onB]) assertEquals(await readUntil(ws, "news", 1), [[1, "after restart"]]);
  // Both clients stayed connected throughout: the same sockets still work.
  onA.socket.send("still here");
  assertEquals(await onA.nextMatching(/^Server received/), "Server received: still here");
});
