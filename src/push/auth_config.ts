/**
 * The {@linkcode Authenticator} of the configuration: `--jwt-secret` (HMAC), `--jwt-public-key`
 * (PEM text, or a path to a PEM file), `--jwt-jwks-url` (fetched once here, at start), with
 * `--jwt-audience` and `--jwt-issuer`. Every problem is a {@linkcode ConfigError}, so the server
 * exits with code 2 and a message that names the option, before it listens.
 *
 * @module
 */
import { type Config, ConfigError } from "../config.ts";
import type { Logger } from "../log.ts";
import { Authenticator } from "./auth.ts";
import { ChannelPatterns } from "./channel_patterns.ts";
import type { VerificationKey } from "./jwt.ts";
import { hmacKey, isPemText, JwksKeys, publicKeyFromPem } from "./jwt_keys.ts";

/** The options the authentication is made of. */
export type AuthConfig = Pick<
  Config,
  | "jwtSecret"
  | "jwtPublicKey"
  | "jwtJwksUrl"
  | "jwtAudience"
  | "jwtIssuer"
  | "anonymous"
  | "publicChannels"
>;

/** What {@linkcode authFromConfig} makes. */
export interface ClientAuthConfig {
  /** Verifies tokens; null when no key is configured (every channel is public then). */
  auth: Authenticator | null;
  /** `--anonymous`. */
  anonymous: boolean;
  /** `--public-channels`, compiled. */
  publicChannels: ChannelPatterns;
}

/** Options of {@linkcode authFromConfig}. */
export interface AuthFromConfigOptions {
  /** Where JWKS refresh failures are logged. */
  logger: Logger;
  /** Fetches the JWKS (tests inject one); `fetch` with a 5 s timeout by default. */
  fetch?: (url: string) => Promise<Response>;
  /** Least time between two JWKS fetches caused by unknown key ids; 30 s by default (tests). */
  jwksMinRefreshMs?: number;
}

/**
 * Builds the authentication of `config`. Throws {@linkcode ConfigError} for a secret shorter
 * than 32 bytes, a PEM that is no public key or a file that cannot be read, a JWKS that cannot
 * be loaded or holds no usable key, and for `--anonymous`, `--public-channels`,
 * `--jwt-audience` or `--jwt-issuer` without any key.
 */
export async function authFromConfig(
  config: AuthConfig,
  options: AuthFromConfigOptions,
): Promise<ClientAuthConfig> {
  let publicChannels: ChannelPatterns;
  try {
    publicChannels = ChannelPatterns.parse(config.publicChannels);
  } catch (err) {
    throw new ConfigError(`Invalid --public-channels: ${(err as Error).message}.`);
  }
  const secret = config.jwtSecret ? secretKey(config.jwtSecret) : undefined;
  const publicKey = config.jwtPublicKey ? await pemKey(config.jwtPublicKey) : undefined;
  const jwks = config.jwtJwksUrl ? await loadJwks(config.jwtJwksUrl, options) : undefined;
  if (!secret && !publicKey && !jwks) {
    const given = [
      config.anonymous && "--anonymous",
      !publicChannels.empty && "--public-channels",
      config.jwtAudience && "--jwt-audience",
      config.jwtIssuer && "--jwt-issuer",
    ].filter(Boolean);
    if (given.length > 0) {
      // Without a key every channel is public: these would silently mean nothing.
      throw new ConfigError(
        `${given.join(", ")} need a key: --jwt-secret, --jwt-public-key or --jwt-jwks-url.`,
      );
    }
    return { auth: null, anonymous: false, publicChannels };
  }
  const auth = new Authenticator({
    secret,
    publicKey,
    jwks,
    audience: config.jwtAudience || undefined,
    issuer: config.jwtIssuer || undefined,
  });
  return { auth, anonymous: config.anonymous, publicChannels };
}

function secretKey(secret: string): VerificationKey {
  try {
    return hmacKey(secret);
  } catch (err) {
    // The message gives the length rule, never the secret.
    throw new ConfigError(`Invalid --jwt-secret (PUSH_JWT_SECRET): ${(err as Error).message}.`);
  }
}

async function pemKey(value: string): Promise<VerificationKey> {
  let pem = value;
  let where = "the PEM text";
  if (!isPemText(value)) {
    where = `the file "${value}"`;
    try {
      pem = await Deno.readTextFile(value);
    } catch (err) {
      throw new ConfigError(
        `Cannot read --jwt-public-key (PUSH_JWT_PUBLIC_KEY) ${where}: ${(err as Error).message}. ` +
          "Give the PEM text itself, or a file the server may read (extend --allow-read to it).",
      );
    }
  }
  try {
    return await publicKeyFromPem(pem);
  } catch (err) {
    throw new ConfigError(
      `Invalid --jwt-public-key (PUSH_JWT_PUBLIC_KEY), ${where}: ${(err as Error).message}.`,
    );
  }
}

async function loadJwks(url: string, options: AuthFromConfigOptions): Promise<JwksKeys> {
  const jwks = new JwksKeys({
    url,
    ...(options.fetch ? { fetch: options.fetch } : {}),
    ...(options.jwksMinRefreshMs !== undefined ? { minRefreshMs: options.jwksMinRefreshMs } : {}),
    // Later failures keep the cached keys: clients with known key ids go on connecting.
    onRefreshFailed: (error) => options.logger.warn("auth.jwks_refresh_failed", { url, error }),
  });
  try {
    await jwks.load();
  } catch (err) {
    throw new ConfigError(
      `Cannot load the JWKS of --jwt-jwks-url (PUSH_JWT_JWKS_URL) ${url}: ${
        err instanceof Error ? err.message : String(err)
      }.`,
    );
  }
  if (jwks.size === 0) {
    throw new ConfigError(
      `The JWKS of --jwt-jwks-url ${url} holds no usable signature key (RSA, or EC P-256/P-384).`,
    );
  }
  options.logger.info("auth.jwks_loaded", { url, keys: jwks.size });
  return jwks;
}
