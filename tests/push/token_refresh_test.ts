/**
 * Issue 14, refresh and expiry: `auth TOKEN` with a newer token for the same user narrows the
 * channels (an `unsubscribed` notice that says why) and answers `authenticated` with its `exp`;
 * a token for another user or an invalid one is refused and the old one stays; a token that
 * expires gets `expiring`, then close 4001 "token expired" at exp + leeway, from the ticker.
 */
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { LEEWAY_MS } from "../../src/push/auth.ts";
import { claims, hsToken, seconds, SECRET } from "../support/jwt.ts";
import { startTestServer } from "../support/server.ts";
import { attempt, nextJson, nextJsons, sendText } from "../support/auth_client.ts";
import { delay } from "../support/async.ts";

Deno.test("auth with a narrower token: authenticated with its exp, the channel it drops is left with a reason", async () => {
  await using server = await startTestServer(["--jwt-secret", SECRET]);
  const first = await hsToken(claims("dave", { channels: ["a", "b"] }));
  const r = await attempt(server.wsAddr.port, `/?token=${first}&channels=a,b`);
  await using _ = r.client;
  assertEquals(r.status, 101, r.head);
  assertEquals((await nextJsons(r.client, 2)).map((m) => m.notice), ["subscribed", "subscribed"]);
  const exp = seconds(7200);
  await sendText(r.client, `auth ${await hsToken(claims("dave", { channels: ["a"], exp }))}`);
  const [authenticated, left] = await nextJsons(r.client, 2);
  assertEquals(authenticated, { notice: "authenticated", exp });
  assertEquals([left.notice, left.channel], ["unsubscribed", "b"]);
  assertStringIncludes(String(left.reason), "token");
  // The new token is in force: b is refused now, a stays.
  await sendText(r.client, "subscribe b");
  const refused = await nextJson(r.client);
  assertEquals([typeof refused.error, refused.channel], ["string", "b"]);
  const [peer] = server.ws.clients;
  assertEquals([...server.hub.subscriptionsOf(peer)], ["a"]);
});

Deno.test("auth with another user's token or an invalid one is refused; the old token stays in force", async () => {
  await using server = await startTestServer(["--jwt-secret", SECRET]);
  const r = await attempt(
    server.wsAddr.port,
    `/?token=${await hsToken(claims("erin", { channels: ["x", "y"] }))}`,
  );
  await using _ = r.client;
  assertEquals(r.status, 101, r.head);
  await sendText(r.client, `auth ${await hsToken(claims("mallory", { channels: ["z"] }))}`);
  const other = await nextJson(r.client);
  assertEquals(other.reason, "subject");
  assertStringIncludes(String(other.error), "another user");
  await sendText(r.client, `auth ${await hsToken(claims("erin", { exp: seconds(-60) }))}`);
  assertEquals((await nextJson(r.client)).reason, "expired");
  await sendText(r.client, "auth");
  assertStringIncludes(String((await nextJson(r.client)).error), "Usage: auth TOKEN");
  // Still erin's first token: x is allowed, z (mallory's) is not.
  await sendText(r.client, "subscribe x");
  assertEquals((await nextJson(r.client)).notice, "subscribed");
  await sendText(r.client, "subscribe z");
  assertEquals((await nextJson(r.client)).channel, "z");
  assertEquals(server.metrics.authFailures.get("subject"), 1);
  assertEquals(server.metrics.authFailures.get("expired"), 1);
  assertEquals(server.sessions.of("erin").length, 1);
  assertEquals(server.sessions.of("mallory").length, 0);
});

Deno.test("expiry: expiring, then close 4001 token expired at exp + leeway; a refreshed client stays", async () => {
  await using server = await startTestServer(["--jwt-secret", SECRET]);
  // exp is at most 1 s ahead (seconds are whole); the close is due 5 s (the leeway) after it.
  const exp = seconds(1);
  const port = server.wsAddr.port;
  const stale = await attempt(port, `/?token=${await hsToken(claims("frank", { exp }))}`);
  await using _ = stale.client;
  const fresh = await attempt(port, `/?token=${await hsToken(claims("gina", { exp }))}`);
  await using _f = fresh.client;
  assertEquals([stale.status, fresh.status], [101, 101]);
  assertEquals(await nextJson(stale.client), { notice: "expiring", exp });
  assertEquals(await nextJson(fresh.client), { notice: "expiring", exp });
  const later = seconds(3600);
  await sendText(fresh.client, `auth ${await hsToken(claims("gina", { exp: later }))}`);
  assertEquals(await nextJson(fresh.client), { notice: "authenticated", exp: later });

  const close = await stale.client.nextOf("close");
  const at = Date.now();
  assertEquals([close.code, close.reason], [4001, "token expired"]);
  const due = exp * 1000 + LEEWAY_MS;
  // Never early (a few ms for the two clocks), at most a tick or two late.
  assert(at >= due - 50, `closed ${due - at} ms before exp + leeway`);
  assert(at <= due + 2000, `closed ${at - due} ms after exp + leeway`);
  await stale.client.waitForEof();
  assertEquals(server.sessions.of("frank").length, 0);
  // The refreshed client is served past the old exp + leeway (a tick, 750 ms, later).
  await delay(Math.max(0, due + 800 - Date.now()));
  await sendText(fresh.client, "still there?");
  assertEquals((await fresh.client.nextOf("text")).data, "Server received: still there?");
  assertEquals(server.sessions.of("gina").length, 1);
});
