/**
 * `Idempotency-Key` on `POST /publish`: a repeat within `--idempotency-window` publishes nothing
 * and gets the first answer; a concurrent repeat waits for it; after the window it publishes again.
 */
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { startTestServer, type TestServer } from "../support/server.ts";
import { TestSocket } from "../support/ws_client.ts";
import { gauge, idsUntil } from "../support/push_api.ts";
import { IdempotencyStore } from "../../src/http/idempotency.ts";
import { Metrics } from "../../src/metrics.ts";

async function post(
  server: TestServer,
  query: string,
  key: string | null,
  body: BodyInit = "hello",
  // deno-lint-ignore no-explicit-any
): Promise<{ status: number; body: any; retryAfter: string | null }> {
  const response = await fetch(`${server.httpUrl}/publish?${query}`, {
    method: "POST",
    body,
    headers: {
      "content-type": "text/plain",
      ...(key === null ? {} : { "idempotency-key": key }),
    },
  });
  return {
    status: response.status,
    body: await response.json(),
    retryAfter: response.headers.get("retry-after"),
  };
}

/** Reads data envelopes until the one with text `last`; returns every `channel:id:data`. */
async function deliveredUntil(ws: TestSocket, last: string): Promise<string[]> {
  const got: string[] = [];
  while (true) {
    const m = JSON.parse(await ws.nextMatching(/"data"/));
    got.push(`${m.channel}:${m.id}:${m.data}`);
    if (m.data === last) return got;
  }
}

Deno.test("a repeated Idempotency-Key gets the first answer and publishes once", async () => {
  await using server = await startTestServer();
  await using ws = new TestSocket(server.wsUrl + "/?channels=news");
  await ws.nextMatching(/"subscribed"/);
  const first = await post(server, "channel=news", "order-1");
  assertEquals(first.status, 200);
  assertEquals(first.body, { channel: "news", epoch: server.epoch, id: 1, delivered: 1 });
  const again = await post(server, "channel=news", "order-1", "hello again");
  assertEquals(again, first, "the same status and body, nothing published");
  // A marker without a key: the subscriber got id 1 once, then the marker as id 2.
  assertEquals((await post(server, "channel=news", null, "marker")).body.id, 2);
  assertEquals(await deliveredUntil(ws, "marker"), ["news:1:hello", "news:2:marker"]);
  assertEquals(await gauge(server, "push_idempotent_replays_total"), 1);
  assertEquals(await gauge(server, "push_publishes_total"), 2);
  // The key is scoped to the set of channels: another channel publishes.
  assertEquals((await post(server, "channel=other", "order-1")).body.id, 1);
});

Deno.test("a multi-channel repeat replays the same array; other channel sets are other keys", async () => {
  await using server = await startTestServer();
  await using ws = new TestSocket(server.wsUrl + "/?channels=a,b");
  await ws.nextMatching(/"subscribed","channel":"b"/);
  const first = await post(server, "channel=a&channel=b", "k");
  assertEquals(first.status, 200);
  assertEquals(first.body.map((r: { id: number }) => r.id), [1, 1]);
  assertEquals(await post(server, "channel=a&channel=b", "k"), first);
  assertEquals(await post(server, "channel=b&channel=a", "k"), first, "the set, not the order");
  assertEquals((await post(server, "channel=a", "k")).body.id, 2, "a alone is another set");
  await post(server, "channel=b", null, "marker");
  assertEquals((await deliveredUntil(ws, "marker")).sort(), [
    "a:1:hello",
    "a:2:hello",
    "b:1:hello",
    "b:2:marker",
  ]);
});

Deno.test("Idempotency-Key: invalid keys are 400; errors are not kept; window 0 ignores the header", async () => {
  await using server = await startTestServer(["--max-message-bytes", "125"]);
  for (const bad of ["has space", "x".repeat(256), "é"]) {
    const r = await fetch(`${server.httpUrl}/publish?channel=news`, {
      method: "POST",
      body: "hi",
      headers: { "idempotency-key": bad },
    }).catch(() => null);
    // "é" is not a ByteString to fetch: it cannot even be sent.
    if (r === null) continue;
    assertEquals(r.status, 400, bad);
    assertStringIncludes((await r.json()).error, "Idempotency-Key");
  }
  assertEquals((await post(server, "channel=news", "k", "x".repeat(200))).status, 413);
  const retry = await post(server, "channel=news", "k", "short");
  assertEquals([retry.status, retry.body.id], [200, 1], "the refused first try was not kept");
  await using off = await startTestServer(["--idempotency-window", "0"]);
  assertEquals((await post(off, "channel=news", "k")).body.id, 1);
  assertEquals((await post(off, "channel=news", "k")).body.id, 2, "0 = off");
});

Deno.test("after --idempotency-window the same key publishes again", async () => {
  await using server = await startTestServer(["--idempotency-window", "200ms"]);
  await using ws = new TestSocket(server.wsUrl + "/?channels=news");
  await ws.nextMatching(/"subscribed"/);
  assertEquals((await post(server, "channel=news", "k")).body.id, 1);
  // Poll: replays of id 1 until the window has passed, then a new publish (id 2).
  const deadline = Date.now() + 5_000;
  let id = 1;
  let replays = 0;
  while (id === 1) {
    assert(Date.now() < deadline, "the key never expired");
    await new Promise((resolve) => setTimeout(resolve, 20));
    id = (await post(server, "channel=news", "k")).body.id;
    if (id === 1) replays++;
  }
  assertEquals(id, 2);
  assert(replays >= 1, "at least one repeat fell within the window");
  assertEquals(await idsUntil(ws, "news", 2), [1, 2]);
});

Deno.test("concurrent requests with the same key: the second waits for the first, one publish", async () => {
  await using server = await startTestServer();
  await using ws = new TestSocket(server.wsUrl + "/?channels=news");
  await ws.nextMatching(/"subscribed"/);
  // The first request's body stays open, so it holds the key while the second arrives.
  let finish!: () => void;
  const held = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(new TextEncoder().encode("slow"));
      finish = () => controller.close();
    },
  });
  const first = post(server, "channel=news", "same", held);
  let second: ReturnType<typeof post> | undefined;
  const deadline = Date.now() + 5_000;
  while (server.metrics.idempotentWaits === 0) {
    assert(Date.now() < deadline, "the second request never waited for the first");
    // The second is sent once; poll until the server has it waiting on the first.
    if (!second) second = post(server, "channel=news", "same", "fast");
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  finish();
  const [a, b] = await Promise.all([first, second!]);
  assertEquals(a.body, { channel: "news", epoch: server.epoch, id: 1, delivered: 1 });
  assertEquals(b, a);
  await post(server, "channel=news", null, "marker");
  assertEquals(await deliveredUntil(ws, "marker"), ["news:1:slow", "news:2:marker"]);
});

Deno.test("the store is bounded: the oldest key is evicted and counted", async () => {
  const metrics = new Metrics();
  const store = new IdempotencyStore(60_000, metrics, 2);
  for (const key of ["a", "b", "c"]) {
    const claim = await store.claim(key);
    assert(claim.replay === null);
    claim.settle({ status: 200, body: key, headers: {} });
  }
  assertEquals([store.size, metrics.idempotencyEvictions], [2, 1]);
  assertEquals((await store.claim("c")).replay?.body, "c");
  assertEquals((await store.claim("a")).replay, null, "a, the oldest, was evicted");
});
