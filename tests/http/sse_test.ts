/**
 * `GET /events` (Server-Sent Events) through real sockets: envelopes and positions, a
 * `Last-Event-ID` resume while publishes continue, the token rules, `--max-clients` shared with
 * the WebSocket, the ping comment, and a reader that stops reading.
 */
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { startTestServer } from "../support/server.ts";
import { TestSocket } from "../support/ws_client.ts";
import { RawClient, upgradeRequest } from "../support/raw_client.ts";
import { SseClient, type SseEvent } from "../support/sse_client.ts";
import { publishOk } from "../support/push_api.ts";
import { pollUntil } from "../support/async.ts";
import { claims, hsToken, SECRET } from "../support/jwt.ts";

const isData = (e: SseEvent) => e.data !== undefined && e.event === undefined;

Deno.test("/events: retry first, notices as events, data = the WebSocket frame's envelope, id = every channel's position", async () => {
  await using server = await startTestServer();
  const E = server.epoch;
  await using ws = new TestSocket(`${server.wsUrl}/?demo=false&channels=a`);
  await ws.opened;
  await ws.nextMatching(/subscribed/);
  await using sse = await SseClient.open(`${server.httpUrl}/events?channels=a,b`);
  assertStringIncludes(sse.response.headers.get("content-type")!, "text/event-stream");
  assertEquals((await sse.next()).retry, 1000);
  const first = await sse.next();
  assertEquals(first.event, "notice");
  assertEquals(JSON.parse(first.data!).notice, "subscribed");
  await sse.nextWhere((e) => e.event === "notice" && e.data!.includes('"channel":"b"'));
  await publishOk(server, "a", "one");
  const one = await sse.nextWhere(isData);
  assertEquals(one.data, await ws.nextMatching(/"data"/));
  assertEquals(JSON.parse(one.data!), { channel: "a", epoch: E, id: 1, data: "one" });
  assertEquals(one.id, `a:${E}:1,b:${E}:0`);
  await publishOk(server, "b", "two");
  const two = await sse.nextWhere(isData);
  assertEquals(JSON.parse(two.data!).data, "two");
  assertEquals(two.id, `a:${E}:1,b:${E}:1`);
});

Deno.test("/events: a reconnect with Last-Event-ID resumes every channel with no gap and no duplicate while publishes continue", async () => {
  await using server = await startTestServer();
  const N = 60;
  const url = `${server.httpUrl}/events?channels=a,b`;
  const seen: Record<string, number[]> = { a: [], b: [] };
  const first = await SseClient.open(url);
  await first.nextWhere((e) => e.event === "notice" && e.data!.includes('"channel":"b"'));
  let published = 0;
  const publishing = (async () => {
    for (let i = 1; i <= N; i++) {
      await publishOk(server, "a", `a${i}`);
      await publishOk(server, "b", `b${i}`);
      published = i;
    }
  })();
  let lastId = "";
  for (let k = 0; k < 15; k++) {
    const e = await first.nextWhere(isData);
    const env = JSON.parse(e.data!);
    seen[env.channel].push(env.id);
    lastId = e.id!;
  }
  await first[Symbol.asyncDispose]();
  // Publications go on while the client is away: without the resume they would be a gap.
  const cutAt = Math.max(seen.a.at(-1)!, seen.b.at(-1)!);
  await pollUntil(() => published >= cutAt + 5, 5000, "publications while away");
  await using second = await SseClient.open(url, { "last-event-id": lastId });
  while (seen.a.at(-1) !== N || seen.b.at(-1) !== N) {
    const e = await second.nextWhere((e) => isData(e) || e.data?.includes('"lost"') === true);
    assert(isData(e), `unexpected ${e.data}`);
    const env = JSON.parse(e.data!);
    seen[env.channel].push(env.id);
  }
  await publishing;
  const all = Array.from({ length: N }, (_, i) => i + 1);
  assertEquals(seen.a, all);
  assertEquals(seen.b, all);
});

Deno.test("/events with a key: 401 without a token, 403 naming a channel the token does not allow, 200 with ?token=", async () => {
  await using server = await startTestServer(["--jwt-secret", SECRET]);
  const none = await fetch(`${server.httpUrl}/events?channels=news`);
  assertEquals(none.status, 401);
  assertStringIncludes((await none.json()).error, "missing");
  const token = await hsToken(claims("alice", { channels: ["news"] }));
  const denied = await fetch(`${server.httpUrl}/events?channels=news,secret`, {
    headers: { authorization: `Bearer ${token}` },
  });
  assertEquals(denied.status, 403);
  assertStringIncludes((await denied.json()).error, "secret");
  await using ok = await SseClient.open(`${server.httpUrl}/events?channels=news&token=${token}`);
  await ok.nextWhere((e) => e.event === "notice");
});

Deno.test("--max-clients counts event streams with WebSocket clients: 503 for either beyond it", async () => {
  await using server = await startTestServer(["--max-clients", "2"]);
  await using ws = new TestSocket(server.wsUrl + "/echo");
  await ws.opened;
  await using sse = await SseClient.open(`${server.httpUrl}/events?channels=a`);
  const full = await fetch(`${server.httpUrl}/events?channels=a`);
  assertEquals(full.status, 503);
  assertStringIncludes((await full.json()).error, "full");
  await using c = await RawClient.connect(server.wsAddr.port);
  await c.write(upgradeRequest("/echo"));
  assertEquals((await c.readResponse()).status, 503);
  await sse[Symbol.asyncDispose]();
  // The stream's slot is free again once it ended.
  await server.waitForLog("sse.closed");
  await using again = await SseClient.open(`${server.httpUrl}/events?channels=a`);
  assertEquals((await again.next()).retry, 1000);
});

Deno.test("/events: a ': ping' comment every --ping-interval", async () => {
  await using server = await startTestServer(["--ping-interval", "50ms"]);
  await using sse = await SseClient.open(`${server.httpUrl}/events?channels=a`);
  const ping = await sse.nextWhere((e) => e.comments.includes("ping"), 3000);
  assertEquals(ping.data, undefined);
});

Deno.test("/events: a reader that stops reading is cut once more than --max-queue-bytes waits", async () => {
  await using server = await startTestServer(["--max-queue-bytes", "64KiB"]);
  await using sse = await SseClient.open(`${server.httpUrl}/events?channels=a`);
  await sse.nextWhere((e) => e.event === "notice");
  // Stop reading: the kernel's buffers fill, then the stream's queue, then it is cut.
  const cut = server.waitForLog("slow consumer");
  let done = false;
  cut.then(() => done = true);
  const body = "x".repeat(16 * 1024);
  for (let i = 0; i < 4000 && !done; i++) await publishOk(server, "a", body);
  assert(done, "the stream was never cut");
  assertEquals(server.metrics.sseSlowConsumers, 1);
  await sse.ended();
  const metrics = await (await fetch(`${server.httpUrl}/metrics`)).text();
  assertStringIncludes(metrics, "push_sse_slow_consumers_total 1");
});

Deno.test("/events?since= resumes each channel after the position given; Last-Event-ID wins over it", async () => {
  await using server = await startTestServer();
  const E = server.epoch;
  for (let i = 1; i <= 4; i++) await publishOk(server, "a", `a${i}`);
  await publishOk(server, "b", "b1");
  await using sse = await SseClient.open(`${server.httpUrl}/events?channels=a,b&since=a:${E}:2`);
  // a resumes after 2 (3 and 4 replayed, each id naming the position reached, before b has
  // joined); b starts live.
  const three = await sse.nextWhere(isData);
  assertEquals(JSON.parse(three.data!).id, 3);
  assertEquals(three.id, `a:${E}:3`);
  assertEquals(JSON.parse((await sse.nextWhere(isData)).data!).id, 4);
  await publishOk(server, "b", "b2");
  const b2 = await sse.nextWhere(isData);
  assertEquals(JSON.parse(b2.data!).data, "b2");
  assertEquals(b2.id, `a:${E}:4,b:${E}:2`);
  // A reconnect's header is the newer position: only what follows it is sent.
  await using again = await SseClient.open(`${server.httpUrl}/events?channels=a&since=a:${E}:0`, {
    "last-event-id": `a:${E}:3`,
  });
  assertEquals(JSON.parse((await again.nextWhere(isData)).data!).id, 4);
});

Deno.test("/events with a key: Authorization: Bearer works, a bad token is 401 with its reason, --anonymous allows public channels only", async () => {
  await using server = await startTestServer([
    ...["--jwt-secret", SECRET, "--anonymous", "true", "--public-channels", "pub.*"],
  ]);
  const token = await hsToken(claims("alice", { channels: ["news"] }));
  await using bearer = await SseClient.open(`${server.httpUrl}/events?channels=news`, {
    authorization: `Bearer ${token}`,
  });
  await bearer.nextWhere((e) => e.event === "notice");
  const other = await hsToken(claims("alice", { channels: ["news"] }), "x".repeat(40));
  const forged = await fetch(`${server.httpUrl}/events?channels=news&token=${other}`);
  assertEquals(forged.status, 401);
  assertStringIncludes(forged.headers.get("www-authenticate")!, "invalid_token");
  assertStringIncludes((await forged.json()).error, "(signature)");
  const anonymousPrivate = await fetch(`${server.httpUrl}/events?channels=news`);
  assertEquals(anonymousPrivate.status, 403);
  assertStringIncludes((await anonymousPrivate.json()).error, "news");
  await using anonymous = await SseClient.open(`${server.httpUrl}/events?channels=pub.x`);
  await anonymous.nextWhere((e) => e.event === "notice");
});
