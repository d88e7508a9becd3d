/**
 * Who a client is and what it may do, from a JWT: the {@linkcode Authenticator} verifies a token
 * with the configured keys and turns its claims into an {@linkcode Identity} (user id, expiry,
 * the channels it may subscribe to and publish to, presence info).
 *
 * Claims (README, "Authentication"): `sub` (required, the user id), `exp` (required), `nbf` and
 * `iat` (honoured with {@linkcode LEEWAY_MS} of clock skew), `aud`/`iss` (checked when
 * configured), `channels` and `publish` (arrays of channel patterns), `info` (a JSON object of at
 * most 1 KiB).
 *
 * @module
 */
import { ChannelPatterns } from "./channel_patterns.ts";
import { decodeToken, TokenError, type VerificationKey, verifySignature } from "./jwt.ts";
import type { JwksKeys } from "./jwt_keys.ts";

/** Clock skew tolerated on `exp`, `nbf` and `iat`. */
export const LEEWAY_MS = 5000;

/** The largest `info` claim, serialised. */
export const MAX_INFO_BYTES = 1024;

/** The longest `sub`. */
const MAX_SUB_CHARS = 256;

/** A verified client. */
export interface Identity {
  /** The user id (`sub`). */
  user: string;
  /** When the token expires (ms since the epoch). */
  expiresAt: number;
  /** The channels it may subscribe to. */
  channels: ChannelPatterns;
  /** The channels it may publish to. */
  publish: ChannelPatterns;
  /** The `info` claim as JSON text, when given. */
  info?: string;
}

/** Options of {@linkcode Authenticator}. */
export interface AuthenticatorOptions {
  /** Verifies HS256/384/512 tokens. */
  secret?: VerificationKey;
  /** Verifies RS/ES tokens (one PEM key). */
  publicKey?: VerificationKey;
  /** Verifies RS/ES tokens by key id. */
  jwks?: JwksKeys;
  /** When set, `aud` must be (or contain) it. */
  audience?: string;
  /** When set, `iss` must equal it. */
  issuer?: string;
  /** The clock (ms since the epoch); `Date.now` by default. */
  now?: () => number;
}

/** Verifies tokens and reads their claims. */
export class Authenticator {
  readonly #options: AuthenticatorOptions;
  readonly #now: () => number;

  /** Creates an authenticator over the configured keys (at least one). */
  constructor(options: AuthenticatorOptions) {
    if (!options.secret && !options.publicKey && !options.jwks) {
      throw new TypeError("an authenticator needs a key");
    }
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  /**
   * Verifies `token` and returns the identity it carries. Throws {@linkcode TokenError} with the
   * reason: malformed, algorithm, unknown_key, signature, expired, not_yet_valid, audience,
   * issuer, or claims.
   */
  async verify(token: string): Promise<Identity> {
    const decoded = decodeToken(token);
    const key = await this.#keyFor(decoded.header.alg, decoded.header.kid);
    await verifySignature(decoded, key);
    return this.#identity(decoded.payload);
  }

  async #keyFor(alg: string, kid: string | undefined): Promise<VerificationKey> {
    const o = this.#options;
    // The token's alg only chooses among the keys we hold; each key accepts its own family only.
    if (alg.startsWith("HS")) {
      if (o.secret) return o.secret;
    } else if (alg.startsWith("RS") || alg.startsWith("ES")) {
      if (o.jwks) {
        const key = await o.jwks.find(kid);
        if (key) return key;
        if (!o.publicKey) throw new TokenError("unknown_key", "unknown key id");
      }
      if (o.publicKey) return o.publicKey;
    }
    throw new TokenError("algorithm", `algorithm ${alg.slice(0, 16)} not accepted`);
  }

  #identity(claims: Record<string, unknown>): Identity {
    const now = this.#now();
    const { sub, exp, nbf, iat } = claims;
    if (typeof sub !== "string" || sub === "" || sub.length > MAX_SUB_CHARS) {
      throw new TokenError("claims", "sub must be a non-empty string");
    }
    if (typeof exp !== "number" || !Number.isFinite(exp)) {
      throw new TokenError("claims", "exp is required");
    }
    if (exp * 1000 + LEEWAY_MS <= now) throw new TokenError("expired", "token expired");
    for (const [name, value] of [["nbf", nbf], ["iat", iat]] as const) {
      if (value === undefined) continue;
      if (typeof value !== "number" || !Number.isFinite(value)) {
        throw new TokenError("claims", `${name} must be a number`);
      }
      if (value * 1000 - LEEWAY_MS > now) {
        throw new TokenError("not_yet_valid", "token not yet valid");
      }
    }
    const o = this.#options;
    if (o.audience !== undefined) {
      const aud = claims.aud;
      const ok = aud === o.audience || (Array.isArray(aud) && aud.includes(o.audience));
      if (!ok) throw new TokenError("audience", "wrong audience");
    }
    if (o.issuer !== undefined && claims.iss !== o.issuer) {
      throw new TokenError("issuer", "wrong issuer");
    }
    const identity: Identity = {
      user: sub,
      expiresAt: exp * 1000,
      channels: patterns(claims.channels, "channels"),
      publish: patterns(claims.publish, "publish"),
    };
    if (claims.info !== undefined) {
      const info = claims.info;
      if (info === null || typeof info !== "object" || Array.isArray(info)) {
        throw new TokenError("claims", "info must be a JSON object");
      }
      const text = JSON.stringify(info);
      if (new TextEncoder().encode(text).length > MAX_INFO_BYTES) {
        throw new TokenError("claims", `info must be at most ${MAX_INFO_BYTES} bytes`);
      }
      identity.info = text;
    }
    return identity;
  }
}

function patterns(value: unknown, claim: string): ChannelPatterns {
  if (value === undefined) return ChannelPatterns.NONE;
  if (!Array.isArray(value) || value.length > 1000) {
    throw new TokenError("claims", `${claim} must be an array of channel patterns`);
  }
  try {
    return ChannelPatterns.parse(value);
  } catch (err) {
    throw new TokenError("claims", `${claim}: ${(err as Error).message}`);
  }
}
