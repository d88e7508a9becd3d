/**
 * History over real sockets: a resume larger than the client's queue streams and succeeds,
 * live slow consumers are still dropped, and idle channels are dropped after `--history-ttl`.
 */
import { assert, assertEquals } from "@std/assert";
import { startTestServer } from "../support/server.ts";
import { TestSocket } from "../support/ws_client.ts";
import { RawClient } from "../support/raw_client.ts";
import { pollUntil } from "../support/async.ts";
import { gauge, idsUntil, publishId, range } from "../support/push_api.ts";

Deno.test("a resume of 2 MiB through a 64 KiB queue streams in full; live slow consumers still go", async () => {
  await using server = await startTestServer([
    "--max-queue-bytes",
    "64KiB",
    "--history",
    "1000",
    "--history-bytes",
    "4MiB",
    "--close-timeout",
    "200ms",
  ]);
  const payload = "x".repeat(4 * 1024);
  for (let i = 0; i < 512; i++) await publishId(server, "news", payload); // 2 MiB of history
  await using resumed = new TestSocket(
    `${server.wsUrl}/?channels=news&since=news:${server.epoch}:0`,
  );
  const notice = JSON.parse(await resumed.nextMatching(/subscribed/));
  assertEquals(notice.recovered, true);
  // Publications during the replay are read from history in turn: every one, once, in order.
  const publishing = (async () => {
    for (let i = 0; i < 100; i++) await publishId(server, "news", `live ${i}`);
  })();
  const [ids] = await Promise.all([idsUntil(resumed, "news", 612), publishing]);
  assertEquals(ids, range(1, 612));
  assertEquals(server.metrics.slowConsumerDisconnects, 0, "the resuming client was not dropped");

  // Live traffic keeps the slow-consumer policy: a client that never reads is dropped.
  const stuck = await RawClient.open(server.wsAddr.port, "/?channels=flood");
  await using _stuck = stuck;
  for (let i = 0; i < 3_000 && server.metrics.slowConsumerDisconnects === 0; i++) {
    await publishId(server, "flood", payload);
  }
  assertEquals(server.metrics.slowConsumerDisconnects, 1);
  assert(server.logs.some((l) => l.includes("client.slow_consumer")));
  resumed.socket.send("still here");
  assertEquals(await resumed.nextMatching(/^Server received/), "Server received: still here");
});

Deno.test("--history-ttl drops idle channels with their history, not listened ones", async () => {
  await using server = await startTestServer(["--history-ttl", "300ms"]);
  await using listener = new TestSocket(`${server.wsUrl}/?channels=kept`);
  await listener.nextMatching(/subscribed/);
  for (let i = 0; i < 50; i++) await publishId(server, `user-${i}`, "hello");
  await publishId(server, "kept", "hello");
  assertEquals(await gauge(server, "push_channels"), 51);
  await pollUntil(
    async () => await gauge(server, "push_channels") === 1,
    10_000,
    "idle channels are dropped",
    20,
  );
  assertEquals(await gauge(server, "push_history_messages"), 1, "only the kept channel's");
  assert(await gauge(server, "push_history_bytes") < 100);
  // The listened channel kept its history and its subscriber.
  assertEquals(await publishId(server, "kept", "again"), 2);
  assertEquals(await idsUntil(listener, "kept", 2), [1, 2]);
  listener.socket.close();
  await listener.closed;
  await pollUntil(
    async () =>
      await gauge(server, "push_channels") === 0 && await gauge(server, "push_history_bytes") === 0,
    10_000,
    "the last channel goes once nobody listens",
    20,
  );
});
