/**
 * The API side of issue 14 end to end, through a server started with `--jwt-secret`: publish
 * tokens, and `/disconnect` reaching the connections registered under their token's `sub`.
 */
import { assertEquals } from "@std/assert";
import { startTestServer } from "../support/server.ts";
import { TestSocket } from "../support/ws_client.ts";
import { claims, hsToken, SECRET } from "../support/jwt.ts";

async function post(url: string, token: string) {
  const response = await fetch(url, {
    method: "POST",
    body: "hello",
    headers: { authorization: `Bearer ${token}`, "content-type": "text/plain" },
  });
  return { status: response.status, body: await response.json() };
}

Deno.test("--jwt-secret: a token's publish claim publishes, a subscriber's does not, a forged one is 401", async () => {
  await using server = await startTestServer([
    "--jwt-secret",
    SECRET,
    "--publish-token",
    "api-key",
  ]);
  const url = (channel: string) => `${server.httpUrl}/publish?channel=${channel}`;
  const publisher = await hsToken(claims("backend", { publish: ["news"] }));
  const subscriber = await hsToken(claims("alice", { channels: ["news"] }));
  await using ws = new TestSocket(`${server.wsUrl}/?demo=false&token=${subscriber}`);
  await ws.opened;
  ws.socket.send("subscribe news");
  await ws.nextMatching(/subscribed/);
  assertEquals((await post(url("news"), publisher)).status, 200);
  assertEquals(JSON.parse(await ws.nextMatching(/"data"/)).data, "hello");
  assertEquals((await post(url("sports"), publisher)).status, 403);
  assertEquals((await post(url("news"), subscriber)).status, 403);
  const forged = await hsToken(
    claims("x", { publish: ["*"] }),
    "another-secret-of-enough-length!!",
  );
  assertEquals((await post(url("news"), forged)).body.reason, "signature");
  assertEquals((await post(url("news"), "api-key")).status, 200);
});

Deno.test("--jwt-secret: POST /disconnect?user=alice closes both of alice's connections with 4003", async () => {
  await using server = await startTestServer([
    "--jwt-secret",
    SECRET,
    "--publish-token",
    "api-key",
  ]);
  const alice = await hsToken(claims("alice", { channels: ["news"] }));
  const bob = await hsToken(claims("bob", { channels: ["news"] }));
  await using a1 = new TestSocket(`${server.wsUrl}/?demo=false&token=${alice}`);
  await using a2 = new TestSocket(`${server.wsUrl}/?demo=false&token=${alice}`);
  await using b1 = new TestSocket(`${server.wsUrl}/?demo=false&token=${bob}`);
  await Promise.all([a1.opened, a2.opened, b1.opened]);
  const response = await fetch(`${server.httpUrl}/disconnect?user=alice`, {
    method: "POST",
    headers: { authorization: "Bearer api-key" },
  });
  assertEquals(await response.json(), { disconnected: 2 });
  for (const ws of [a1, a2]) {
    const ev = await ws.closed;
    assertEquals([ev.code, ev.reason], [4003, "disconnected by server"]);
  }
  assertEquals(b1.socket.readyState, WebSocket.OPEN);
});
