/**
 * `POST /publish?channel=a&channel=b`: one body to several channels, one answer per channel in
 * the order given; a JWT's `publish` claim must cover every channel or nothing is published.
 */
import { assertEquals, assertStringIncludes } from "@std/assert";
import { startTestServer } from "../support/server.ts";
import { TestSocket } from "../support/ws_client.ts";
import { claims, hsToken, SECRET } from "../support/jwt.ts";

async function post(url: string, bearer?: string) {
  const response = await fetch(url, {
    method: "POST",
    body: "hello",
    headers: bearer ? { authorization: `Bearer ${bearer}` } : {},
  });
  return { status: response.status, body: await response.json() };
}

Deno.test("POST /publish with several channels answers one result per channel, in order", async () => {
  await using server = await startTestServer();
  await using ws = new TestSocket(server.wsUrl + "/?channels=b,a");
  await ws.nextMatching(/"subscribed","channel":"a"/);
  const e = server.epoch;
  assertEquals((await post(`${server.httpUrl}/publish?channel=a`)).body, {
    channel: "a",
    epoch: e,
    id: 1,
    delivered: 1,
  }, "a single channel keeps today's answer");
  const many = await post(`${server.httpUrl}/publish?channel=b&channel=c&channel=a`);
  assertEquals(many.status, 200);
  assertEquals(many.body, [
    { channel: "b", epoch: e, id: 1, delivered: 1 },
    { channel: "c", epoch: e, id: 1, delivered: 0 },
    { channel: "a", epoch: e, id: 2, delivered: 1 },
  ]);
  const got = [
    JSON.parse(await ws.nextMatching(/"data"/)),
    JSON.parse(await ws.nextMatching(/"data"/)),
    JSON.parse(await ws.nextMatching(/"data"/)),
  ].map((m) => `${m.channel}:${m.id}:${m.data}`).sort();
  assertEquals(got, ["a:1:hello", "a:2:hello", "b:1:hello"]);
  // Bad lists: nothing is published.
  const bad = await post(`${server.httpUrl}/publish?channel=b&channel=no:pe`);
  assertEquals(bad.status, 400);
  assertStringIncludes(bad.body.error, "no:pe");
  assertEquals((await post(`${server.httpUrl}/publish?channel=b&channel=b`)).status, 400);
  const tooMany = Array.from({ length: 101 }, (_, i) => `channel=c${i}`).join("&");
  assertEquals((await post(`${server.httpUrl}/publish?${tooMany}`)).status, 400);
  const next = await post(`${server.httpUrl}/publish?channel=b`);
  assertEquals(next.body.id, 2, "no refused list published to b");
});

Deno.test("POST /publish with several channels: the JWT's publish claim must cover all of them", async () => {
  await using server = await startTestServer(["--jwt-secret", SECRET, "--publish-token", "k"]);
  const token = await hsToken(claims("backend", { publish: ["news", "chat.*"] }));
  const refused = await post(
    `${server.httpUrl}/publish?channel=news&channel=sports&channel=other`,
    token,
  );
  assertEquals(refused.status, 403);
  assertEquals(refused.body.channel, "sports");
  assertStringIncludes(refused.body.error, "may not publish to sports");
  const ok = await post(`${server.httpUrl}/publish?channel=news&channel=chat.1`, token);
  assertEquals(ok.status, 200);
  assertEquals(ok.body.map((r: { id: number }) => r.id), [1, 1], "news was not published before");
  assertEquals((await post(`${server.httpUrl}/publish?channel=news&channel=x`)).status, 401);
});
