/**
 * Issue 14, connecting: with a key configured a client of `/` presents a token (query or
 * `Authorization: Bearer`); every refusal is HTTP 401 with its reason and no upgrade, counted in
 * `push_auth_failures_total{reason}`; `--anonymous` and `--public-channels`; subscriptions
 * allowed or refused per pattern; tokens never in the log.
 */
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { signToken } from "../../src/push/jwt_sign.ts";
import { claims, hsToken, keyPair, seconds, SECRET } from "../support/jwt.ts";
import { startTestServer } from "../support/server.ts";
import { attempt, nextJson, nextJsons, sendText } from "../support/auth_client.ts";

function b64url(text: string): string {
  return new TextEncoder().encode(text).toBase64({ alphabet: "base64url", omitPadding: true });
}

/** A token with `alg: none` and no signature. */
function unsignedToken(body: Record<string, unknown>): string {
  return `${b64url(JSON.stringify({ alg: "none", typ: "JWT" }))}.${b64url(JSON.stringify(body))}.`;
}

Deno.test("HS256: a token in the query or the Authorization header connects; refusals are 401 with the reason, counted", async () => {
  await using server = await startTestServer([
    "--jwt-secret",
    SECRET,
    "--jwt-audience",
    "push",
    "--jwt-issuer",
    "https://id.example",
  ]);
  const port = server.wsAddr.port;
  const good = { aud: "push", iss: "https://id.example" };
  const valid = await hsToken(claims("alice", good));
  {
    const viaQuery = await attempt(port, `/?token=${valid}`);
    await using _ = viaQuery.client;
    assertEquals(viaQuery.status, 101, viaQuery.head);
  }
  {
    const viaHeader = await attempt(port, "/", { Authorization: `Bearer ${valid}` });
    await using _ = viaHeader.client;
    assertEquals(viaHeader.status, 101, viaHeader.head);
  }
  const cases: [string, string | null][] = [
    ["missing", null],
    ["malformed", "not.a-token"],
    ["signature", await hsToken(claims("alice", good), "another-secret-that-is-long-enough!!")],
    ["expired", await hsToken(claims("alice", { ...good, exp: seconds(-60) }))],
    ["not_yet_valid", await hsToken(claims("alice", { ...good, nbf: seconds(60) }))],
    ["claims", await hsToken({ exp: seconds(3600), ...good })],
    ["algorithm", unsignedToken(claims("alice", good))],
    ["audience", await hsToken(claims("alice", { ...good, aud: "other" }))],
    ["issuer", await hsToken(claims("alice", { ...good, iss: "https://evil.example" }))],
  ];
  for (const [reason, token] of cases) {
    const r = await attempt(port, token === null ? "/" : `/?token=${token}`);
    await using _ = r.client;
    assertEquals(r.status, 401, `${reason}: ${r.head}`);
    assertStringIncludes(r.body, `(${reason})`);
    assertStringIncludes(r.head.toLowerCase(), "www-authenticate: bearer");
    assert(!r.head.toLowerCase().includes("sec-websocket-accept"), r.head);
  }
  // The header form is refused the same way.
  const badHeader = await attempt(port, "/", { Authorization: "Bearer x.y.z" });
  await using _ = badHeader.client;
  assertEquals(badHeader.status, 401);
  assertStringIncludes(badHeader.body, "(malformed)");
  // Counted by reason, and rendered.
  const text = await (await fetch(`${server.httpUrl}/metrics`)).text();
  for (const [reason] of cases) {
    const n = reason === "malformed" ? 2 : 1;
    assertStringIncludes(text, `push_auth_failures_total{reason="${reason}"} ${n}`);
  }
  assertEquals(server.metrics.handshakesRejected.get(401), cases.length + 1);
});

Deno.test("RS256 with the PEM text and with a PEM file, ES256: valid tokens connect, none and algorithm confusion are 401", async () => {
  const rsa = await keyPair("RS256");
  const ec = await keyPair("ES256");
  await Deno.mkdir(".artifacts", { recursive: true });
  const file = await Deno.makeTempFile({ dir: ".artifacts", suffix: ".pem" });
  await Deno.writeTextFile(file, rsa.pem);
  try {
    const setups: [string, string, CryptoKey, "RS256" | "ES256"][] = [
      ["RSA PEM text", rsa.pem, rsa.privateKey, "RS256"],
      ["RSA PEM file", file, rsa.privateKey, "RS256"],
      ["EC PEM text", ec.pem, ec.privateKey, "ES256"],
    ];
    for (const [what, keyOption, privateKey, alg] of setups) {
      await using server = await startTestServer(["--jwt-public-key", keyOption]);
      const port = server.wsAddr.port;
      const ok = await attempt(port, `/?token=${await signToken(claims(), privateKey, alg)}`);
      await using _ = ok.client;
      assertEquals(ok.status, 101, `${what}: ${ok.head}`);
      // The public key's PEM used as an HMAC secret (the classic confusion), and alg none.
      const pemSecret = alg === "RS256" ? rsa.pem : ec.pem;
      for (const token of [await hsToken(claims(), pemSecret), unsignedToken(claims())]) {
        const r = await attempt(port, `/?token=${token}`);
        await using _ = r.client;
        assertEquals(r.status, 401, `${what}: ${r.head}`);
        assertStringIncludes(r.body, "(algorithm)");
      }
      // Signed by another key of the same type.
      const other = await keyPair(alg);
      const forged = await attempt(
        port,
        `/?token=${await signToken(claims(), other.privateKey, alg)}`,
      );
      await using _f = forged.client;
      assertEquals(forged.status, 401, what);
      assertStringIncludes(forged.body, "(signature)");
    }
  } finally {
    await Deno.remove(file);
  }
});

Deno.test("a local JWKS: keys by kid connect, an unknown kid is 401 unknown_key", async () => {
  const pair = await keyPair("ES256");
  let requests = 0;
  await using jwks = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () => {
    requests++;
    return Response.json({ keys: [{ ...pair.jwk, kid: "k1", alg: "ES256", use: "sig" }] });
  });
  await using server = await startTestServer([
    "--jwt-jwks-url",
    `http://127.0.0.1:${jwks.addr.port}/jwks.json`,
  ]);
  assertEquals(requests, 1, "fetched at start");
  const port = server.wsAddr.port;
  const sign = (kid: string) => signToken(claims(), pair.privateKey, "ES256", { kid });
  const ok = await attempt(port, `/?token=${await sign("k1")}`);
  await using _ = ok.client;
  assertEquals(ok.status, 101, ok.head);
  // Within 30 s of the last fetch an unknown kid is refused without fetching again.
  const unknown = await attempt(port, `/?token=${await sign("k2")}`);
  await using _u = unknown.client;
  assertEquals(unknown.status, 401);
  assertStringIncludes(unknown.body, "(unknown_key)");
  assertEquals(requests, 1);
});

Deno.test("--anonymous with --public-channels: no token connects to public channels only; a bad token is still 401", async () => {
  await using server = await startTestServer([
    "--jwt-secret",
    SECRET,
    "--anonymous",
    "--public-channels",
    "news,public.*",
  ]);
  const port = server.wsAddr.port;
  const anon = await attempt(port, "/?channels=news,secret,public.x");
  await using _ = anon.client;
  assertEquals(anon.status, 101, anon.head);
  const [news, secret, pub] = await nextJsons(anon.client, 3);
  assertEquals([news.notice, news.channel], ["subscribed", "news"]);
  assertEquals(secret.channel, "secret");
  assertStringIncludes(String(secret.error), "Not allowed");
  assertEquals([pub.notice, pub.channel], ["subscribed", "public.x"]);
  await sendText(anon.client, "subscribe chat.1");
  const refused = await nextJson(anon.client);
  assertEquals([typeof refused.error, refused.channel], ["string", "chat.1"]);
  // Registered as anon:<client id>.
  const anonUsers = [...server.ws.clients].map((c) => `anon:${c.id}`);
  assertEquals(anonUsers.map((u) => server.sessions.of(u).length), [1]);
  const bad = await attempt(port, "/?token=a.b.c");
  await using _b = bad.client;
  assertEquals(bad.status, 401);
  assertStringIncludes(bad.body, "(malformed)");
});

Deno.test("subscriptions follow the token's channel patterns; a refused one names its channel and the others proceed", async () => {
  await using server = await startTestServer([
    "--jwt-secret",
    SECRET,
    "--public-channels",
    "lobby",
  ]);
  const token = await hsToken(claims("bob", { channels: ["chat.*", "news"] }));
  const r = await attempt(server.wsAddr.port, `/?token=${token}&channels=chat.1,sports,news`);
  await using _ = r.client;
  assertEquals(r.status, 101, r.head);
  const [chat, sports, news] = await nextJsons(r.client, 3);
  assertEquals([chat.notice, chat.channel], ["subscribed", "chat.1"]);
  assertEquals(sports.channel, "sports");
  assertStringIncludes(String(sports.error), "sports");
  assertEquals([news.notice, news.channel], ["subscribed", "news"]);
  for (
    const [channel, allowed] of [["chat", false], ["chat.a.b", true], ["lobby", true]] as const
  ) {
    await sendText(r.client, `subscribe ${channel}`);
    const reply = await nextJson(r.client);
    assertEquals(reply.channel, channel);
    assertEquals(reply.notice === "subscribed", allowed, JSON.stringify(reply));
  }
  // Still connected.
  await sendText(r.client, "hello");
  assertEquals((await r.client.nextOf("text")).data, "Server received: hello");
  assertEquals(server.sessions.of("bob").length, 1);
});

Deno.test("tokens never appear in the log at debug level; the query is logged with token=***", async () => {
  await using server = await startTestServer(["--jwt-secret", SECRET]);
  const port = server.wsAddr.port;
  const first = await hsToken(claims("carol", { channels: ["news"] }));
  const second = await hsToken(claims("carol", { channels: ["news"], exp: seconds(7200) }));
  const bad = await hsToken(claims("carol"), "another-secret-that-is-long-enough!!");
  const q = await attempt(port, `/?channels=news&token=${first}`);
  await using _ = q.client;
  assertEquals(q.status, 101);
  await nextJson(q.client); // subscribed
  await sendText(q.client, `auth ${second}`);
  assertEquals((await nextJson(q.client)).notice, "authenticated");
  const h = await attempt(port, "/", { Authorization: `Bearer ${second}` });
  await using _h = h.client;
  const b = await attempt(port, `/?token=${bad}`);
  await using _b = b.client;
  assertEquals(b.status, 401);
  await server.waitForLog("status=401");
  const accepted = await server.waitForLog("query=");
  assertStringIncludes(accepted, "token=***");
  for (const token of [first, second, bad]) {
    // Each part: the header part is the same for every HS256 token, the others are not.
    for (const part of token.split(".").slice(1)) {
      const leak = server.logs.find((line) => line.includes(part));
      assertEquals(leak, undefined, `a token part is in the log: ${leak}`);
    }
  }
});
