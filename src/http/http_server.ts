/**
 * The HTTP side (`Deno.serve` on its own port): the client page, `/config.json` (where the page
 * learns the WebSocket URL), `GET /events` (Server-Sent Events), the publish API, `POST /disconnect`, `/metrics`, `/healthz` (liveness) and `/readyz`
 * (readiness). Every request must name the server in `Host` (421 otherwise).
 *
 * @module
 */
import { jsonResponse } from "./api_key.ts";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import type { Backlog } from "../net/outbox/backlog.ts";
import type { ChannelHub } from "../push/channel_hub.ts";
import { type HostPolicy, hostPolicy, isHostAllowed } from "../protocol/handshake.ts";
import type { Authenticator } from "../push/auth.ts";
import type { Sessions } from "../push/sessions.ts";
import { createDisconnectHandler, createUnsubscribeHandler } from "./management_api.ts";
import { type ChannelsView, createChannelsApi } from "./channels_api.ts";
import { createPublishHandler } from "./publish_api.ts";
import type { IdempotencyClaims } from "./idempotency.ts";
import { loadStaticFiles } from "./static_files.ts";
import type { SseEndpoint } from "./sse.ts";

/** Options of {@linkcode startHttpServer}. */
export interface HttpServerOptions {
  /** Address to bind. */
  hostname: string;
  /** Port to bind; 0 picks a free one. */
  port: number;
  /** The WebSocket server's port, announced to the page in `/config.json`. */
  wsPort: number;
  /** The WebSocket URL to announce instead of the derived one (behind a proxy). */
  publicWsUrl?: string;
  /** PEM certificate and key: serve https:// (and announce wss://). */
  tls?: { cert: string; key: string };
  /** Whether the demo feed is on (shown by the page). */
  demo: boolean;
  /** The channel engine the publish API publishes to. */
  hub: ChannelHub;
  /** What `GET /channels`, `/history` and `/presence` read (the hub); absent, they answer 404. */
  view?: ChannelsView;
  /** Bearer token for the publish API; empty = loopback only. */
  publishToken: string;
  /** Verifies JWTs: a token's `publish` claim lets it publish to those channels. */
  authenticator?: Authenticator;
  /** The connections of every user, for `POST /disconnect` (without it: 404 there). */
  sessions?: Pick<Sessions, "disconnect">;
  /** Tells the other instances to disconnect a user (Redis mode); resolves with how many heard. */
  broadcastDisconnect?: (user: string) => Promise<number>;
  /** `POST /unsubscribe`: takes a user's local connections out of a channel; absent, 404. */
  unsubscribeUser?: (user: string, channel: string) => number;
  /** Asks every other instance to unsubscribe the user too (Redis mode). */
  broadcastUnsubscribe?: (user: string, channel: string) => Promise<number>;
  /** Largest publish body. */
  maxMessageBytes: number;
  /** How long a publish's `Idempotency-Key` answer is kept (ms); 0 = off. */
  idempotencyWindow?: number;
  /** Where `Idempotency-Key`s live (Redis mode); default in process. */
  idempotencyStore?: IdempotencyClaims;
  /** Where events are logged. */
  logger: Logger;
  /** Where events are counted (served at `/metrics`). */
  metrics: Metrics;
  /** The outgoing backlog the publish API waits on. */
  backlog?: Backlog;
  /** The Host names accepted (421 otherwise); default: those of `hostname` alone. */
  allowedHosts?: HostPolicy;
  /** `GET /events` (Server-Sent Events); absent, 404 there. */
  sse?: SseEndpoint;
}

/** The running page server. */
export interface HttpServer {
  /** The bound address. */
  addr: Deno.NetAddr;
  /**
   * Marks the server as draining: `/readyz` answers 503 from now on while everything else is
   * still served, so a load balancer stops sending new clients during the shutdown's drain.
   */
  drain(): void;
  /** Stops the server and waits for in-flight requests. */
  shutdown(): Promise<void>;
}

/**
 * The WebSocket URL for a page fetched with `host` (the request's Host header): same host name
 * the browser used, the WebSocket port. So the page works however it was reached.
 */
export function webSocketUrl(
  host: string | null,
  fallbackHost: string,
  wsPort: number,
  secure = false,
): string {
  let hostname = fallbackHost;
  if (host) {
    try {
      hostname = new URL(`http://${host}`).hostname;
    } catch {
      // A malformed Host header: use the bound address.
    }
  }
  if (hostname.includes(":") && !hostname.startsWith("[")) hostname = `[${hostname}]`;
  return `${secure ? "wss" : "ws"}://${hostname}:${wsPort}/`;
}

/** Starts `Deno.serve` with the page, config and health routes. */
export async function startHttpServer(options: HttpServerOptions): Promise<HttpServer> {
  const files = await loadStaticFiles();
  const { logger } = options;
  const publish = createPublishHandler({
    hub: options.hub,
    token: options.publishToken,
    authenticator: options.authenticator,
    maxMessageBytes: options.maxMessageBytes,
    idempotencyWindow: options.idempotencyWindow ?? 0,
    idempotencyStore: options.idempotencyStore,
    logger,
    metrics: options.metrics,
    backlog: options.backlog,
  });
  const disconnect = options.sessions && createDisconnectHandler({
    sessions: options.sessions,
    token: options.publishToken,
    broadcast: options.broadcastDisconnect,
    logger,
    metrics: options.metrics,
  });
  const management = options.view &&
    createChannelsApi({
      view: options.view,
      token: options.publishToken,
      logger,
      metrics: options.metrics,
    });
  const unsubscribe = options.unsubscribeUser && createUnsubscribeHandler({
    unsubscribe: options.unsubscribeUser,
    token: options.publishToken,
    broadcast: options.broadcastUnsubscribe,
    logger,
    metrics: options.metrics,
  });
  const hosts = options.allowedHosts ?? hostPolicy(options.hostname);
  let draining = false;
  let boundPort = 0; // known once listening, before the first request
  const handler = (request: Request, info: Deno.ServeHandlerInfo): Response | Promise<Response> => {
    // DNS rebinding: a page on another site reaches us under its own name. Checked before
    // anything else, so such a page can neither read (/config.json, /metrics) nor publish.
    const host = requestHost(request, boundPort);
    if (host !== null && !isHostAllowed(host, hosts)) {
      options.metrics.httpRejected.inc(421);
      logger.warn("http.rejected", {
        remote: (info.remoteAddr as Deno.NetAddr).hostname,
        status: 421,
        host: host.slice(0, 200),
      });
      return jsonResponse(
        { error: `Host ${host.slice(0, 200)} is not a name of this server.` },
        421,
      );
    }
    const url = new URL(request.url);
    if (url.pathname === "/events" && options.sse) {
      return options.sse.handle(request, url, (info.remoteAddr as Deno.NetAddr).hostname);
    }
    if (url.pathname === "/publish") {
      return publish(request, (info.remoteAddr as Deno.NetAddr).hostname);
    }
    if (url.pathname === "/disconnect" && disconnect) {
      return disconnect(request, (info.remoteAddr as Deno.NetAddr).hostname);
    }
    if (url.pathname === "/unsubscribe" && unsubscribe) {
      return unsubscribe(request, (info.remoteAddr as Deno.NetAddr).hostname);
    }
    if (url.pathname === "/channels" && management) {
      return management.channels(request, (info.remoteAddr as Deno.NetAddr).hostname);
    }
    if (url.pathname === "/presence" && management) {
      return management.presence(request, (info.remoteAddr as Deno.NetAddr).hostname);
    }
    if (url.pathname === "/history" && management) {
      return management.history(request, (info.remoteAddr as Deno.NetAddr).hostname);
    }
    if (request.method !== "GET" && request.method !== "HEAD") {
      return jsonResponse({ error: `Method ${request.method} is not allowed here.` }, 405);
    }
    if (url.pathname === "/config.json") {
      return jsonResponse({
        wsUrl: options.publicWsUrl || webSocketUrl(
          host, // HTTP/2 has no Host header: its :authority is in the URL
          options.hostname,
          options.wsPort,
          options.tls !== undefined,
        ),
        demo: options.demo,
      });
    }
    // Liveness: 200 while the process serves; "degraded" says what is wrong (Redis down).
    if (url.pathname === "/healthz") return jsonResponse(options.hub.health());
    // Readiness: whether a load balancer should send new clients here.
    if (url.pathname === "/readyz") {
      if (draining) {
        return jsonResponse({ status: "draining", reason: "The server is shutting down." }, 503);
      }
      const health = options.hub.health();
      if (health.status !== "ok") {
        return jsonResponse({ status: "unready", reason: health.reason }, 503);
      }
      return jsonResponse({ status: "ready" });
    }
    if (url.pathname === "/metrics") {
      return new Response(options.metrics.render(), {
        headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
      });
    }
    const file = files.get(url.pathname);
    if (file) {
      return new Response(file.body, {
        headers: { "content-type": file.type, "cache-control": "no-cache" },
      });
    }
    return jsonResponse({ error: `Nothing at ${url.pathname}.` }, 404);
  };
  const server = Deno.serve({
    hostname: options.hostname,
    port: options.port,
    ...options.tls,
    onListen: () => {},
  }, handler);
  const addr = server.addr as Deno.NetAddr;
  boundPort = addr.port;
  logger.info("http.listening", { address: `${addr.hostname}:${addr.port}` });
  return {
    addr,
    drain: () => {
      draining = true;
    },
    shutdown: () => {
      // Open event streams never end by themselves, and Deno.serve waits for every response.
      options.sse?.closeAll();
      return server.shutdown();
    },
  };
}

/**
 * The `Host` a request names: its header, else the authority Deno put in the URL (HTTP/2's
 * `:authority`); null for an HTTP/1.0 request without Host, which a browser never sends and
 * which therefore cannot come from a rebound name.
 */
export function requestHost(request: Request, port: number): string | null {
  const header = request.headers.get("host");
  if (header !== null) return header;
  const url = request.url;
  const start = url.indexOf("//") + 2;
  const end = url.indexOf("/", start);
  const authority = url.slice(start, end < 0 ? undefined : end);
  // Without any Host Deno makes up "localhost:<port>" (our own port); anything else is checked.
  return authority === `localhost:${port}` ? null : authority;
}
