/**
 * `POST /disconnect?user=SUB`: closes every connection of a user (a token's `sub`) with
 * **4003** "disconnected by server" and answers `{"disconnected":N}`, N being the connections
 * this instance closed: WebSocket clients (close frame 4003) and `GET /events` streams (a last
 * `closed` notice with 4003, then the end of the response) alike. With Redis, the request is also published to every other instance,
 * which closes its own connections of the user when the message arrives (asynchronously: the
 * answer does not wait for them) and `instances` says how many instances Redis handed it to
 * (this one included).
 *
 * The API key (`--publish-token`) is required; without one, only loopback peers that are not
 * browsers may call it, as for publishing. A token's `publish` claim never authorizes it.
 *
 * @module
 */
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import { HubUnavailableError } from "../push/broker.ts";
import type { SessionPeer, Sessions } from "../push/sessions.ts";
import type { Subscriber } from "../push/subscriptions.ts";
import { type ChannelHub, isValidChannelName } from "../push/channel_hub.ts";
import { ApiError, ApiKey, bearerToken, jsonResponse } from "./api_key.ts";

/** The close code of a connection closed by `POST /disconnect` (private use, RFC 6455 §7.4.2). */
export const DISCONNECT_CODE = 4003;
/** The close reason sent with {@linkcode DISCONNECT_CODE}. */
export const DISCONNECT_REASON = "disconnected by server";

/** The longest `user` accepted (the longest `sub` a token may carry). */
const MAX_USER_CHARS = 256;

/**
 * Closes every local connection of `user` (WebSocket or event stream, whatever `sessions`
 * joins) with 4003 "disconnected by server" and counts them;
 * returns how many. The endpoint calls it, and so does the Redis control channel for requests
 * made on another instance.
 */
export function disconnectUser(
  sessions: Pick<Sessions, "disconnect">,
  user: string,
  metrics?: Metrics,
): number {
  const closed = sessions.disconnect(user, DISCONNECT_CODE, DISCONNECT_REASON);
  if (metrics) metrics.userDisconnects += closed;
  return closed;
}

/** Options of {@linkcode createDisconnectHandler}. */
export interface DisconnectOptions {
  /** The connections of every user on this instance. */
  sessions: Pick<Sessions, "disconnect">;
  /** The API key; empty means loopback peers that are not browsers only. */
  token: string;
  /**
   * Asks every other instance to disconnect `user` (Redis mode); resolves with the number of
   * instances that received it. Rejects with `HubUnavailableError` while Redis is away.
   */
  broadcast?: (user: string) => Promise<number>;
  /** Where events are logged. */
  logger: Logger;
  /** Where events are counted. */
  metrics: Metrics;
}

/** Creates the handler of `POST /disconnect`. */
export function createDisconnectHandler(options: DisconnectOptions) {
  const key = new ApiKey(options.token, "disconnect");
  const { logger, metrics } = options;

  return async (request: Request, peer: string): Promise<Response> => {
    const user = new URL(request.url).searchParams.get("user") ?? "";
    // The body means nothing here: it is dropped, never read.
    await request.body?.cancel().catch(() => {});
    let disconnected = 0;
    try {
      if (request.method !== "POST") {
        throw new ApiError(405, "Use POST to disconnect a user.", { allow: "POST" });
      }
      if (!await key.matches(bearerToken(request))) {
        key.refuseWithoutCredential(request, peer, "disconnect users");
      }
      if (user === "" || user.length > MAX_USER_CHARS) {
        throw new ApiError(400, `Missing or too long ?user=: the user id (sub), 1-256 characters.`);
      }
      // Local connections first, synchronously: the answer counts them whatever Redis does.
      disconnected = disconnectUser(options.sessions, user, metrics);
      const broadcast = options.broadcast;
      const instances = broadcast
        ? await tellOthers(() => broadcast(user), { disconnected }, "were closed")
        : undefined;
      logger.info("user.disconnected", { user: user.slice(0, 80), disconnected, instances });
      return jsonResponse(
        instances === undefined ? { disconnected } : { disconnected, instances },
        200,
      );
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      metrics.disconnectsRejected.inc(err.status);
      logger.warn("disconnect.rejected", {
        peer,
        user: user.slice(0, 80),
        status: err.status,
        reason: err.message,
      });
      return jsonResponse({ error: err.message, ...err.fields }, err.status, err.headers);
    }
  };
}

/** The notice a connection gets when `POST /unsubscribe` takes it out of a channel. */
export function unsubscribedNotice(channel: string): string {
  return JSON.stringify({ notice: "unsubscribed", channel, reason: "unsubscribed by server" });
}

/**
 * Takes every local connection of `user` (WebSocket or event stream) out of `channel`, each
 * told with the `unsubscribed` notice (a WebSocket message, or an `event: notice`); returns how many were in it. The endpoint calls it, and so does the Redis control
 * channel for requests made on another instance.
 */
export function unsubscribeUser<P extends Subscriber & SessionPeer>(
  sessions: Pick<Sessions<P>, "of">,
  hub: Pick<ChannelHub, "unsubscribe">,
  user: string,
  channel: string,
  metrics?: Metrics,
): number {
  let left = 0;
  for (const peer of sessions.of(user)) {
    if (!hub.unsubscribe(peer, channel)) continue;
    peer.sendText(unsubscribedNotice(channel));
    left++;
  }
  if (metrics) metrics.userUnsubscribes += left;
  return left;
}

/** Options of {@linkcode createUnsubscribeHandler}. */
export interface UnsubscribeOptions {
  /** Takes the user's local connections out of the channel; returns how many left. */
  unsubscribe: (user: string, channel: string) => number;
  /** The API key; empty means loopback peers that are not browsers only. */
  token: string;
  /** Asks every other instance to do the same (Redis mode); resolves with instances reached. */
  broadcast?: (user: string, channel: string) => Promise<number>;
  /** Where events are logged. */
  logger: Logger;
  /** Where refusals are counted (`push_management_rejected_total`). */
  metrics?: Metrics;
}

/** Creates the handler of `POST /unsubscribe?user=U&channel=C`. */
export function createUnsubscribeHandler(options: UnsubscribeOptions) {
  const key = new ApiKey(options.token, "unsubscribe");
  const { logger } = options;

  return async (request: Request, peer: string): Promise<Response> => {
    const params = new URL(request.url).searchParams;
    const user = params.get("user") ?? "";
    const channel = params.get("channel") ?? "";
    await request.body?.cancel().catch(() => {});
    try {
      if (request.method !== "POST") {
        throw new ApiError(405, "Use POST to unsubscribe a user.", { allow: "POST" });
      }
      if (!await key.matches(bearerToken(request))) {
        key.refuseWithoutCredential(request, peer, "unsubscribe users");
      }
      if (user === "" || user.length > MAX_USER_CHARS) {
        throw new ApiError(400, `Missing or too long ?user=: the user id (sub), 1-256 characters.`);
      }
      if (!isValidChannelName(channel)) {
        throw new ApiError(400, "Invalid or missing ?channel=: use 1-64 of A-Z a-z 0-9 _ - .");
      }
      const unsubscribed = options.unsubscribe(user, channel);
      const broadcast = options.broadcast;
      const instances = broadcast
        ? await tellOthers(() => broadcast(user, channel), { unsubscribed }, "left")
        : undefined;
      logger.info("user.unsubscribed", { user: user.slice(0, 80), channel, unsubscribed });
      return jsonResponse(
        instances === undefined ? { unsubscribed } : { unsubscribed, instances },
        200,
      );
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      options.metrics?.managementRejected.inc(err.status);
      logger.warn("unsubscribe.rejected", {
        peer,
        user: user.slice(0, 80),
        status: err.status,
        reason: err.message,
      });
      return jsonResponse({ error: err.message, ...err.fields }, err.status, err.headers);
    }
  };
}

/**
 * Hands a request to the other instances through Redis and resolves with how many got it; when
 * Redis is down, a 503 that still reports what this instance did (`local`), so a retry is safe.
 */
async function tellOthers(
  send: () => Promise<number>,
  local: Record<string, number>,
  what: string,
): Promise<number> {
  try {
    return await send();
  } catch (err) {
    if (!(err instanceof HubUnavailableError)) throw err;
    throw new ApiError(
      503,
      `Redis is unavailable: only this instance's connections of the user ${what}. Retry shortly.`,
      { "retry-after": "1" },
      local,
    );
  }
}
