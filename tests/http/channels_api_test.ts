/**
 * `GET /channels` and `GET /history` through real sockets: local counts with the channel's
 * position, the WebSocket envelope in history, `lost` with the resume wording, and the refusals.
 */
import { assertEquals, assertStringIncludes } from "@std/assert";
import { startTestServer } from "../support/server.ts";
import { TestSocket } from "../support/ws_client.ts";
import { publishOk } from "../support/push_api.ts";

async function get(
  url: string,
  headers: Record<string, string> = {},
  method = "GET",
  // deno-lint-ignore no-explicit-any
): Promise<{ status: number; body: any }> {
  const response = await fetch(url, { method, headers });
  return { status: response.status, body: await response.json() };
}

Deno.test("GET /channels lists local subscriber counts with each channel's last id and epoch", async () => {
  await using server = await startTestServer();
  await using a = new TestSocket(server.wsUrl + "/?channels=news");
  await using b = new TestSocket(server.wsUrl + "/?channels=news,sports");
  await a.nextMatching(/subscribed/);
  await b.nextMatching(/"sports"/);
  await publishOk(server, "news", "one");
  await publishOk(server, "news", "two");
  const { status, body } = await get(`${server.httpUrl}/channels`);
  assertEquals(status, 200);
  const sorted = [...body.channels].sort((x, y) => x.channel.localeCompare(y.channel));
  assertEquals(sorted, [
    { channel: "news", subscribers: 2, lastId: 2, epoch: server.epoch },
    { channel: "sports", subscribers: 1, lastId: 0, epoch: server.epoch },
  ]);
  assertEquals((await get(`${server.httpUrl}/channels`, {}, "POST")).status, 405);
});

Deno.test("GET /history returns the WebSocket envelopes after since, up to limit", async () => {
  await using server = await startTestServer(["--history", "3"]);
  for (const text of ["a", "b", "c", "d", "e"]) await publishOk(server, "news", text);
  const e = server.epoch;
  const all = await get(`${server.httpUrl}/history?channel=news`);
  assertEquals(all.status, 200);
  assertEquals(all.body, {
    channel: "news",
    epoch: e,
    publications: [
      { channel: "news", epoch: e, id: 3, data: "c" },
      { channel: "news", epoch: e, id: 4, data: "d" },
      { channel: "news", epoch: e, id: 5, data: "e" },
    ],
  });
  const page = await get(`${server.httpUrl}/history?channel=news&since=${e}:3&limit=1`);
  assertEquals(page.body.publications, [{ channel: "news", epoch: e, id: 4, data: "d" }]);
  const upToDate = await get(`${server.httpUrl}/history?channel=news&since=${e}:5`);
  assertEquals(upToDate.body, { channel: "news", epoch: e, publications: [] });
  // A gap is said, in the same words as the `lost` notice, instead of a partial list.
  const gap = await get(`${server.httpUrl}/history?channel=news&since=${e}:1`);
  assertEquals(gap.body, {
    channel: "news",
    epoch: e,
    lost: true,
    reason: "history holds ids 3..5; 1 message(s) after 1 are gone",
    publications: [],
  });
  const stale = await get(`${server.httpUrl}/history?channel=news&since=zzzz:1`);
  assertEquals(stale.body.lost, true);
  assertStringIncludes(stale.body.reason, "epoch zzzz belongs to another history");
  const ahead = await get(`${server.httpUrl}/history?channel=news&since=${e}:9`);
  assertEquals(ahead.body.reason, "id 9 is ahead of the channel's last id 5");
  // Bad input: 400 with a JSON error naming the parameter.
  for (
    const [query, word] of [
      ["channel=bad:name", "?channel="],
      ["", "?channel="],
      ["channel=news&since=nope", "?since="],
      ["channel=news&limit=0", "?limit="],
      ["channel=news&limit=1001", "?limit="],
      ["channel=news&limit=x", "?limit="],
    ]
  ) {
    const bad = await get(`${server.httpUrl}/history?${query}`);
    assertEquals(bad.status, 400, query);
    assertStringIncludes(bad.body.error, word);
  }
});

Deno.test("management reads take the API key like POST /disconnect", async () => {
  await using server = await startTestServer(["--publish-token", "api-key"]);
  for (const path of ["/channels", "/history?channel=news"]) {
    const none = await get(server.httpUrl + path);
    assertEquals(none.status, 401, path);
    assertEquals((await get(server.httpUrl + path, { authorization: "Bearer wrong" })).status, 401);
    assertEquals(
      (await get(server.httpUrl + path, { authorization: "Bearer api-key" })).status,
      200,
    );
  }
  assertEquals(server.metrics.managementRejected.get(401), 4);
  await using open = await startTestServer();
  // Without a key, a browser (Origin) is refused even from loopback.
  const browser = await get(`${open.httpUrl}/channels`, { origin: "http://evil.example" });
  assertEquals(browser.status, 403);
});
