/**
 * JSON Web Tokens (RFC 7519) in JWS compact form (RFC 7515), verified with Web Crypto: HS256,
 * HS384 and HS512 (HMAC), RS256, RS384 and RS512 (RSASSA-PKCS1-v1_5), ES256 and ES384 (ECDSA,
 * whose JWS signature is the raw r‖s that Web Crypto expects). No dependency.
 *
 * The algorithm is pinned to the key, never taken from the token alone: a key verifies only the
 * algorithms of its own type, so `alg: none` and algorithm confusion (an HS256 token "signed"
 * with an RSA public key used as an HMAC secret) are refused before any crypto runs.
 *
 * @module
 */

/** Why a token was refused: a stable id (a metric label) and a short text for the client. */
export class TokenError extends Error {
  /** The stable id of the failure. */
  readonly reason: TokenFailure;

  /** Creates the error; `reason` is one of the ids documented in the README. */
  constructor(reason: TokenFailure, message: string) {
    super(message);
    this.name = "TokenError";
    this.reason = reason;
  }
}

/** The stable ids of {@linkcode TokenError}, used as `push_auth_failures_total{reason}`. */
export type TokenFailure =
  | "missing"
  | "malformed"
  | "algorithm"
  | "unknown_key"
  | "signature"
  | "expired"
  | "not_yet_valid"
  | "audience"
  | "issuer"
  | "claims";

/** The algorithms a key family verifies. */
export const ALGORITHMS = {
  HMAC: ["HS256", "HS384", "HS512"],
  RSA: ["RS256", "RS384", "RS512"],
  EC: ["ES256", "ES384"],
} as const;

/** A JWS algorithm this module verifies. */
export type Algorithm = typeof ALGORITHMS[keyof typeof ALGORITHMS][number];

const HASH: Record<Algorithm, string> = {
  HS256: "SHA-256",
  HS384: "SHA-384",
  HS512: "SHA-512",
  RS256: "SHA-256",
  RS384: "SHA-384",
  RS512: "SHA-512",
  ES256: "SHA-256",
  ES384: "SHA-384",
};

/** The Web Crypto parameters that verify `alg`. */
export function verifyParams(alg: Algorithm): AlgorithmIdentifier | EcdsaParams {
  if (alg.startsWith("HS")) return { name: "HMAC" };
  if (alg.startsWith("RS")) return { name: "RSASSA-PKCS1-v1_5" };
  return { name: "ECDSA", hash: HASH[alg] };
}

/** The Web Crypto import parameters for a key that verifies `alg`. */
export function importParams(
  alg: Algorithm,
): HmacImportParams | RsaHashedImportParams | EcKeyImportParams {
  if (alg.startsWith("HS")) return { name: "HMAC", hash: HASH[alg] };
  if (alg.startsWith("RS")) return { name: "RSASSA-PKCS1-v1_5", hash: HASH[alg] };
  return { name: "ECDSA", namedCurve: alg === "ES256" ? "P-256" : "P-384" };
}

/** A token split and decoded, not yet verified. */
export interface DecodedToken {
  /** The JOSE header. */
  header: { alg: string; kid?: string; [name: string]: unknown };
  /** The claims. */
  payload: Record<string, unknown>;
  /** `base64url(header) + "." + base64url(payload)`: what the signature covers. */
  signingInput: Uint8Array<ArrayBuffer>;
  /** The signature bytes. */
  signature: Uint8Array<ArrayBuffer>;
}

/** The longest token accepted: claims for a few hundred channel patterns fit comfortably. */
export const MAX_TOKEN_CHARS = 8192;

const BASE64URL = /^[A-Za-z0-9_-]*$/;
const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

function base64url(part: string): Uint8Array<ArrayBuffer> {
  if (!BASE64URL.test(part) || part.length % 4 === 1) {
    throw new TokenError("malformed", "malformed token");
  }
  try {
    return Uint8Array.fromBase64(part, { alphabet: "base64url", lastChunkHandling: "loose" });
  } catch {
    throw new TokenError("malformed", "malformed token");
  }
}

function jsonObject(part: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(base64url(part)));
  } catch (err) {
    if (err instanceof TokenError) throw err;
    throw new TokenError("malformed", "malformed token");
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new TokenError("malformed", "malformed token");
  }
  return value as Record<string, unknown>;
}

/**
 * Splits and decodes a compact JWS. Throws {@linkcode TokenError} ("malformed") for anything but
 * three base64url parts whose first two are JSON objects and whose header names an `alg`.
 */
export function decodeToken(token: string): DecodedToken {
  if (token.length > MAX_TOKEN_CHARS) throw new TokenError("malformed", "token too long");
  const parts = token.split(".");
  if (parts.length !== 3) throw new TokenError("malformed", "malformed token");
  const header = jsonObject(parts[0]);
  if (typeof header.alg !== "string") throw new TokenError("malformed", "malformed token");
  if (header.kid !== undefined && typeof header.kid !== "string") {
    throw new TokenError("malformed", "malformed token");
  }
  // `crit` names extensions the verifier must understand (RFC 7515 §4.1.11): we know none.
  if (header.crit !== undefined) {
    throw new TokenError("malformed", "unsupported critical header");
  }
  return {
    header: header as DecodedToken["header"],
    payload: jsonObject(parts[1]),
    signingInput: encoder.encode(`${parts[0]}.${parts[1]}`),
    signature: base64url(parts[2]),
  };
}

/** One verification key: the algorithms it may verify and, per algorithm, its CryptoKey. */
export interface VerificationKey {
  /** The key family; decides which `alg` values it accepts. */
  family: keyof typeof ALGORITHMS;
  /** The CryptoKey that verifies `alg`, or null when this key does not verify it. */
  key(alg: Algorithm): Promise<CryptoKey | null>;
}

/** Whether `alg` is an algorithm of `family` (so it may be checked with such a key). */
export function algorithmOf(
  family: keyof typeof ALGORITHMS,
  alg: string,
): Algorithm | null {
  return (ALGORITHMS[family] as readonly string[]).includes(alg) ? alg as Algorithm : null;
}

/**
 * Checks `token`'s signature with `key`. Throws {@linkcode TokenError}: "algorithm" when the
 * token's `alg` is not one of the key's family (this is what refuses `none` and confusion),
 * "signature" when the signature does not verify.
 */
export async function verifySignature(
  token: DecodedToken,
  key: VerificationKey,
): Promise<void> {
  const alg = algorithmOf(key.family, token.header.alg);
  if (alg === null) {
    throw new TokenError("algorithm", `algorithm ${token.header.alg.slice(0, 16)} not accepted`);
  }
  const cryptoKey = await key.key(alg);
  if (cryptoKey === null) {
    throw new TokenError("algorithm", `algorithm ${alg} not accepted for this key`);
  }
  // ECDSA signatures are r‖s of the curve's size; anything else cannot verify.
  if (alg === "ES256" && token.signature.length !== 64) {
    throw new TokenError("signature", "bad signature");
  }
  if (alg === "ES384" && token.signature.length !== 96) {
    throw new TokenError("signature", "bad signature");
  }
  const ok = await crypto.subtle.verify(
    verifyParams(alg),
    cryptoKey,
    token.signature,
    token.signingInput,
  );
  if (!ok) throw new TokenError("signature", "bad signature");
}
