/**
 * The keys that verify tokens: an HMAC secret (`--jwt-secret`), a PEM public key
 * (`--jwt-public-key`, RSA or EC), and a JWKS document fetched from a URL (`--jwt-jwks-url`)
 * and refreshed when a token names a key id it does not know. Each CryptoKey is imported once
 * and cached: importing costs as much as verifying.
 *
 * @module
 */
import { type Algorithm, ALGORITHMS, importParams, type VerificationKey } from "./jwt.ts";

/** The shortest HMAC secret accepted: RFC 7518 §3.2 asks for a key at least the hash's size. */
export const MIN_SECRET_BYTES = 32;

/** A key whose CryptoKey per algorithm is imported on first use and then kept. */
class CachedKey implements VerificationKey {
  readonly family: keyof typeof ALGORITHMS;
  readonly #allowed: readonly Algorithm[];
  readonly #importFor: (alg: Algorithm) => Promise<CryptoKey>;
  readonly #keys = new Map<Algorithm, Promise<CryptoKey | null>>();

  constructor(
    family: keyof typeof ALGORITHMS,
    allowed: readonly Algorithm[],
    importFor: (alg: Algorithm) => Promise<CryptoKey>,
  ) {
    this.family = family;
    this.#allowed = allowed;
    this.#importFor = importFor;
  }

  key(alg: Algorithm): Promise<CryptoKey | null> {
    if (!this.#allowed.includes(alg)) return Promise.resolve(null);
    let key = this.#keys.get(alg);
    if (key === undefined) {
      key = this.#importFor(alg);
      this.#keys.set(alg, key);
    }
    return key;
  }
}

/** The HMAC key for `secret` (HS256/384/512). Throws when it is shorter than 32 bytes. */
export function hmacKey(secret: string): VerificationKey {
  const bytes = new TextEncoder().encode(secret);
  if (bytes.length < MIN_SECRET_BYTES) {
    throw new TypeError(`the secret must be at least ${MIN_SECRET_BYTES} bytes`);
  }
  return new CachedKey(
    "HMAC",
    ALGORITHMS.HMAC,
    (alg) => crypto.subtle.importKey("raw", bytes, importParams(alg), false, ["verify"]),
  );
}

/** Whether `value` looks like PEM text rather than a path to a PEM file. */
export function isPemText(value: string): boolean {
  return value.includes("-----BEGIN ");
}

/**
 * The key in PEM text: an SPKI `PUBLIC KEY` block, RSA (RS256/384/512) or EC (P-256 → ES256,
 * P-384 → ES384). Throws a `TypeError` that says what is wrong (a certificate, a private key,
 * PKCS#1 `RSA PUBLIC KEY`, or not a key).
 */
export async function publicKeyFromPem(pem: string): Promise<VerificationKey> {
  const m = /-----BEGIN ([A-Z ]+)-----([\s\S]*?)-----END \1-----/.exec(pem);
  if (!m) throw new TypeError("no PEM block found");
  if (m[1] !== "PUBLIC KEY") {
    throw new TypeError(
      `expected a "PUBLIC KEY" PEM block, got "${m[1]}"` +
        (m[1] === "RSA PUBLIC KEY"
          ? " (convert it: openssl rsa -RSAPublicKey_in -in key.pem -pubout)"
          : ""),
    );
  }
  let der: Uint8Array<ArrayBuffer>;
  try {
    der = Uint8Array.fromBase64(m[2].replace(/\s+/g, ""));
  } catch {
    throw new TypeError("the PEM block is not valid base64");
  }
  const spki = (params: RsaHashedImportParams | EcKeyImportParams) =>
    crypto.subtle.importKey("spki", der, params, false, ["verify"]);
  // The key type is found by importing: Web Crypto checks the SPKI algorithm for us.
  try {
    await spki(importParams("RS256") as RsaHashedImportParams);
    return new CachedKey(
      "RSA",
      ALGORITHMS.RSA,
      (alg) => spki(importParams(alg) as RsaHashedImportParams),
    );
  } catch { /* not RSA */ }
  for (const alg of ALGORITHMS.EC) {
    try {
      const key = await spki(importParams(alg) as EcKeyImportParams);
      return new CachedKey("EC", [alg], () => Promise.resolve(key));
    } catch { /* another curve */ }
  }
  throw new TypeError("the PEM key is neither RSA nor EC P-256/P-384");
}

/** A JWK's public members, as JWKS documents carry them. */
interface Jwk {
  kty?: unknown;
  kid?: unknown;
  alg?: unknown;
  use?: unknown;
  n?: unknown;
  e?: unknown;
  crv?: unknown;
  x?: unknown;
  y?: unknown;
}

/** The key of one JWK, or null when it is not a signature key we can use. */
export function keyFromJwk(jwk: Jwk): VerificationKey | null {
  if (jwk.use !== undefined && jwk.use !== "sig") return null;
  let family: "RSA" | "EC";
  let allowed: readonly Algorithm[];
  let material: JsonWebKey;
  if (jwk.kty === "RSA" && typeof jwk.n === "string" && typeof jwk.e === "string") {
    family = "RSA";
    allowed = ALGORITHMS.RSA;
    material = { kty: "RSA", n: jwk.n, e: jwk.e };
  } else if (
    jwk.kty === "EC" && (jwk.crv === "P-256" || jwk.crv === "P-384") &&
    typeof jwk.x === "string" && typeof jwk.y === "string"
  ) {
    family = "EC";
    allowed = [jwk.crv === "P-256" ? "ES256" : "ES384"];
    material = { kty: "EC", crv: jwk.crv, x: jwk.x, y: jwk.y };
  } else {
    return null;
  }
  // A key that names its algorithm verifies only that one (RFC 7517 §4.4).
  if (jwk.alg !== undefined) {
    if (!(allowed as readonly unknown[]).includes(jwk.alg)) return null;
    allowed = [jwk.alg as Algorithm];
  }
  return new CachedKey(
    family,
    allowed,
    (alg) => crypto.subtle.importKey("jwk", material, importParams(alg), false, ["verify"]),
  );
}

/** Options of {@linkcode JwksKeys}. */
export interface JwksOptions {
  /** Where the JWKS document is. */
  url: string;
  /** Fetches it (injected by tests); `fetch` with a 5 s timeout by default. */
  fetch?: (url: string) => Promise<Response>;
  /** Least time between two fetches caused by unknown key ids (ms). */
  minRefreshMs?: number;
  /** The clock (ms). */
  now?: () => number;
  /** Told when a refresh fails (the cached keys stay in use). */
  onRefreshFailed?: (error: string) => void;
}

/** The longest JWKS document read. */
const MAX_JWKS_BYTES = 1024 * 1024;

/**
 * The keys of a JWKS document, by key id. {@linkcode JwksKeys.load} must succeed once at start;
 * afterwards an unknown `kid` triggers a refetch at most every `minRefreshMs` (30 s), and a
 * failed refetch keeps the cached keys.
 */
export class JwksKeys {
  readonly #options: Required<Omit<JwksOptions, "onRefreshFailed">> & JwksOptions;
  #keys = new Map<string, VerificationKey>();
  #lastFetch = -Infinity;
  #inflight: Promise<void> | null = null;

  /** Creates the key set; nothing is fetched before {@linkcode JwksKeys.load}. */
  constructor(options: JwksOptions) {
    this.#options = {
      fetch: (url) => fetch(url, { signal: AbortSignal.timeout(5000) }),
      minRefreshMs: 30_000,
      now: () => performance.now(),
      ...options,
    };
  }

  /** How many keys are cached. */
  get size(): number {
    return this.#keys.size;
  }

  /** Fetches the document; throws with a clear message when it cannot (at start: exit 2). */
  async load(): Promise<void> {
    this.#lastFetch = this.#options.now();
    const res = await this.#options.fetch(this.#options.url);
    if (!res.ok) {
      await res.body?.cancel();
      throw new Error(`JWKS ${this.#options.url} answered HTTP ${res.status}`);
    }
    const text = await res.text();
    if (text.length > MAX_JWKS_BYTES) throw new Error(`JWKS ${this.#options.url} is too large`);
    const doc = JSON.parse(text) as { keys?: unknown };
    if (!Array.isArray(doc?.keys)) throw new Error(`JWKS ${this.#options.url} has no "keys" array`);
    const keys = new Map<string, VerificationKey>();
    let anonymous = 0;
    for (const jwk of doc.keys as Jwk[]) {
      const key = jwk && typeof jwk === "object" ? keyFromJwk(jwk) : null;
      if (key === null) continue;
      // A key without a kid can only be chosen when it is the only one.
      const id = typeof jwk.kid === "string" ? jwk.kid : `\0${anonymous++}`;
      keys.set(id, key);
    }
    this.#keys = keys;
  }

  /**
   * The key for `kid` (or the only key when the token names none), refetching the document
   * once per `minRefreshMs` when the id is unknown; null when there is none.
   */
  async find(kid: string | undefined): Promise<VerificationKey | null> {
    const found = this.#lookup(kid);
    if (found !== null || kid === undefined) return found;
    if (this.#options.now() - this.#lastFetch < this.#options.minRefreshMs) return null;
    this.#inflight ??= this.load().catch((err) => {
      this.#options.onRefreshFailed?.(err instanceof Error ? err.message : String(err));
    }).finally(() => this.#inflight = null);
    await this.#inflight;
    return this.#lookup(kid);
  }

  #lookup(kid: string | undefined): VerificationKey | null {
    if (kid !== undefined) return this.#keys.get(kid) ?? null;
    return this.#keys.size === 1 ? this.#keys.values().next().value! : null;
  }
}
