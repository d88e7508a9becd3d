/**
 * `deno task token`: prints an HS256 token signed with `PUSH_JWT_SECRET`, for local
 * development (production tokens come from your backend; see README, "Authentication").
 *
 * ```sh
 * PUSH_JWT_SECRET=… deno task token --sub alice --channels 'news,chat.*' --ttl 1h
 * ```
 *
 * Flags: `--sub` (required), `--channels` and `--publish` (comma lists of channel patterns),
 * `--ttl` (a duration: 90s, 15m, 1h; default 1h), `--info` (a JSON object), `--aud`, `--iss`.
 *
 * @module
 */
import { ChannelPatterns } from "./push/channel_patterns.ts";
import { MIN_SECRET_BYTES } from "./push/jwt_keys.ts";
import { hmacSigningKey, signToken } from "./push/jwt_sign.ts";

const FLAGS = ["sub", "channels", "publish", "ttl", "info", "aud", "iss"] as const;
const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

/** Builds the claims from `args`, with `now` in seconds; throws an Error that says what is wrong. */
export function tokenClaims(args: readonly string[], now: number): Record<string, unknown> {
  const given = new Map<string, string>();
  for (let i = 0; i < args.length; i++) {
    const m = /^--([a-z]+)(?:=(.*))?$/.exec(args[i]);
    if (!m || !(FLAGS as readonly string[]).includes(m[1])) {
      throw new Error(
        `unknown option ${args[i]}; options: ${FLAGS.map((f) => "--" + f).join(" ")}`,
      );
    }
    const value = m[2] ?? args[++i];
    if (value === undefined) throw new Error(`--${m[1]} needs a value`);
    given.set(m[1], value);
  }
  const sub = given.get("sub");
  if (!sub) throw new Error("--sub is required (the user id)");
  const ttl = /^(\d+)([smhd])?$/.exec(given.get("ttl") ?? "1h");
  if (!ttl) throw new Error("--ttl must be a duration like 90s, 15m, 1h or 1d");
  const claims: Record<string, unknown> = {
    sub,
    iat: now,
    exp: now + Number(ttl[1]) * UNITS[ttl[2] ?? "s"],
  };
  for (const name of ["channels", "publish"] as const) {
    const value = given.get(name);
    if (value === undefined) continue;
    const patterns = value.split(",").map((s) => s.trim()).filter(Boolean);
    ChannelPatterns.parse(patterns); // throws on a bad pattern
    claims[name] = patterns;
  }
  const info = given.get("info");
  if (info !== undefined) {
    const parsed = JSON.parse(info);
    if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
      throw new Error("--info must be a JSON object");
    }
    claims.info = parsed;
  }
  if (given.has("aud")) claims.aud = given.get("aud");
  if (given.has("iss")) claims.iss = given.get("iss");
  return claims;
}

if (import.meta.main) {
  const secret = Deno.env.get("PUSH_JWT_SECRET") ?? "";
  if (new TextEncoder().encode(secret).length < MIN_SECRET_BYTES) {
    console.error(
      `Set PUSH_JWT_SECRET to the server's --jwt-secret (at least ${MIN_SECRET_BYTES} bytes).`,
    );
    Deno.exit(2);
  }
  let claims;
  try {
    claims = tokenClaims(Deno.args, Math.floor(Date.now() / 1000));
  } catch (err) {
    console.error((err as Error).message);
    Deno.exit(2);
  }
  console.log(await signToken(claims, await hmacSigningKey(secret, "HS256"), "HS256"));
}
