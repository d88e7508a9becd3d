/**
 * The client library (static/push-client.js) in Deno against the real server: publications once
 * and in order, a drop resumed without gap or duplicate, `lost` surfaced, `quit` on close, the
 * token function asked at every connect and again on `expiring`.
 */
import { assertEquals, assertStringIncludes } from "@std/assert";
import { type Notice, type Publication, PushClient } from "../../static/push-client.js";
import { startTestServer } from "../support/server.ts";
import { publishOk, range } from "../support/push_api.ts";
import { pollUntil } from "../support/async.ts";
import { claims, hsToken, seconds, SECRET } from "../support/jwt.ts";

const WAIT_MS = 5000;

Deno.test("PushClient: subscribe, receive in order, survive a drop without gap, close with quit", async () => {
  await using server = await startTestServer();
  const client = new PushClient(`${server.wsUrl}/`, { backoffBaseMs: 50 });
  const states: string[] = [];
  client.on("state", (s) => states.push(s));
  const got: Publication[] = [];
  const sub = client.subscribe("news", (p) => got.push(p));
  try {
    await pollUntil(() => sub.status === "subscribed", WAIT_MS, "subscribed");
    for (let i = 1; i <= 3; i++) await publishOk(server, "news", `live ${i}`);
    await pollUntil(() => got.length === 3, WAIT_MS, "three publications");
    // The socket drops; publications continue meanwhile; the client resumes from id 3.
    client.socket!.close(4000, "test drop");
    await pollUntil(() => client.state === "connecting", WAIT_MS, "reconnecting");
    for (let i = 4; i <= 6; i++) await publishOk(server, "news", `missed ${i}`);
    await pollUntil(() => got.length === 6, WAIT_MS, "the missed publications");
    await publishOk(server, "news", "live 7");
    await pollUntil(() => got.length === 7, WAIT_MS, "seven publications");
    assertEquals(got.map((p) => p.id), range(1, 7));
    assertEquals(got[3], { channel: "news", epoch: server.epoch, id: 4, data: "missed 4" });
    await server.waitForLog(`channel=news since=${server.epoch}:3`);
    assertEquals([sub.epoch, sub.id], [server.epoch, 7]);
  } finally {
    client.close();
  }
  await pollUntil(() => client.state === "closed", WAIT_MS, "closed");
  await server.waitForLog("client.quit");
  assertEquals(states, ["connecting", "open", "connecting", "open", "closed"]);
});

Deno.test("PushClient: a resume the server cannot honour surfaces lost, then live publications", async () => {
  await using server = await startTestServer();
  await publishOk(server, "news", "before");
  const client = new PushClient(`${server.wsUrl}/`);
  const notices: Notice[] = [];
  const lost: Notice[] = [];
  client.on("notice", (n) => notices.push(n));
  const got: number[] = [];
  const sub = client.subscribe("news", (p) => got.push(p.id), {
    since: { epoch: "staleepoch", id: 5 },
    onLost: (n) => lost.push(n),
  });
  try {
    await pollUntil(() => lost.length === 1, WAIT_MS, "a lost notice");
    assertEquals(sub.status, "lost");
    assertEquals(lost[0].channel, "news");
    assertEquals([sub.epoch, sub.id], [server.epoch, 1]);
    await publishOk(server, "news", "after");
    await pollUntil(() => got.length === 1, WAIT_MS, "the live publication");
    assertEquals(got, [2]);
    assertEquals(notices.map((n) => n.notice).includes("lost"), true);
  } finally {
    client.close();
  }
});

Deno.test("PushClient: the token goes in the query, asked again at every connect", async () => {
  await using server = await startTestServer();
  let asked = 0;
  const client = new PushClient(`${server.wsUrl}/`, {
    token: () => `t${++asked}`,
    backoffBaseMs: 20,
  });
  try {
    await pollUntil(() => client.state === "open", WAIT_MS, "open");
    assertStringIncludes(client.socket!.url, "token=t1");
    client.socket!.close(4000, "drop");
    await pollUntil(() => client.state === "open" && asked === 2, WAIT_MS, "reconnected");
    assertStringIncludes(client.socket!.url, "token=t2");
  } finally {
    client.close();
  }
});

Deno.test("PushClient: a token function is asked again when the server says expiring, and the connection stays", async () => {
  await using server = await startTestServer(["--jwt-secret", SECRET]);
  const tokens = [
    // Two seconds to live: the server says `expiring` a fifth of a second before exp.
    await hsToken(claims("alice", { channels: ["news"], exp: seconds(2) })),
    await hsToken(claims("alice", { channels: ["news"] })),
  ];
  let asked = 0;
  const client = new PushClient(`${server.wsUrl}/`, { token: () => tokens[asked++] });
  const notices: string[] = [];
  client.on("notice", (n) => notices.push(n.notice));
  const got: number[] = [];
  const sub = client.subscribe("news", (p) => got.push(p.id));
  try {
    await pollUntil(() => sub.status === "subscribed", WAIT_MS, "subscribed");
    const socket = client.socket;
    assertEquals(asked, 1);
    await pollUntil(() => notices.includes("authenticated"), WAIT_MS, "the refreshed token");
    assertEquals(asked, 2);
    assertEquals(notices.filter((n) => n === "expiring").length, 1);
    // Still the first socket: the refresh went over it (`auth TOKEN`), no reconnect.
    assertEquals(client.socket, socket);
    assertEquals(client.state, "open");
    await publishOk(server, "news", "after the refresh");
    await pollUntil(() => got.length === 1, WAIT_MS, "a publication after the refresh");
  } finally {
    client.close();
  }
});
