/**
 * Signs JWTs with Web Crypto: what `deno task token` uses to mint development tokens, and what
 * the tests sign with. The server itself only verifies ({@linkcode ./jwt.ts}).
 *
 * @module
 */
import { type Algorithm, importParams, verifyParams } from "./jwt.ts";

const encoder = new TextEncoder();

function base64url(bytes: Uint8Array): string {
  return bytes.toBase64({ alphabet: "base64url", omitPadding: true });
}

/**
 * Signs `claims` with `key` (an HMAC key, or an RSA/EC private key) as a compact JWS.
 *
 * @example
 * ```ts
 * const key = await hmacSigningKey("a secret of at least thirty-two bytes!", "HS256");
 * await signToken({ sub: "alice", exp: 2e9 }, key, "HS256");
 * ```
 */
export async function signToken(
  claims: Record<string, unknown>,
  key: CryptoKey,
  alg: Algorithm,
  header: Record<string, unknown> = {},
): Promise<string> {
  const head = base64url(encoder.encode(JSON.stringify({ alg, typ: "JWT", ...header })));
  const body = base64url(encoder.encode(JSON.stringify(claims)));
  const input = encoder.encode(`${head}.${body}`);
  const signature = await crypto.subtle.sign(verifyParams(alg), key, input);
  return `${head}.${body}.${base64url(new Uint8Array(signature))}`;
}

/** The HMAC key that signs `alg` (HS256/384/512) with `secret`. */
export function hmacSigningKey(secret: string, alg: Algorithm): Promise<CryptoKey> {
  return crypto.subtle.importKey("raw", encoder.encode(secret), importParams(alg), false, [
    "sign",
  ]);
}
