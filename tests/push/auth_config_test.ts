/**
 * Issue 14, keys from the configuration: a short secret and an unreadable key file exit with
 * code 2 (the real process), an unreachable JWKS at start is a clear error, a JWKS is fetched
 * again for an unknown kid (and a failed refetch is a warning that keeps the cached keys).
 */
import {
  assert,
  assertEquals,
  assertRejects,
  assertStringIncludes,
  assertThrows,
} from "@std/assert";
import { type AuthConfig, authFromConfig } from "../../src/push/auth_config.ts";
import { ConfigError, defaultConfig, parseConfig } from "../../src/config.ts";
import { Logger } from "../../src/log.ts";
import { TokenError } from "../../src/push/jwt.ts";
import { signToken } from "../../src/push/jwt_sign.ts";
import { claims, keyPair } from "../support/jwt.ts";
import { RUN_ARGS } from "../support/child_server.ts";

/** Runs main.ts with `args`; its exit code and stderr. */
async function runMain(args: string[]): Promise<{ code: number; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [...RUN_ARGS, "--ws-port", "0", "--http-port", "0", ...args],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

function config(overrides: Partial<AuthConfig>): AuthConfig {
  return { ...defaultConfig(), ...overrides };
}

Deno.test("a --jwt-secret shorter than 32 bytes exits with code 2, without showing the secret", async () => {
  const { code, stderr } = await runMain(["--jwt-secret", "hunter2-short"]);
  assertEquals(code, 2, stderr);
  assertStringIncludes(stderr, "--jwt-secret");
  assertStringIncludes(stderr, "at least 32 bytes");
  assert(!stderr.includes("hunter2"), stderr);
});

Deno.test("a --jwt-public-key file the server cannot read exits with code 2 and says why", async () => {
  const { code, stderr } = await runMain(["--jwt-public-key", "/nonexistent/key.pem"]);
  assertEquals(code, 2, stderr);
  assertStringIncludes(stderr, "Cannot read --jwt-public-key");
  assertStringIncludes(stderr, "/nonexistent/key.pem");
});

Deno.test("bad key settings are ConfigErrors: PEM that is no key, an unreachable JWKS, options without a key", async () => {
  const logger = new Logger("silent");
  const notKey = await assertRejects(
    () =>
      authFromConfig(
        config({ jwtPublicKey: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----" }),
        { logger },
      ),
    ConfigError,
  );
  assertStringIncludes(notKey.message, "PUBLIC KEY");
  // A port nothing listens on: bound, then closed.
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (probe.addr as Deno.NetAddr).port;
  probe.close();
  const down = await assertRejects(
    () => authFromConfig(config({ jwtJwksUrl: `http://127.0.0.1:${port}/jwks` }), { logger }),
    ConfigError,
  );
  assertStringIncludes(down.message, "Cannot load the JWKS of --jwt-jwks-url");
  assertStringIncludes(down.message, `127.0.0.1:${port}`);
  for (const overrides of [{ anonymous: true }, { publicChannels: ["news"] }]) {
    const err = await assertRejects(
      () => authFromConfig(config(overrides), { logger }),
      ConfigError,
    );
    assertStringIncludes(err.message, "need a key");
  }
  assertEquals((await authFromConfig(config({}), { logger })).auth, null);
  assertThrows(() => parseConfig(["--jwt-jwks-url", "ftp://x"], () => undefined), ConfigError);
  // Patterns are checked where they are compiled, with the same exit code 2 as a parse error.
  const bad = await assertRejects(
    () =>
      authFromConfig(config({ jwtSecret: "x".repeat(32), publicChannels: ["bad name"] }), {
        logger,
      }),
    ConfigError,
  );
  assertStringIncludes(bad.message, "--public-channels");
});

Deno.test("the JWKS is fetched again for an unknown kid; a failed refetch is a warning and the cached keys stay", async () => {
  const pair = await keyPair("ES256");
  const newer = await keyPair("ES256");
  const keys = [{ ...pair.jwk, kid: "k1" }];
  let requests = 0;
  let failing = false;
  await using jwks = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () => {
    requests++;
    return failing ? new Response("down", { status: 503 }) : Response.json({ keys });
  });
  const warnings: string[] = [];
  const logger = new Logger("warn", (line) => warnings.push(line));
  const { auth } = await authFromConfig(
    config({ jwtJwksUrl: `http://127.0.0.1:${jwks.addr.port}/.well-known/jwks.json` }),
    { logger, jwksMinRefreshMs: 0 },
  );
  assertEquals(requests, 1);
  const sign = (key: CryptoKey, kid: string) => signToken(claims(), key, "ES256", { kid });
  assertEquals((await auth!.verify(await sign(pair.privateKey, "k1"))).user, "alice");
  // The identity provider rotates: k2 appears; the first token naming it makes the refetch.
  keys.push({ ...newer.jwk, kid: "k2" });
  assertEquals((await auth!.verify(await sign(newer.privateKey, "k2"))).user, "alice");
  assertEquals(requests, 2);
  failing = true;
  const unknown = await assertRejects(
    async () => auth!.verify(await sign(pair.privateKey, "k3")),
    TokenError,
  );
  assertEquals(unknown.reason, "unknown_key");
  assertEquals(requests, 3);
  assertStringIncludes(warnings.join("\n"), "auth.jwks_refresh_failed");
  assertStringIncludes(warnings.join("\n"), "HTTP 503");
  assertEquals((await auth!.verify(await sign(newer.privateKey, "k2"))).user, "alice");
});
