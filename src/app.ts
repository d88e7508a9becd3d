/**
 * Wires the WebSocket server, its endpoints and the page server from a {@linkcode Config}.
 * `main.ts` calls it for the real process; tests call it to run the whole server in-process.
 *
 * @module
 */
import { type Config, ConfigError } from "./config.ts";
import type { Logger } from "./log.ts";
import { Metrics } from "./metrics.ts";
import { startHttpServer } from "./http/http_server.ts";
import { SseEndpoint, type SseStream } from "./http/sse.ts";
import { bindWebSocket, WebSocketServer } from "./net/listener.ts";
import { headBuffers, readBuffers } from "./net/read_buffers.ts";
import { echoHandler } from "./push/echo_handler.ts";
import type { ChannelHub } from "./push/channel_hub.ts";
import { Hub } from "./push/hub.ts";
import { Backlog } from "./net/outbox/backlog.ts";
import { RedisBroker } from "./push/redis_broker.ts";
import { RedisIdempotencyStore } from "./http/idempotency_redis.ts";
import { MemoryBroker } from "./push/memory_broker.ts";
import { parseRedisUrl } from "./redis/url.ts";
import { createPushHandler } from "./push/push_handler.ts";
import { joinSessions, Sessions } from "./push/sessions.ts";
import { Presence } from "./push/presence.ts";
import { RedisPresence } from "./push/redis_presence.ts";
import { ChannelPatterns } from "./push/channel_patterns.ts";
import { disconnectUser, unsubscribeUser } from "./http/management_api.ts";
import { hostPolicy, isLoopbackHost } from "./protocol/handshake.ts";
import type { Peer } from "./net/peer.ts";
import type { Authenticator } from "./push/auth.ts";
import { authFromConfig } from "./push/auth_config.ts";

/** A running push server. */
export interface App {
  /** The WebSocket server's bound address. */
  wsAddr: Deno.NetAddr;
  /** The page server's bound address. */
  httpAddr: Deno.NetAddr;
  /** The WebSocket server (its clients, for tests and metrics). */
  ws: WebSocketServer;
  /** The channel engine: in-process, or Redis with `--redis`. */
  hub: ChannelHub;
  /** The process's counters. */
  metrics: Metrics;
  /** Verifies tokens with the configured keys; null when none is configured. */
  auth: Authenticator | null;
  /**
   * The connections of `/` by user (`hub.userOf`: a token's `sub`, or `anon:<client id>`, with
   * `@<instance>` under Redis).
   */
  sessions: Sessions<Peer>;
  /**
   * Stops both servers: clients get close 1001 "going away" and `drainMs` to answer.
   */
  shutdown(drainMs?: number): Promise<void>;
}

/**
 * Starts the push server described by `config`. Throws `ConfigError` (exit code 2) when the
 * authentication cannot be set up: a bad key, an unreadable key file, an unreachable JWKS.
 */
export async function startApp(config: Config, logger: Logger): Promise<App> {
  const metrics = new Metrics();
  // First: a bad key or an unreachable JWKS stops the server before it binds anything.
  const clientAuth = await authFromConfig(config, { logger });
  const sessions = new Sessions<Peer>();
  const streams = new Sessions<SseStream>();
  // Every connection of a user, WebSocket or event stream: what POST /disconnect and /unsubscribe
  // act on, here and through push:control for the other instances.
  const users = joinSessions<Peer | SseStream>(sessions, streams);
  // Built once both ports are bound; publishes that arrive before count no clients.
  let ws: WebSocketServer | undefined;
  const backlog: Backlog | undefined = config.maxBacklogBytes > 0
    ? new Backlog(config.maxBacklogBytes, undefined, undefined, () => ws?.clients.size ?? 0)
    : undefined;
  const tls = config.tlsCert
    ? { cert: await Deno.readTextFile(config.tlsCert), key: await Deno.readTextFile(config.tlsKey) }
    : undefined;
  let broadcastDisconnect: ((user: string) => Promise<number>) | undefined;
  let broadcastUnsubscribe: ((user: string, channel: string) => Promise<number>) | undefined;
  let hub: ChannelHub;
  const presence = presenceFromConfig(config, metrics);
  let idempotencyStore: RedisIdempotencyStore | undefined;
  if (config.redis) {
    const broker = new RedisBroker({
      redis: parseRedisUrl(config.redis),
      historySize: config.history,
      historyTtl: config.historyTtl,
      logger,
      // POST /disconnect on another instance: close this one's connections of the user.
      // POST /unsubscribe there: take this one's connections of the user out of the channel.
      // A presence join or leave, published by the presence script of any instance (this one's
      // included, so every instance hears them in Redis's order): tell this one's subscribers.
      onControl: (m) =>
        "disconnect" in m
          ? disconnectUser(users, m.disconnect, metrics)
          : "presence" in m
          ? presence?.notify({
            notice: m.presence,
            channel: m.channel,
            user: m.user,
            info: m.info,
          })
          : unsubscribeUser(users, hub, m.unsubscribe, m.channel, metrics),
    });
    // Presence lives in Redis too, each instance's entries expiring unless refreshed.
    presence?.share(new RedisPresence({ link: broker, presence, logger }));
    broadcastDisconnect = (user) => broker.broadcastControl({ disconnect: user });
    // Idempotency-Key answers live in Redis, so a retry on another instance replays them.
    if (config.idempotencyWindow > 0) {
      idempotencyStore = new RedisIdempotencyStore(
        broker,
        config.idempotencyWindow,
        metrics,
        logger,
      );
    }
    broadcastUnsubscribe = (user, channel) =>
      broker.broadcastControl({ unsubscribe: user, channel });
    hub = new Hub(broker, logger, presence);
    // Not awaited: with Redis down the server still starts, serves its clients and reports
    // "degraded"; the broker connects (and reconnects) by itself.
    broker.start();
  } else {
    hub = new Hub(
      new MemoryBroker({
        historySize: config.history,
        historyBytes: config.historyBytes,
        historyTtl: config.historyTtl,
      }),
      undefined,
      presence,
    );
  }
  // The names both servers answer to (DNS rebinding): the bound address's, --public-hosts, and
  // the host the page is told to connect to.
  const publicHosts = [...config.publicHosts];
  if (URL.canParse(config.publicWsUrl)) publicHosts.push(new URL(config.publicWsUrl).host);
  const allowedHosts = hostPolicy(config.hostname, publicHosts);
  warnAboutExposure(config, logger);
  // Both ports are bound before either server is built, so each knows both addresses.
  // Server-Sent Events: the same token, channel and client rules as the WebSocket's `/`.
  const sse = new SseEndpoint({
    hub,
    auth: clientAuth.auth ?? undefined,
    anonymous: clientAuth.anonymous,
    publicChannels: clientAuth.publicChannels,
    maxClients: config.maxClients,
    otherClients: () => ws?.clients.size ?? 0,
    maxQueueBytes: config.maxQueueBytes,
    maxSubscriptions: config.maxSubscriptions,
    pingInterval: config.pingInterval,
    sessions: streams,
    logger,
    metrics,
  });
  const wsListener = bindWebSocket({ hostname: config.hostname, port: config.wsPort, tls });
  const wsAddr = wsListener.addr as Deno.NetAddr;
  let http;
  try {
    http = await startHttpServer({
      hostname: config.hostname,
      port: config.httpPort,
      wsPort: wsAddr.port,
      publicWsUrl: config.publicWsUrl,
      backlog,
      tls,
      demo: config.demo,
      hub,
      view: hub instanceof Hub ? hub : undefined,
      publishToken: config.publishToken,
      authenticator: clientAuth.auth ?? undefined,
      sessions: users,
      broadcastDisconnect,
      unsubscribeUser: (user: string, channel: string) =>
        unsubscribeUser(users, hub, user, channel, metrics),
      broadcastUnsubscribe,
      maxMessageBytes: config.maxMessageBytes,
      idempotencyWindow: config.idempotencyWindow,
      idempotencyStore,
      logger,
      metrics,
      allowedHosts,
      sse,
    });
  } catch (err) {
    wsListener.close();
    throw err;
  }
  const wsServer = ws = new WebSocketServer({
    listener: wsListener,
    hostname: config.hostname,
    // The config is the limits object: passed through, not copied field by field.
    limits: config,
    backlog,
    allowedOrigins: config.allowedOrigins.includes("*") ? "*" : config.allowedOrigins,
    pageOrigin: { port: http.addr.port, secure: tls !== undefined },
    allowedHosts,
    routes: {
      "/": createPushHandler({
        demo: config.demo,
        demoInterval: config.demoInterval,
        hub,
        maxSubscriptions: config.maxSubscriptions,
        // On / only: /echo is the conformance peer, and those tools flood it by design.
        maxClientRate: config.maxClientRate,
        logger,
        metrics,
        ...clientAuth,
        sessions,
      }),
      "/echo": echoHandler,
    },
    logger,
    metrics,
    otherClients: () => sse.size,
  });
  wsServer.start();
  metrics.setGauges(() => {
    const stats = hub.stats();
    let queuedBytes = 0;
    for (const c of wsServer.clients) queuedBytes += c.queuedBytes;
    queuedBytes += sse.queuedBytes;
    return {
      connections: wsServer.clients.size,
      channels: stats.channels,
      activeChannels: stats.active,
      historyMessages: stats.historyMessages,
      historyBytes: stats.historyBytes,
      queuedBytes,
      readBufferBytes: readBuffers.bytes + headBuffers.bytes,
      presenceMembers: presence?.table.members ?? 0,
    };
  });
  return {
    wsAddr,
    httpAddr: http.addr,
    ws: wsServer,
    hub,
    metrics,
    auth: clientAuth.auth,
    sessions,
    async shutdown(drainMs = 0) {
      backlog?.releaseAll();
      // The page server outlives the drain, answering /readyz 503, so a load balancer learns
      // to send new clients elsewhere while the old ones are still saying goodbye.
      http.drain();
      await wsServer.shutdown(undefined, undefined, drainMs);
      await http.shutdown();
      await hub.close();
    },
  };
}

/** The presence of `--presence`'s channels; undefined without any. Exit 2 on a bad pattern. */
function presenceFromConfig(config: Config, metrics: Metrics): Presence | undefined {
  let patterns: ChannelPatterns;
  try {
    patterns = ChannelPatterns.parse(config.presence);
  } catch (err) {
    throw new ConfigError(`Invalid --presence: ${(err as Error).message}.`);
  }
  if (patterns.empty) return undefined;
  return new Presence({ patterns, maxMembers: config.maxPresence, metrics });
}

/** Start-up warnings for a server reachable from other machines without the protection it needs. */
function warnAboutExposure(config: Config, logger: Logger): void {
  const wildcard = config.hostname === "0.0.0.0" || config.hostname === "::";
  const loopback = isLoopbackHost(config.hostname.replace(/^\[(.*)\]$/, "$1"));
  if (!loopback && !config.publishToken) {
    logger.warn("publish.unprotected", {
      hostname: config.hostname,
      reason: "bound beyond loopback without --publish-token: anyone who reaches the HTTP port " +
        "can publish",
    });
  } else if (!config.publishToken && (config.publicHosts.length > 0 || config.publicWsUrl)) {
    // Public names on a loopback bind mean a proxy on this machine: its clients look like
    // loopback, so without a token anyone it forwards /publish for could publish.
    logger.warn("publish.unprotected", {
      hostname: config.hostname,
      reason: "public names without --publish-token: a proxy on this machine that forwards " +
        "/publish makes every client look like loopback",
    });
  }
  if (wildcard && config.publicHosts.length === 0 && !config.publicWsUrl) {
    logger.warn("hosts.addresses_only", {
      hostname: config.hostname,
      reason: "bound to all interfaces: only IP addresses and localhost are accepted in Host; " +
        "list the names clients use in --public-hosts",
    });
  }
  // An entry like "https://push.example" is no host name: say so instead of answering 421.
  const ignored = config.publicHosts.filter((h) => hostPolicy("0.0.0.0", [h]).names.size === 0);
  if (ignored.length > 0) {
    logger.warn("hosts.ignored", {
      reason: "--public-hosts entries that are not host names are ignored",
      entries: ignored.join(","),
    });
  }
}
