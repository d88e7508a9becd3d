/**
 * The push endpoint (`/`): every client gets its own push loop, the demo feed unless it opts out,
 * and channel subscriptions.
 *
 * Text commands from the client (the first word decides; anything else is free text):
 * - `quit` — close with 1000;
 * - `subscribe NAME [EPOCH:ID]` — join a channel, resuming after EPOCH:ID when given;
 * - `unsubscribe NAME` — leave a channel;
 * - `auth TOKEN` — with a key configured: a newer token for the same user (`client_auth.ts`);
 * - anything else is acknowledged with "Server received: …" (and logged at debug level, cut
 *   short: at info a client could make the server log as fast as it sends).
 * A malformed command gets a JSON `{"error": …}` message, never a disconnect. Every message
 * counts toward `maxClientRate`; beyond it the client is closed with 1008 "rate limit".
 *
 * @module
 */
import { CloseCode } from "../protocol/close.ts";
import type { Peer, PeerHandler } from "../net/peer.ts";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import { clockMs } from "../clock.ts";
import { BURST_FACTOR, takeToken } from "../net/rate_limit.ts";
import { runDemoFeed } from "./demo_feed.ts";
import { type ChannelHub, isValidChannelName, parsePosition } from "./channel_hub.ts";
import type { Position } from "./broker.ts";
import { ClientAuth } from "./client_auth.ts";
import type { Authenticator } from "./auth.ts";
import { ChannelPatterns } from "./channel_patterns.ts";
import type { Sessions } from "./sessions.ts";

/** Options of {@linkcode createPushHandler}. */
export interface PushHandlerOptions {
  /** Whether clients get the demo feed (a client opts out with `?demo=false`). */
  demo: boolean;
  /** The demo feed's wait range in ms. */
  demoInterval: readonly [number, number];
  /** The channel engine. */
  hub: ChannelHub;
  /** Channels one client may be subscribed to at once. */
  maxSubscriptions: number;
  /**
   * Messages per second one client may send (a token bucket with a burst of twice that); beyond
   * it the client is closed with 1008 "rate limit". 0 = unlimited.
   */
  maxClientRate: number;
  /** Where events are logged. */
  logger: Logger;
  /** Where rate-limited clients and refused tokens are counted. */
  metrics: Metrics;
  /**
   * Verifies tokens: with it every client needs one (401 otherwise) and may join the channels
   * its token grants and `publicChannels`. Without it (no key configured) every channel is
   * public, as before tokens existed.
   */
  auth?: Authenticator | null;
  /** With `auth`: clients without a token may connect, to public channels only. */
  anonymous?: boolean;
  /** With `auth`: the channels every client may join. */
  publicChannels?: ChannelPatterns;
  /**
   * With `auth`: where every connection is registered under its user (`hub.userOf`: its token's
   * `sub`, or `anon:<client id>` without one, `anon:<client id>@<instance>` with Redis).
   */
  sessions?: Sessions<Peer>;
}

/** The longest client text echoed into a log line. */
const PREVIEW_CHARS = 200;

function sendError(c: Peer, error: string): void {
  c.sendText(JSON.stringify({ error }));
}

/** Creates the handler of the push endpoint. */
export function createPushHandler(options: PushHandlerOptions): PeerHandler {
  const { hub, logger, maxClientRate } = options;
  const clientAuth = options.auth
    ? new ClientAuth({
      auth: options.auth,
      anonymous: options.anonymous ?? false,
      publicChannels: options.publicChannels ?? ChannelPatterns.NONE,
      hub,
      logger,
      metrics: options.metrics,
    })
    : null;
  // Users exist only when tokens are verified; without a key nobody is anyone, and an entry per
  // anonymous connection would be memory on every idle client for nothing.
  const sessions = clientAuth ? options.sessions : undefined;

  function subscribe(c: Peer, channel: string, since: Position | undefined): void {
    if (!isValidChannelName(channel)) {
      return sendError(
        c,
        `Invalid channel name "${channel.slice(0, 80)}": use 1-64 of A-Z a-z 0-9 _ - .`,
      );
    }
    if (clientAuth !== null && !clientAuth.mayJoin(c, channel)) {
      // Named, so a client that asked for several at once knows which one (the others proceed).
      c.sendText(JSON.stringify({
        error: `Not allowed to subscribe to ${channel}: neither the token nor ` +
          "--public-channels grants it.",
        channel,
      }));
      return;
    }
    const mine = hub.subscriptionsOf(c);
    if (mine.size >= options.maxSubscriptions && !mine.has(channel)) {
      return sendError(
        c,
        `Too many subscriptions: at most ${options.maxSubscriptions} channels per client.`,
      );
    }
    if (mine.has(channel)) return sendError(c, `Already subscribed to ${channel}.`);
    // False here: refused for presence (--max-presence), and the hub told the client why.
    if (!hub.subscribe(c, channel, since)) return;
    if (logger.enabled("info")) { // one per client at connect: no garbage when not logged
      logger.info("client.subscribe", {
        client: c.id,
        channel,
        since: since && `${since.epoch}:${since.id}`,
      });
    }
  }

  function command(c: Peer, text: string): boolean {
    const words = text.split(" ");
    switch (words[0]) {
      case "quit":
        if (words.length > 1) return false;
        logger.info("client.quit", { client: c.id });
        c.close(CloseCode.Normal, "quit");
        return true;
      case "subscribe": {
        if (words.length < 2 || words.length > 3) {
          sendError(c, "Usage: subscribe NAME [EPOCH:ID]");
          return true;
        }
        let since: Position | undefined;
        if (words.length === 3) {
          const parsed = parsePosition(words[2]);
          if (!parsed) {
            sendError(c, `Invalid position "${words[2].slice(0, 80)}": expected EPOCH:ID.`);
            return true;
          }
          since = parsed;
        }
        subscribe(c, words[1], since);
        return true;
      }
      case "unsubscribe":
        if (words.length !== 2) {
          sendError(c, "Usage: unsubscribe NAME");
        } else if (hub.unsubscribe(c, words[1])) {
          c.sendText(JSON.stringify({ notice: "unsubscribed", channel: words[1] }));
          logger.info("client.unsubscribe", { client: c.id, channel: words[1] });
        } else {
          sendError(c, `Not subscribed to ${words[1].slice(0, 80)}.`);
        }
        return true;
      case "auth":
        // Without a key there are no tokens: "auth …" stays free text, as before.
        if (clientAuth === null) return false;
        if (words.length !== 2) {
          sendError(c, "Usage: auth TOKEN");
        } else {
          clientAuth.refresh(c, words[1]).catch((err) => {
            logger.error("auth.refresh_failed", { client: c.id, error: String(err) });
          });
        }
        return true;
      default:
        return false;
    }
  }

  const handler: PeerHandler = {
    onOpen(c) {
      sessions?.add(hub.userOf(c), c);
      clientAuth?.arm(c);
      const query = c.request.query;
      const since = new Map<string, Position>();
      for (const item of (query.get("since") ?? "").split(",").filter(Boolean)) {
        const colon = item.indexOf(":");
        const position = colon > 0 ? parsePosition(item.slice(colon + 1)) : null;
        if (position) since.set(item.slice(0, colon), position);
        else sendError(c, `Invalid since "${item.slice(0, 80)}": expected NAME:EPOCH:ID.`);
      }
      for (const channel of (query.get("channels") ?? "").split(",").filter(Boolean)) {
        subscribe(c, channel, since.get(channel));
      }
      const optOut = /^(0|false|no|off)$/i.test(query.get("demo") ?? "");
      if (options.demo && !optOut) {
        runDemoFeed(c, c.signal, options.demoInterval).catch((err) => {
          logger.error("demo.failed", { client: c.id, error: String(err) });
        });
      }
    },
    onClosing(c) {
      // Leave every channel as soon as the connection starts closing, not when it has closed.
      hub.unsubscribeAll(c);
      sessions?.remove(hub.userOf(c), c);
    },
    onDeadline(c, now) {
      clientAuth?.deadline(c, now);
    },
    onMessage(c, message) {
      // Every message costs the server a reply, and some a log line or a subscription: a client
      // must not make it work as fast as the client can send.
      if (maxClientRate > 0 && !takeToken(c, maxClientRate, clockMs())) {
        options.metrics.rateLimited++;
        logger.warn("client.rate_limited", {
          client: c.id,
          max_client_rate: maxClientRate,
          burst: BURST_FACTOR * maxClientRate,
        });
        // The messages within the rate keep their replies; the rest are read but not answered.
        c.close(CloseCode.PolicyViolation, "rate limit");
        return;
      }
      if (message.type === "binary") {
        if (logger.enabled("debug")) {
          logger.debug("client.message", { client: c.id, binary_bytes: message.data.length });
        }
        c.sendText(`Server received ${message.data.length} bytes of binary data`);
        return;
      }
      if (command(c, message.data)) return;
      if (logger.enabled("debug")) {
        logger.debug("client.message", {
          client: c.id,
          // Free text only without a key, but a client library may still send its token.
          text: message.data.startsWith("auth ")
            ? "auth ***"
            : message.data.slice(0, PREVIEW_CHARS),
          text_chars: message.data.length,
        });
      }
      c.sendText(`Server received: ${message.data}`);
    },
  };
  if (clientAuth !== null) handler.authorize = (request) => clientAuth.authorize(request);
  return handler;
}
