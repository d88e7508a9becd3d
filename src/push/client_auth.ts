/**
 * Authentication of the clients of `/` (README, "Authentication"): the token check of the
 * opening handshake (401 and why, or the client's {@linkcode Identity}), which channels a client
 * may join, the `auth TOKEN` refresh, and the expiry — an `expiring` notice shortly before `exp`,
 * close 4001 "token expired" at `exp` plus {@linkcode LEEWAY_MS}. The expiry is driven by the
 * connection's one deadline field (`Peer.deadline`), which the server's shared ticker checks:
 * there is no timer per connection.
 *
 * @module
 */
import type { Authorized, Peer } from "../net/peer.ts";
import type { HandshakeRejection, UpgradeRequest } from "../protocol/handshake.ts";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import { clockMs } from "../clock.ts";
import { type Authenticator, type Identity, LEEWAY_MS } from "./auth.ts";
import { ChannelPatterns } from "./channel_patterns.ts";
import type { ChannelHub } from "./channel_hub.ts";
import { TokenError } from "./jwt.ts";

/** The close code of a connection whose token expired without a newer one. */
export const TOKEN_EXPIRED = 4001;

/** The `expiring` notice comes at most this long before `exp`. */
export const MAX_EXPIRING_LEAD_MS = 30_000;

/**
 * How long before `exp` the `expiring` notice is sent, for a token with `leftMs` to live when it
 * was presented: 30 s, or a tenth of that time when it is shorter (a 2 s token gets 200 ms), so
 * short tokens are not told to refresh as soon as they arrive.
 */
export function expiringLead(leftMs: number): number {
  return Math.min(MAX_EXPIRING_LEAD_MS, Math.max(0, leftMs) / 10);
}

/**
 * The identity of every client that connected without a token under `--anonymous`: one shared
 * object (public channels only, never expires), so anonymous clients cost no identity each.
 */
export const ANONYMOUS: Identity = {
  user: "anon",
  expiresAt: Infinity,
  channels: ChannelPatterns.NONE,
  publish: ChannelPatterns.NONE,
};

/** The token of an upgrade request: `Authorization: Bearer JWT`, else `?token=JWT`; or null. */
export function tokenOf(request: UpgradeRequest): string | null {
  const header = request.headers.get("authorization");
  if (header !== undefined) {
    const m = /^Bearer +(\S+) *$/i.exec(header);
    if (m) return m[1];
  }
  if (!request.search.includes("token")) return null;
  return new URLSearchParams(request.search).get("token") || null;
}

/** Options of {@linkcode ClientAuth}. */
export interface ClientAuthOptions {
  /** Verifies tokens with the configured keys. */
  auth: Authenticator;
  /** Whether clients without a token may connect (`--anonymous`): public channels only. */
  anonymous: boolean;
  /** Channels every client may join (`--public-channels`). */
  publicChannels: ChannelPatterns;
  /** The channel engine (a refresh leaves the channels the new token no longer allows). */
  hub: ChannelHub;
  /** Where events are logged (never a token). */
  logger: Logger;
  /** Where refusals are counted (`push_auth_failures_total{reason}`). */
  metrics: Metrics;
}

/** The token rules of the push endpoint, when a key is configured. */
export class ClientAuth {
  readonly #o: ClientAuthOptions;

  /** Applies `options`. */
  constructor(options: ClientAuthOptions) {
    this.#o = options;
  }

  /**
   * The handshake's check (the route's `authorize` hook): the identity of a valid token, the
   * shared {@linkcode ANONYMOUS} one for a client without a token under `--anonymous`, or 401
   * with the reason. A token that is given but invalid is refused even under `--anonymous`.
   */
  async authorize(request: UpgradeRequest): Promise<Authorized | HandshakeRejection> {
    const token = tokenOf(request);
    if (token === null) {
      if (this.#o.anonymous) return { identity: ANONYMOUS };
      return this.#refusal(new TokenError("missing", "missing token"));
    }
    try {
      return { identity: await this.#o.auth.verify(token) };
    } catch (err) {
      return this.#refusal(err);
    }
  }

  /** Whether `peer` may subscribe to `channel`: a public channel, or one its token grants. */
  mayJoin(peer: Peer, channel: string): boolean {
    if (this.#o.publicChannels.matches(channel)) return true;
    const identity = peer.identity as Identity | null;
    return identity !== null && identity.channels.matches(channel);
  }

  /** Sets `peer`'s deadline to its token's `expiring` notice (none for anonymous clients). */
  arm(peer: Peer): void {
    const identity = peer.identity as Identity | null;
    if (identity === null || !Number.isFinite(identity.expiresAt)) {
      peer.deadline = 0;
      return;
    }
    const left = identity.expiresAt - Date.now();
    // Whole and at least 1: 0 means "no deadline", and a fraction in a field is a heap object
    // per connection. A token already past exp (within the leeway) gets its notice next tick.
    peer.deadline = clockMs() + Math.max(1, Math.ceil(left - expiringLead(left)));
  }

  /**
   * `peer`'s deadline came (the `onDeadline` hook): before `exp` plus half the leeway it is the
   * `expiring` notice (then the deadline moves to `exp` + leeway); after, the close with 4001
   * "token expired". Deciding by the clock, not by a flag, keeps the state to one field.
   */
  deadline(peer: Peer, now: number): void {
    const identity = peer.identity as Identity | null;
    if (identity === null || !Number.isFinite(identity.expiresAt)) return;
    const toExp = identity.expiresAt - Date.now();
    if (toExp > -LEEWAY_MS / 2) {
      peer.sendText(JSON.stringify({ notice: "expiring", exp: identity.expiresAt / 1000 }));
      peer.deadline = now + Math.max(1, Math.ceil(toExp + LEEWAY_MS));
      return;
    }
    const left = toExp + LEEWAY_MS;
    if (left > 0) {
      // The tick came early by the clocks' drift: wait for the rest.
      peer.deadline = now + Math.ceil(left);
      return;
    }
    this.#o.logger.info("client.token_expired", { client: peer.id });
    peer.close(TOKEN_EXPIRED, "token expired");
  }

  /**
   * `auth TOKEN`: a newer token for the same user replaces the old one (`authenticated` with its
   * `exp`), and the channels it no longer allows are left with an `unsubscribed` notice that
   * says why. An invalid token, or one for another user, gets an error and changes nothing.
   */
  async refresh(peer: Peer, token: string): Promise<void> {
    const current = peer.identity as Identity | null;
    if (current === null || current === ANONYMOUS) {
      peer.sendText(JSON.stringify({
        error: "This connection has no token to refresh: reconnect with one.",
        reason: "anonymous",
      }));
      return;
    }
    let next: Identity;
    try {
      next = await this.#o.auth.verify(token);
    } catch (err) {
      const error = this.#failure(err);
      peer.sendText(JSON.stringify({
        error: `Token refused: ${error.message}; the previous token stays in force.`,
        reason: error.reason,
      }));
      return;
    }
    if (next.user !== current.user) {
      this.#o.metrics.authFailures.inc("subject");
      peer.sendText(JSON.stringify({
        error: "Token refused: it is for another user; the previous token stays in force.",
        reason: "subject",
      }));
      return;
    }
    peer.identity = next;
    this.arm(peer);
    peer.sendText(JSON.stringify({ notice: "authenticated", exp: next.expiresAt / 1000 }));
    const hub = this.#o.hub;
    for (const channel of [...hub.subscriptionsOf(peer)]) {
      if (this.mayJoin(peer, channel) || !hub.unsubscribe(peer, channel)) continue;
      peer.sendText(JSON.stringify({
        notice: "unsubscribed",
        channel,
        reason: "the new token does not allow this channel",
      }));
      this.#o.logger.info("client.unsubscribe", { client: peer.id, channel, reason: "token" });
    }
  }

  /** Counts a refusal and makes it a 401 whose body names the reason. */
  #refusal(err: unknown): HandshakeRejection {
    const error = this.#failure(err);
    return {
      status: 401,
      reason: `${error.message} (${error.reason})`,
      // RFC 6750 §3: the scheme, and invalid_token once a token was given.
      headers: {
        "WWW-Authenticate": error.reason === "missing" ? "Bearer" : 'Bearer error="invalid_token"',
      },
    };
  }

  /** The {@linkcode TokenError} of a failed check, counted; anything else is a bug, logged. */
  #failure(err: unknown): { reason: string; message: string } {
    let failure: { reason: string; message: string };
    if (err instanceof TokenError) {
      failure = err;
    } else {
      this.#o.logger.error("auth.internal_error", { error: String(err) });
      failure = { reason: "error", message: "the token could not be verified" };
    }
    this.#o.metrics.authFailures.inc(failure.reason);
    return failure;
  }
}
