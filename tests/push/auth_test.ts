import { assertEquals, assertRejects } from "@std/assert";
import { Authenticator, LEEWAY_MS } from "../../src/push/auth.ts";
import { ChannelPatterns } from "../../src/push/channel_patterns.ts";
import { TokenError } from "../../src/push/jwt.ts";
import { hmacKey, JwksKeys, publicKeyFromPem } from "../../src/push/jwt_keys.ts";
import { signToken } from "../../src/push/jwt_sign.ts";
import { claims, hsToken, keyPair, seconds, SECRET } from "../support/jwt.ts";

async function refused(auth: Authenticator, token: string, reason: string): Promise<void> {
  const err = await assertRejects(() => auth.verify(token), TokenError);
  assertEquals(err.reason, reason, err.message);
}

function b64url(text: string): string {
  return new TextEncoder().encode(text).toBase64({ alphabet: "base64url", omitPadding: true });
}

Deno.test("HS256/384/512 tokens verify with the secret and give the identity", async () => {
  const auth = new Authenticator({ secret: hmacKey(SECRET) });
  for (const alg of ["HS256", "HS384", "HS512"] as const) {
    const id = await auth.verify(
      await hsToken(
        claims("alice", { channels: ["news", "chat.*"], info: { name: "A" } }),
        SECRET,
        alg,
      ),
    );
    assertEquals(id.user, "alice");
    assertEquals(id.channels.matches("chat.42"), true);
    assertEquals(id.channels.matches("sports"), false);
    assertEquals(id.publish.empty, true);
    assertEquals(id.info, '{"name":"A"}');
  }
});

Deno.test("a secret shorter than 32 bytes is refused", () => {
  let threw = false;
  try {
    hmacKey("short");
  } catch {
    threw = true;
  }
  assertEquals(threw, true);
  hmacKey("x".repeat(32)); // exactly 32 is enough
});

Deno.test("each refusal reason: malformed, signature, expired, not yet valid, claims", async () => {
  const auth = new Authenticator({ secret: hmacKey(SECRET) });
  await refused(auth, "", "malformed");
  await refused(auth, "a.b", "malformed");
  await refused(auth, "!!.e30.sig", "malformed");
  await refused(auth, `${b64url("[1]")}.${b64url("{}")}.`, "malformed");
  await refused(auth, `${b64url('{"alg":"HS256","crit":["x"]}')}.${b64url("{}")}.`, "malformed");
  await refused(
    auth,
    await hsToken(claims(), "another-secret-that-is-also-long-enough"),
    "signature",
  );
  const good = await hsToken(claims());
  await refused(auth, good.slice(0, -2) + (good.endsWith("AA") ? "BB" : "AA"), "signature");
  await refused(auth, await hsToken(claims("a", { exp: seconds(-10) })), "expired");
  await refused(auth, await hsToken(claims("a", { nbf: seconds(60) })), "not_yet_valid");
  await refused(auth, await hsToken(claims("a", { iat: seconds(60) })), "not_yet_valid");
  await refused(auth, await hsToken({ exp: seconds(60) }), "claims");
  await refused(auth, await hsToken({ sub: "a" }), "claims");
  await refused(auth, await hsToken(claims("a", { channels: "news" })), "claims");
  await refused(auth, await hsToken(claims("a", { channels: ["bad name"] })), "claims");
  await refused(auth, await hsToken(claims("a", { info: [1] })), "claims");
  await refused(auth, await hsToken(claims("a", { info: { s: "x".repeat(1100) } })), "claims");
});

Deno.test("exp, nbf and iat are honoured with the documented leeway (5 s)", async () => {
  let now = 1_000_000_000_000;
  const auth = new Authenticator({ secret: hmacKey(SECRET), now: () => now });
  const exp = now / 1000 + 10;
  const token = await hsToken({ sub: "a", exp, nbf: exp - 20 });
  now = exp * 1000 + LEEWAY_MS - 1;
  assertEquals((await auth.verify(token)).expiresAt, exp * 1000);
  now = exp * 1000 + LEEWAY_MS;
  await refused(auth, token, "expired");
  now = (exp - 20) * 1000 - LEEWAY_MS; // nbf minus the leeway: valid
  await auth.verify(token);
  now -= 1;
  await refused(auth, token, "not_yet_valid");
});

Deno.test("aud and iss must match when configured", async () => {
  const auth = new Authenticator({
    secret: hmacKey(SECRET),
    audience: "push",
    issuer: "https://id.example",
  });
  const base = claims("a", { iss: "https://id.example" });
  await auth.verify(await hsToken({ ...base, aud: "push" }));
  await auth.verify(await hsToken({ ...base, aud: ["other", "push"] }));
  await refused(auth, await hsToken({ ...base, aud: "other" }), "audience");
  await refused(auth, await hsToken({ ...base }), "audience");
  await refused(
    auth,
    await hsToken({ ...base, aud: "push", iss: "https://evil.example" }),
    "issuer",
  );
});

Deno.test("RS256 and ES256 tokens verify with a PEM public key", async () => {
  for (const alg of ["RS256", "ES256", "ES384"] as const) {
    const pair = await keyPair(alg);
    const auth = new Authenticator({ publicKey: await publicKeyFromPem(pair.pem) });
    const token = await signToken(claims("bob"), pair.privateKey, alg);
    assertEquals((await auth.verify(token)).user, "bob", alg);
    const other = await keyPair(alg);
    await refused(auth, await signToken(claims("bob"), other.privateKey, alg), "signature");
  }
});

Deno.test("alg none and algorithm confusion are refused before any crypto", async () => {
  const rsa = await keyPair("RS256");
  const auth = new Authenticator({ publicKey: await publicKeyFromPem(rsa.pem) });
  // alg none, with and without a signature.
  const none = `${b64url('{"alg":"none"}')}.${b64url(JSON.stringify(claims()))}.`;
  await refused(auth, none, "algorithm");
  // HS256 "signed" with the RSA public key's PEM text as the HMAC secret: the classic confusion.
  await refused(auth, await hsToken(claims(), rsa.pem), "algorithm");
  // An ES256 token against an RSA key, and RS256 against an EC key.
  const ec = await keyPair("ES256");
  await refused(auth, await signToken(claims(), ec.privateKey, "ES256"), "algorithm");
  const ecAuth = new Authenticator({ publicKey: await publicKeyFromPem(ec.pem) });
  await refused(ecAuth, await signToken(claims(), rsa.privateKey, "RS256"), "algorithm");
  // A P-256 key verifies ES256 only, not ES384.
  const p384 = await keyPair("ES384");
  await refused(ecAuth, await signToken(claims(), p384.privateKey, "ES384"), "algorithm");
  // With only a secret, RS256 is refused too.
  const hsAuth = new Authenticator({ secret: hmacKey(SECRET) });
  await refused(hsAuth, await signToken(claims(), rsa.privateKey, "RS256"), "algorithm");
});

Deno.test("PEM parsing says what is wrong", async () => {
  for (
    const [text, message] of [
      ["not a key", "no PEM block"],
      ["-----BEGIN RSA PUBLIC KEY-----\nAAAA\n-----END RSA PUBLIC KEY-----", "openssl"],
      ["-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----", "base64"],
      ["-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----", "neither RSA nor EC"],
    ]
  ) {
    const err = await assertRejects(() => publicKeyFromPem(text));
    assertEquals((err as Error).message.includes(message), true, (err as Error).message);
  }
});

Deno.test("JWKS: keys by kid, refetched on an unknown kid at most every 30 s, kept on failure", async () => {
  const a = await keyPair("RS256");
  const b = await keyPair("ES256");
  let doc: unknown = { keys: [{ ...a.jwk, kid: "a", alg: "RS256", use: "sig" }] };
  let fetches = 0;
  let fail = false;
  let now = 0;
  const failures: string[] = [];
  const jwks = new JwksKeys({
    url: "https://id.example/jwks",
    fetch: () => {
      fetches++;
      if (fail) return Promise.reject(new Error("unreachable"));
      return Promise.resolve(new Response(JSON.stringify(doc)));
    },
    now: () => now,
    onRefreshFailed: (e) => failures.push(e),
  });
  await jwks.load();
  const auth = new Authenticator({ jwks });
  assertEquals(
    (await auth.verify(await signToken(claims("u"), a.privateKey, "RS256", { kid: "a" }))).user,
    "u",
  );
  // A kid we do not know, within 30 s of the last fetch: no refetch.
  const tokenB = await signToken(claims("v"), b.privateKey, "ES256", { kid: "b" });
  now = 10_000;
  await refused(auth, tokenB, "unknown_key");
  assertEquals(fetches, 1);
  // The provider rotated its keys; 30 s later the unknown kid causes one refetch.
  doc = { keys: [{ ...a.jwk, kid: "a" }, { ...b.jwk, kid: "b" }] };
  now = 30_000;
  assertEquals((await auth.verify(tokenB)).user, "v");
  assertEquals(fetches, 2);
  // The provider is down: the refetch fails, the cached keys keep working.
  fail = true;
  now = 70_000;
  await refused(
    auth,
    await signToken(claims(), b.privateKey, "ES256", { kid: "c" }),
    "unknown_key",
  );
  assertEquals(failures, ["unreachable"]);
  assertEquals((await auth.verify(tokenB)).user, "v");
  // A key restricted to RS256 by its alg does not verify RS512.
  await refused(auth, await signToken(claims(), a.privateKey, "RS512", { kid: "a" }), "algorithm");
});

Deno.test("JWKS: an unreachable or invalid document at start is an error", async () => {
  const down = new JwksKeys({
    url: "u",
    fetch: () => Promise.resolve(new Response("", { status: 503 })),
  });
  await assertRejects(() => down.load(), Error, "HTTP 503");
  const bad = new JwksKeys({ url: "u", fetch: () => Promise.resolve(new Response("{}")) });
  await assertRejects(() => bad.load(), Error, "keys");
});

Deno.test("channel patterns: exact names, prefixes ending in *, and * for all", () => {
  const p = ChannelPatterns.parse(["news", "chat.*", "user-42"]);
  assertEquals(p.matches("news"), true);
  assertEquals(p.matches("news2"), false);
  assertEquals(p.matches("chat.42"), true);
  assertEquals(p.matches("chat.a.b"), true);
  assertEquals(p.matches("chat."), false); // the * stands for one character or more
  assertEquals(p.matches("chat"), false);
  assertEquals(ChannelPatterns.parse(["*"]).matches("anything"), true);
  assertEquals(ChannelPatterns.NONE.matches("news"), false);
  for (const bad of ["", "a b", "*.x", "a*b", "x".repeat(66)]) {
    let threw = false;
    try {
      ChannelPatterns.parse([bad]);
    } catch {
      threw = true;
    }
    assertEquals(threw, true, bad);
  }
});
