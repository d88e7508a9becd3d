/**
 * Channels over real sockets: in-band commands, ordering under concurrent publishes, resume after
 * a dropped connection while publishes continue, lost notices, slow consumers.
 */
import { assert, assertEquals, assertGreater } from "@std/assert";
import { startTestServer } from "../support/server.ts";
import { TestSocket } from "../support/ws_client.ts";
import { RawClient } from "../support/raw_client.ts";
import { idsUntil, publishId } from "../support/push_api.ts";

Deno.test("subscribe and unsubscribe commands, with clear errors for misuse", async () => {
  await using server = await startTestServer();
  await using ws = new TestSocket(server.wsUrl + "/");
  await ws.opened;
  ws.socket.send("subscribe news");
  assertEquals(JSON.parse(await ws.next() as string), {
    notice: "subscribed",
    channel: "news",
    epoch: server.epoch,
    id: 0,
  });
  ws.socket.send("subscribe news");
  assertEquals(JSON.parse(await ws.next() as string), { error: "Already subscribed to news." });
  ws.socket.send("subscribe bad/name");
  assert(JSON.parse(await ws.next() as string).error.startsWith("Invalid channel name"));
  ws.socket.send("subscribe news nonsense");
  assert(JSON.parse(await ws.next() as string).error.startsWith("Invalid position"));
  ws.socket.send("subscribe");
  assertEquals(JSON.parse(await ws.next() as string), {
    error: "Usage: subscribe NAME [EPOCH:ID]",
  });
  ws.socket.send("unsubscribe news");
  assertEquals(JSON.parse(await ws.next() as string), { notice: "unsubscribed", channel: "news" });
  ws.socket.send("unsubscribe news");
  assertEquals(JSON.parse(await ws.next() as string), { error: "Not subscribed to news." });
  assertEquals(await publishId(server, "news", "after"), 1);
  ws.socket.send("still connected?");
  assertEquals(await ws.next(), "Server received: still connected?");
});

Deno.test("--max-subscriptions bounds the channels of one client", async () => {
  await using server = await startTestServer(["--max-subscriptions", "2"]);
  await using ws = new TestSocket(server.wsUrl + "/?channels=a,b,c");
  await ws.opened;
  await ws.nextMatching(/"b"/);
  assert(JSON.parse(await ws.next() as string).error.startsWith("Too many subscriptions"));
});

Deno.test("every subscriber sees one channel's messages in publish order under concurrent publishes", async () => {
  await using server = await startTestServer();
  const sockets = [0, 1, 2].map(() => new TestSocket(server.wsUrl + "/?channels=race"));
  try {
    for (const ws of sockets) {
      await ws.opened;
      await ws.nextMatching(/subscribed/);
    }
    const ids = await Promise.all(
      Array.from({ length: 50 }, (_, i) => publishId(server, "race", `m${i}`)),
    );
    assertEquals([...ids].sort((a, b) => a - b), Array.from({ length: 50 }, (_, i) => i + 1));
    for (const ws of sockets) {
      assertEquals(await idsUntil(ws, "race", 50), Array.from({ length: 50 }, (_, i) => i + 1));
    }
  } finally {
    for (const ws of sockets) await ws[Symbol.asyncDispose]();
  }
});

Deno.test("a client resumes after a dropped connection with no gap and no duplicate", async () => {
  await using server = await startTestServer();
  const total = 200;
  const first = new TestSocket(server.wsUrl + "/?channels=news");
  await first.opened;
  await first.nextMatching(/subscribed/);
  let published = 0;
  const publisher = (async () => {
    while (published < total) {
      await publishId(server, "news", `m${published + 1}`);
      published++;
    }
  })();
  const before = await idsUntil(first, "news", 20);
  // Drop the connection abruptly (as a network failure would) while publishing goes on.
  first.socket.close();
  await first.closed;
  const last = before.at(-1)!;
  await using second = new TestSocket(
    `${server.wsUrl}/?channels=news&since=news:${server.epoch}:${last}`,
  );
  await second.opened;
  const notice = JSON.parse(await second.nextMatching(/subscribed/));
  assertEquals(notice.recovered, true);
  await publisher;
  const after = await idsUntil(second, "news", total);
  assertEquals([...before, ...after], Array.from({ length: total }, (_, i) => i + 1));
});

Deno.test("a resume beyond history or from another epoch gets a lost notice, then live messages", async () => {
  await using server = await startTestServer(["--history", "5"]);
  for (let i = 0; i < 20; i++) await publishId(server, "news", `m${i}`);
  await using ws = new TestSocket(
    `${server.wsUrl}/?channels=news&since=news:${server.epoch}:3`,
  );
  await ws.opened;
  const lost = JSON.parse(await ws.next() as string);
  assertEquals([lost.notice, lost.channel, lost.id], ["lost", "news", 20]);
  assertEquals(JSON.parse(await ws.next() as string).recovered, false);
  await publishId(server, "news", "live");
  assertEquals(JSON.parse(await ws.next() as string).id, 21);
  ws.socket.send("subscribe other oldepoch:1");
  assert(String(JSON.parse(await ws.next() as string).reason).includes("restarted"));
});

Deno.test("a client that never reads is dropped as a slow consumer; a fast one gets every message", async () => {
  await using server = await startTestServer([
    "--max-queue-bytes",
    "1MiB",
    "--close-timeout",
    "200ms",
  ]);
  await using fast = new TestSocket(server.wsUrl + "/?channels=flood");
  await fast.opened;
  await fast.nextMatching(/subscribed/);
  const slow = await RawClient.open(server.wsAddr.port, "/?channels=flood");
  await using _slow = slow;
  const total = 600;
  const payload = "x".repeat(16 * 1024);
  let fastIds: number[] = [];
  const reading = idsUntil(fast, "flood", total).then((ids) => fastIds = ids);
  // Sequential publishes through the API: a realistic rate that a reading client keeps up with.
  for (let i = 0; i < total; i++) await publishId(server, "flood", payload);
  await reading;
  assertEquals(fastIds, Array.from({ length: total }, (_, i) => i + 1));
  await server.waitForLog("client.slow_consumer client=2");
  await server.waitForLog("connection.closed client=2");
  assertEquals(server.metrics.slowConsumerDisconnects, 1);
  assertGreater(server.metrics.messagesPushed, total);
});
