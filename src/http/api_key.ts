/**
 * The API key of the HTTP API (`--publish-token`), shared by `POST /publish` and
 * `POST /disconnect`: the bearer value compared in constant time, and the rule for a server
 * without a key (loopback peers that are not browsers only).
 *
 * @module
 */

import { isLoopbackHost } from "../protocol/handshake.ts";
const encoder = new TextEncoder();

/** An HTTP API refusal: the status, the message for `{"error": …}`, extra headers and fields. */
export class ApiError extends Error {
  /** Creates the refusal. */
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
    readonly fields: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

/**
 * Whether the peer address `hostname` is a loopback address (127.0.0.0/8, ::1, or IPv4-mapped
 * 127.x): the Host rule's test, minus the name `localhost`, which no peer address is.
 */
export function isLoopback(hostname: string): boolean {
  return hostname.toLowerCase() !== "localhost" && isLoopbackHost(hostname);
}

/**
 * Whether a browser sent `request`: browsers add `Origin` to every cross-origin request (and to
 * same-origin POSTs) and `Sec-Fetch-Site` to all; curl and backends send neither. A page on any
 * site can make the user's browser POST here (a `no-cors` text/plain request needs no preflight),
 * and the browser runs on the server's machine, so loopback alone proves nothing.
 */
export function isBrowserRequest(request: Request): boolean {
  const site = request.headers.get("sec-fetch-site");
  return request.headers.has("origin") || (site !== null && site !== "none");
}

/** The value of `Authorization: Bearer VALUE` (the scheme in any case, RFC 7235), or null. */
export function bearerToken(request: Request): string | null {
  const m = /^bearer +(.+)$/i.exec(request.headers.get("authorization") ?? "");
  return m ? m[1] : null;
}

async function sha256(text: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(text)));
}

/** Compares two equal-length byte arrays in time independent of where they differ. */
function timingSafeEqual(a: Uint8Array, b: Uint8Array): boolean {
  let diff = a.length ^ b.length;
  for (let i = 0; i < a.length && i < b.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

/** The API key check of one endpoint. */
export class ApiKey {
  /** Digests are compared, not the strings: equal length, so the time says nothing. */
  readonly #digest: Promise<Uint8Array> | null;
  readonly #realm: string;

  /** `key` is `--publish-token` ("" = none); `realm` names the endpoint in `WWW-Authenticate`. */
  constructor(key: string, realm: string) {
    this.#digest = key ? sha256(key) : null;
    this.#realm = realm;
  }

  /** Whether a key is configured. */
  get configured(): boolean {
    return this.#digest !== null;
  }

  /** Whether `bearer` is the key (false when none is configured). */
  async matches(bearer: string | null): Promise<boolean> {
    if (this.#digest === null || bearer === null) return false;
    return timingSafeEqual(await sha256(bearer), await this.#digest);
  }

  /**
   * Throws the refusal of a request without a valid credential: 401 when a key is configured;
   * otherwise 403 for a browser request or a peer beyond loopback, and nothing (allowed) for a
   * loopback peer that is not a browser. `what` completes "… may <what> only …".
   */
  refuseWithoutCredential(request: Request, peer: string, what: string): void {
    if (this.#digest !== null) {
      throw new ApiError(401, "A valid Authorization: Bearer <token> header is required.", {
        "www-authenticate": `Bearer realm="${this.#realm}"`,
      });
    }
    if (isBrowserRequest(request)) {
      throw new ApiError(
        403,
        `Browser requests may ${what} only with --publish-token and its bearer token.`,
      );
    }
    if (!isLoopback(peer)) {
      throw new ApiError(403, `Only loopback peers may ${what} unless --publish-token is set.`);
    }
  }

  /** The `WWW-Authenticate` value for a refused bearer token (RFC 6750 §3.1). */
  invalidToken(): Record<string, string> {
    return { "www-authenticate": `Bearer realm="${this.#realm}", error="invalid_token"` };
  }
}

/** A JSON response (`no-store`: API answers are never cached). */
export function jsonResponse(
  body: unknown,
  status = 200,
  headers: Record<string, string> = {},
): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: {
      "content-type": "application/json; charset=utf-8",
      "cache-control": "no-store",
      ...headers,
    },
  });
}
