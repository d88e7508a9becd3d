/**
 * The Redis broker against a real redis-server, in-process: key TTLs and ids across expiry, a
 * resume larger than the client's queue, every join waiting for the channel's subscription,
 * catch-ups retried after error replies, `SET epoch NX` once per connection, and the control
 * channel between instances.
 */
import { assert, assertEquals, assertGreater } from "@std/assert";
import { startTestServer, type TestServer } from "../support/server.ts";
import { startRedisServer } from "../support/redis_server.ts";
import { pollUntil, withDeadline } from "../support/async.ts";
import { TestSocket } from "../support/ws_client.ts";
import { RedisClient } from "../../src/redis/client.ts";
import { parseRedisUrl } from "../../src/redis/url.ts";
import type { Hub } from "../../src/push/hub.ts";
import { RedisBroker } from "../../src/push/redis_broker.ts";
import { Logger } from "../../src/log.ts";
import { idsUntil, publishOk, range } from "../support/push_api.ts";

const decoder = new TextDecoder();

/** Starts the whole server in-process against `redisUrl` and waits for both connections. */
async function redisServer(redisUrl: string, args: string[] = []): Promise<TestServer> {
  const server = await startTestServer(["--redis", redisUrl, ...args]);
  await withDeadline((server.hub as Hub<RedisBroker>).broker.ready(), 10_000, "the hub to connect");
  return server;
}

/** A plain client for inspecting and provoking the test Redis. */
async function admin(url: string): Promise<RedisClient & AsyncDisposable> {
  const client = new RedisClient(parseRedisUrl(url)) as RedisClient & AsyncDisposable;
  client[Symbol.asyncDispose] = () => client.close();
  client.start();
  await client.ready();
  return client;
}

Deno.test("--history-ttl gives the stream and counter a TTL; ids continue after they expire", async () => {
  await using redis = await startRedisServer();
  await using server = await redisServer(redis.url, ["--history-ttl", "400ms"]);
  await using r = await admin(redis.url);
  for (let i = 1; i <= 3; i++) assertEquals((await publishOk(server, "news", `m${i}`)).id, i);
  for (const key of ["push:{news}:seq", "push:{news}:history"]) {
    const ttl = await r.command(["PTTL", key]) as number;
    assert(ttl > 0 && ttl <= 400, `${key} has PTTL ${ttl}`);
  }
  await pollUntil(
    async () => await r.command(["EXISTS", "push:{news}:seq", "push:{news}:history"]) === 0,
    10_000,
    "the keys expire",
    20,
  );
  // Created again, the channel continues above every id given out: position 2 cannot pass for
  // a position in the new history.
  const again = await publishOk(server, "news", "again");
  assertEquals(again.id, 4);
  await using late = new TestSocket(`${server.wsUrl}/?channels=news&since=news:${again.epoch}:2`);
  assertEquals(JSON.parse(await late.nextMatching(/notice/)).notice, "lost");
  // A new channel starts at the floor too, even when the floor moves before its first
  // publication: a live subscriber takes that first id as the start, not as a gap.
  await using fresh = new TestSocket(`${server.wsUrl}/?channels=other`);
  assertEquals(JSON.parse(await fresh.nextMatching(/subscribed/)).id, 4);
  assertEquals((await publishOk(server, "news", "moves the floor")).id, 5);
  assertEquals((await publishOk(server, "other", "first")).id, 6);
  assertEquals(await idsUntil(fresh, "other", 6), [6]);
});

Deno.test("Redis: a resume of 2 MiB through a 64 KiB queue streams in full, in order", async () => {
  await using redis = await startRedisServer();
  await using server = await redisServer(redis.url, [
    "--max-queue-bytes",
    "64KiB",
    "--history",
    "1000",
  ]);
  const payload = "x".repeat(4 * 1024);
  let epoch = "";
  for (let i = 0; i < 512; i++) epoch = (await publishOk(server, "news", payload)).epoch;
  await using resumed = new TestSocket(`${server.wsUrl}/?channels=news&since=news:${epoch}:0`);
  assertEquals(JSON.parse(await resumed.nextMatching(/subscribed/)).recovered, true);
  const publishing = (async () => {
    for (let i = 0; i < 100; i++) await publishOk(server, "news", `live ${i}`);
  })();
  const [ids] = await Promise.all([idsUntil(resumed, "news", 612), publishing]);
  assertEquals(ids, range(1, 612));
  assertEquals(server.metrics.slowConsumerDisconnects, 0);
});

/**
 * A TCP proxy to `port` that holds every client chunk containing SUBSCRIBE for `delayMs`: it
 * widens the window in which a channel's Redis subscription is not yet confirmed.
 */
function delayingProxy(port: number, delayMs: number) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const pipes: Promise<unknown>[] = [];
  const conns: Deno.Conn[] = [];
  const SUBSCRIBE = new TextEncoder().encode("SUBSCRIBE");
  const has = (chunk: Uint8Array) =>
    chunk.some((_, i) => SUBSCRIBE.every((b, j) => chunk[i + j] === b));
  const pump = async (from: Deno.Conn, to: Deno.Conn, delay: boolean) => {
    try {
      for await (const chunk of from.readable) {
        if (delay && has(chunk)) await new Promise((resolve) => setTimeout(resolve, delayMs));
        const writer = to.writable.getWriter();
        await writer.write(chunk);
        writer.releaseLock();
      }
    } catch {
      // Either side closed.
    }
    try {
      to.close();
    } catch {
      // Already closed.
    }
  };
  const accepting = (async () => {
    for await (const client of listener) {
      const upstream = await Deno.connect({ hostname: "127.0.0.1", port });
      conns.push(client, upstream);
      pipes.push(pump(client, upstream, true), pump(upstream, client, false));
    }
  })();
  return {
    url: `redis://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
    async [Symbol.asyncDispose]() {
      listener.close();
      await accepting.catch(() => {});
      for (const conn of conns) {
        try {
          conn.close();
        } catch {
          // Already closed.
        }
      }
      await Promise.all(pipes);
    },
  };
}

Deno.test("Redis: every local join waits for the channel's subscription, so none misses a publication", async () => {
  await using redis = await startRedisServer();
  await using proxy = delayingProxy(redis.port, 300);
  await using server = await redisServer(proxy.url);
  // Both join while the channel's SUBSCRIBE is held back (300 ms), and every publication
  // happens in that window.
  await using first = new TestSocket(`${server.wsUrl}/?channels=news`);
  await first.opened;
  await using second = new TestSocket(`${server.wsUrl}/?channels=news`);
  await second.opened;
  let last = 0;
  for (let i = 0; i < 5; i++) last = (await publishOk(server, "news", `m${i}`)).id;
  // No later publication reveals a gap: each must have all after its notice's id by itself.
  for (const ws of [first, second]) {
    const notice = JSON.parse(await ws.nextMatching(/subscribed/));
    if (notice.id < last) {
      const ids = await withDeadline(idsUntil(ws, "news", last), 2_000, "every publication");
      assertEquals(ids, range(notice.id + 1, last));
    }
  }
  // And live delivery works for both from there.
  const next = (await publishOk(server, "news", "live")).id;
  for (const ws of [first, second]) assertEquals(await idsUntil(ws, "news", next), [next]);
});

Deno.test("Redis: a catch-up refused with an error reply (OOM) is retried until it succeeds", async () => {
  await using redis = await startRedisServer();
  await using r = await admin(redis.url);
  await r.command(["CONFIG", "SET", "maxmemory", "1"]); // every write is refused: OOM
  await using server = await redisServer(redis.url);
  await using ws = new TestSocket(`${server.wsUrl}/?channels=news`);
  await server.waitForLog("redis.catch_up_failed");
  await r.command(["CONFIG", "SET", "maxmemory", "0"]);
  const notice = JSON.parse(
    await withDeadline(ws.nextMatching(/subscribed/), 10_000, "the notice"),
  );
  assertEquals([notice.channel, notice.id], ["news", 0]);
  assertEquals((await publishOk(server, "news", "after")).id, 1);
  assertEquals(await idsUntil(ws, "news", 1), [1]);
});

Deno.test("Redis: SET epoch NX runs once per connection, not once per subscribe", async () => {
  await using redis = await startRedisServer();
  await using r = await admin(redis.url);
  await using server = await redisServer(redis.url);
  const sockets = Array.from(
    { length: 10 },
    (_, i) => new TestSocket(`${server.wsUrl}/?channels=c${i % 3}`),
  );
  try {
    for (const ws of sockets) await ws.nextMatching(/subscribed/);
  } finally {
    for (const ws of sockets) await ws[Symbol.asyncDispose]();
  }
  const stats = decoder.decode(await r.command(["INFO", "commandstats"]) as Uint8Array);
  const calls = Number(/cmdstat_set:calls=(\d+)/.exec(stats)?.[1] ?? 0);
  assertEquals(calls, 1);
  assertGreater(Number(/cmdstat_get:calls=(\d+)/.exec(stats)?.[1] ?? 0), 10);
});

Deno.test("Redis: broadcastControl reaches every other broker's onControl, never its own", async () => {
  await using redis = await startRedisServer();
  const heard: Record<string, string[]> = { a: [], b: [], c: [] };
  const warnings: string[] = [];
  const logger = new Logger("warn", (line) => warnings.push(line));
  let arrived: () => void = () => {};
  const brokers = Object.keys(heard).map((name) =>
    new RedisBroker({
      redis: parseRedisUrl(redis.url),
      historySize: 0,
      logger,
      onControl: (m) => {
        heard[name].push(
          "disconnect" in m
            ? m.disconnect
            : "presence" in m
            ? `${m.presence}:${m.user}`
            : `${m.unsubscribe}/${m.channel}`,
        );
        arrived();
      },
    })
  );
  try {
    for (const broker of brokers) broker.start();
    await withDeadline(Promise.all(brokers.map((b) => b.ready())), 10_000, "the brokers");
    // Anyone with Redis access can publish on the channel: junk is logged and ignored.
    await using r = await admin(redis.url);
    assertEquals(await r.command(["PUBLISH", "push:control", "{not json"]), 3);
    assertEquals(await r.command(["PUBLISH", "push:control", '{"disconnect":7}']), 3);
    const all = new Promise<void>((resolve) => {
      arrived = () => heard.a.length + heard.b.length + heard.c.length === 4 && resolve();
    });
    assertEquals(await brokers[0].broadcastControl({ disconnect: "alice" }), 3);
    assertEquals(await brokers[1].broadcastControl({ disconnect: "bob" }), 3);
    await withDeadline(all, 10_000, "the control messages");
    // Each connection delivers in publish order: when a heard bob, its own alice had come (and
    // was skipped), and so had the junk before it.
    assertEquals(heard, { a: ["bob"], b: ["alice"], c: ["alice", "bob"] });
    assertEquals(warnings.filter((l) => l.includes("redis.control_invalid")).length, 6);
  } finally {
    await Promise.all(brokers.map((b) => b.close()));
  }
});
