/**
 * Test keys and tokens, made with Web Crypto: an HMAC secret, RSA and EC key pairs with their
 * public keys as PEM and JWK, and a signer.
 *
 * @module
 */
import type { Algorithm } from "../../src/push/jwt.ts";
import { hmacSigningKey, signToken } from "../../src/push/jwt_sign.ts";

/** A secret long enough for HS256. */
export const SECRET = "test-secret-that-is-long-enough-for-hs256!";

/** An asymmetric key pair with its public half as PEM and as a JWK. */
export interface TestKeyPair {
  /** Signs tokens. */
  privateKey: CryptoKey;
  /** The public key as an SPKI PEM block. */
  pem: string;
  /** The public key as a JWK (no kid). */
  jwk: JsonWebKey;
}

function pem(der: ArrayBuffer): string {
  const b64 = new Uint8Array(der).toBase64();
  return `-----BEGIN PUBLIC KEY-----\n${
    b64.match(/.{1,64}/g)!.join("\n")
  }\n-----END PUBLIC KEY-----\n`;
}

/** A fresh RSA (RS256) or EC (ES256 on P-256, ES384 on P-384) key pair. */
export async function keyPair(alg: "RS256" | "ES256" | "ES384"): Promise<TestKeyPair> {
  const params = alg === "RS256"
    ? {
      name: "RSASSA-PKCS1-v1_5",
      modulusLength: 2048,
      publicExponent: new Uint8Array([1, 0, 1]),
      hash: "SHA-256",
    }
    : { name: "ECDSA", namedCurve: alg === "ES256" ? "P-256" : "P-384" };
  const pair = await crypto.subtle.generateKey(params, true, ["sign", "verify"]) as CryptoKeyPair;
  return {
    privateKey: pair.privateKey,
    pem: pem(await crypto.subtle.exportKey("spki", pair.publicKey)),
    jwk: await crypto.subtle.exportKey("jwk", pair.publicKey),
  };
}

/** Seconds since the epoch, `offset` seconds from now. */
export function seconds(offset = 0): number {
  return Math.floor(Date.now() / 1000) + offset;
}

/** An HS256 (or `alg`) token over `claims`, signed with `secret`. */
export async function hsToken(
  claims: Record<string, unknown>,
  secret = SECRET,
  alg: Algorithm = "HS256",
): Promise<string> {
  return signToken(claims, await hmacSigningKey(secret, alg), alg);
}

/** The usual claims: `sub`, an `exp` an hour away, and `extra`. */
export function claims(
  sub = "alice",
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return { sub, exp: seconds(3600), iat: seconds(), ...extra };
}
