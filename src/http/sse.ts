/**
 * `GET /events?channels=a,b`: Server-Sent Events, the push endpoint for networks and clients
 * where WebSocket is unavailable (README, "Server-Sent Events"). The same token rules, channel
 * rules and limits as `/` on the WebSocket port; each publication is one event whose `data:` is
 * the envelope (the WebSocket frame's payload) and whose `id:` is the client's position in every
 * channel of the stream (`a:EPOCH:5,b:EPOCH:9`), so `Last-Event-ID` resumes like `?since=`.
 *
 * @module
 */
import { jsonResponse } from "./api_key.ts";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import { type Authenticator, type Identity, LEEWAY_MS } from "../push/auth.ts";
import type { ChannelPatterns } from "../push/channel_patterns.ts";
import { type ChannelHub, isValidChannelName } from "../push/channel_hub.ts";
import { TOKEN_EXPIRED } from "../push/client_auth.ts";
import { TokenError } from "../push/jwt.ts";
import { Sessions } from "../push/sessions.ts";
import { GOING_AWAY, parseSinceList, SLOW_CONSUMER, SseStream } from "./sse_stream.ts";

export { closedNotice, framePayload, parseSinceList, SseStream } from "./sse_stream.ts";

/** The reconnect delay browsers are told (`retry:`) at the start of every stream. */
export const RETRY_MS = 1000;

/** Options of {@linkcode SseEndpoint}. */
export interface SseOptions {
  /** The channel engine. */
  hub: ChannelHub;
  /** Verifies tokens; absent, every channel is public and no token is needed. */
  auth?: Authenticator;
  /** `--anonymous`: without a token, public channels only. */
  anonymous: boolean;
  /** `--public-channels`. */
  publicChannels: ChannelPatterns;
  /** `--max-clients`, counted with the WebSocket clients. */
  maxClients: number;
  /** The WebSocket server's client count (the shared side of `--max-clients`). */
  otherClients: () => number;
  /** `--max-queue-bytes`: bytes waiting per stream before it is closed as a slow consumer. */
  maxQueueBytes: number;
  /** `--max-subscriptions`: channels per stream. */
  maxSubscriptions: number;
  /** `--ping-interval` in ms (0 = no comment lines). */
  pingInterval: number;
  /** Where the streams are registered by user (with `auth` only); a new registry if absent. */
  sessions?: Sessions<SseStream>;
  /** Where events are logged. */
  logger: Logger;
  /** Where refusals and slow consumers are counted. */
  metrics: Metrics;
}

const encoder = new TextEncoder();

/** The token of a request: `Authorization: Bearer JWT`, else `?token=JWT`; or null. */
export function requestToken(request: Request, url: URL): string | null {
  const header = request.headers.get("authorization");
  if (header !== null) {
    const m = /^Bearer +(\S+) *$/i.exec(header);
    if (m) return m[1];
  }
  return url.searchParams.get("token") || null;
}

/** The `/events` endpoint and its open streams, with one ping timer for all of them. */
export class SseEndpoint {
  /**
   * The streams of every user (`hub.userOf`: a token's `sub`, or `anon:<stream id>`, with
   * `@<instance>` under Redis), for `POST /disconnect` and `POST /unsubscribe`. Filled only when
   * tokens are verified, as the WebSocket's registry: without a key a stream is nobody's.
   */
  readonly sessions: Sessions<SseStream>;
  readonly #o: SseOptions;
  readonly #streams = new Set<SseStream>();
  #timer: ReturnType<typeof setInterval> | undefined;
  #lastPing = 0;

  /** Applies `options`. */
  constructor(options: SseOptions) {
    this.#o = options;
    this.sessions = options.sessions ?? new Sessions<SseStream>();
  }

  /** Open streams (counted in `--max-clients` with the WebSocket clients). */
  get size(): number {
    return this.#streams.size;
  }

  /** Bytes waiting in every stream (the queued-bytes gauge). */
  get queuedBytes(): number {
    let sum = 0;
    for (const s of this.#streams) sum += s.queuedBytes;
    return sum;
  }

  /** Answers `GET /events`: a stream, or 400/401/403/503 JSON with the reason. */
  async handle(request: Request, url: URL, remote: string): Promise<Response> {
    const o = this.#o;
    const refuse = (status: number, error: string, headers?: Record<string, string>) => {
      o.metrics.sseRejected.inc(status);
      o.logger.warn("sse.rejected", { remote, status, reason: error });
      return jsonResponse({ error }, status, headers);
    };
    if (request.method !== "GET") return refuse(405, "Use GET for /events.");
    const channels = (url.searchParams.get("channels") ?? "").split(",").filter(Boolean);
    if (channels.length === 0) return refuse(400, "Name the channels: /events?channels=a,b.");
    if (channels.length > o.maxSubscriptions) {
      return refuse(400, `At most ${o.maxSubscriptions} channels per stream.`);
    }
    const invalid = channels.find((c) => !isValidChannelName(c));
    if (invalid !== undefined) {
      return refuse(400, `Invalid channel name "${invalid.slice(0, 80)}".`);
    }
    let identity: Identity | null = null;
    if (o.auth) {
      const token = requestToken(request, url);
      if (token === null && !o.anonymous) {
        o.metrics.authFailures.inc("missing");
        return refuse(401, "missing token (missing)", { "WWW-Authenticate": "Bearer" });
      }
      if (token !== null) {
        try {
          identity = await o.auth.verify(token);
        } catch (err) {
          const e = err instanceof TokenError
            ? err
            : { reason: "error", message: "the token could not be verified" };
          o.metrics.authFailures.inc(e.reason);
          return refuse(401, `${e.message} (${e.reason})`, {
            "WWW-Authenticate": 'Bearer error="invalid_token"',
          });
        }
      }
      const denied = channels.find((c) =>
        !o.publicChannels.matches(c) && !(identity?.channels.matches(c) ?? false)
      );
      if (denied !== undefined) return refuse(403, `Not allowed to subscribe to ${denied}.`);
    }
    if (this.#streams.size + o.otherClients() >= o.maxClients) {
      return refuse(503, "The server is full: too many clients. Try again later.");
    }
    // Last-Event-ID (an EventSource reconnecting) wins over ?since= (the first connection's).
    const since = parseSinceList(
      request.headers.get("last-event-id") ?? url.searchParams.get("since") ?? "",
    );
    const stream = new SseStream(o.maxQueueBytes, identity, (s, reason) => this.#closed(s, reason));
    this.#streams.add(stream);
    if (o.auth) this.sessions.add(o.hub.userOf(stream), stream);
    this.#arm();
    o.logger.info("sse.open", { client: stream.id, remote, channels: channels.join(",") });
    stream.write(encoder.encode(`retry: ${RETRY_MS}\n\n`));
    for (const channel of new Set(channels)) {
      const position = since.get(channel);
      // The id line of the first events names the resume point until the channel moves on.
      if (position) stream.positions.set(channel, position);
      o.hub.subscribe(stream, channel, position);
    }
    return new Response(stream.body, {
      headers: {
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-store",
        // nginx buffers responses by default, which would hold events back.
        "x-accel-buffering": "no",
      },
    });
  }

  /**
   * Ends every stream with the `closed` notice 1001 "going away", as the WebSocket clients get
   * (shutdown: `Deno.serve` waits for open responses).
   */
  closeAll(): void {
    for (const s of [...this.#streams]) s.close(GOING_AWAY, "going away");
  }

  #closed(stream: SseStream, reason: string): void {
    this.#streams.delete(stream);
    if (this.#o.auth) this.sessions.remove(this.#o.hub.userOf(stream), stream);
    this.#o.hub.unsubscribeAll(stream);
    if (reason === SLOW_CONSUMER) this.#o.metrics.sseSlowConsumers++;
    this.#o.logger.info("sse.closed", { client: stream.id, reason });
    if (this.#streams.size === 0 && this.#timer !== undefined) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }

  /**
   * One timer for every stream: the ping comment every `--ping-interval`, and the end of streams
   * whose token expired. It ticks at least every second, so a token lapses as promptly as on the
   * WebSocket (`exp` plus the leeway), whatever the ping interval.
   */
  #arm(): void {
    if (this.#timer !== undefined) return;
    const every = this.#o.pingInterval;
    this.#lastPing = Date.now();
    this.#timer = setInterval(() => {
      const now = Date.now();
      const ping = every > 0 && now - this.#lastPing >= every;
      if (ping) this.#lastPing = now;
      for (const s of [...this.#streams]) {
        const exp = s.identity?.expiresAt ?? Infinity;
        if (now > exp + LEEWAY_MS) {
          this.#o.logger.info("sse.token_expired", { client: s.id });
          s.close(TOKEN_EXPIRED, "token expired");
        } else if (ping) s.ping();
      }
    }, every > 0 ? Math.min(every, 1000) : 1000);
  }
}
