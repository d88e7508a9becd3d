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
import { type ChannelHub, isValidChannelName, parsePosition } from "../push/channel_hub.ts";
import type { Position } from "../push/broker.ts";
import type { Subscriber } from "../push/subscriptions.ts";
import { TokenError } from "../push/jwt.ts";

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
  /** Where events are logged. */
  logger: Logger;
  /** Where refusals and slow consumers are counted. */
  metrics: Metrics;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const PING = encoder.encode(": ping\n\n");
const ENVELOPE_HEAD = /^\{"channel":"([A-Za-z0-9_.-]+)","epoch":"([A-Za-z0-9]+)","id":(\d+)/;
/** Process-unique ids for streams, far from the WebSocket connections' (they share the hub). */
let nextId = 2 ** 40;

/** The token of a request: `Authorization: Bearer JWT`, else `?token=JWT`; or null. */
export function requestToken(request: Request, url: URL): string | null {
  const header = request.headers.get("authorization");
  if (header !== null) {
    const m = /^Bearer +(\S+) *$/i.exec(header);
    if (m) return m[1];
  }
  return url.searchParams.get("token") || null;
}

/**
 * Parses a `since` list (`a:EPOCH:5,b:EPOCH:9`, the `?since=` and `Last-Event-ID` form) into
 * positions by channel; malformed items are ignored (that channel starts live).
 */
export function parseSinceList(text: string): Map<string, Position> {
  const since = new Map<string, Position>();
  for (const item of text.split(",")) {
    const colon = item.indexOf(":");
    if (colon <= 0) continue;
    const position = parsePosition(item.slice(colon + 1).trim());
    if (position) since.set(item.slice(0, colon).trim(), position);
  }
  return since;
}

/** The payload of an unmasked server frame (the envelope text's bytes). */
export function framePayload(frame: Uint8Array): Uint8Array {
  const len = frame[1] & 0x7f;
  return frame.subarray(len < 126 ? 2 : len === 126 ? 4 : 10);
}

/**
 * One event stream: a hub {@linkcode Subscriber} whose queue is the response body's
 * `ReadableStream` (byte-length strategy, so `desiredSize` tells the bytes waiting).
 */
export class SseStream implements Subscriber {
  /** A process-unique id. */
  readonly id: number = nextId++;
  /** Bytes that may wait before the stream is closed. */
  readonly maxQueueBytes: number;
  /** The token's identity, null without one. */
  readonly identity: Identity | null;
  /** The response body. */
  readonly body: ReadableStream<Uint8Array>;
  /** Where the client stands in each channel, for `id:`. */
  readonly positions = new Map<string, Position>();
  #controller!: ReadableStreamDefaultController<Uint8Array>;
  #drain: (() => void) | null = null;
  #closed = false;
  readonly #onClose: (stream: SseStream, reason: string) => void;

  /** A stream with `maxQueueBytes` of room; `onClose` runs once when it ends. */
  constructor(
    maxQueueBytes: number,
    identity: Identity | null,
    onClose: (stream: SseStream, reason: string) => void,
  ) {
    this.maxQueueBytes = maxQueueBytes;
    this.identity = identity;
    this.#onClose = onClose;
    this.body = new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.#controller = controller;
      },
      // Called as the reader takes chunks: the paced replay's drain signal.
      pull: () => {
        if (this.#drain !== null && this.queuedBytes <= this.maxQueueBytes / 4) {
          const drain = this.#drain;
          this.#drain = null;
          drain();
        }
      },
      cancel: () => this.#end("client closed"),
    }, new ByteLengthQueuingStrategy({ highWaterMark: Math.max(1, maxQueueBytes) }));
  }

  /** Bytes queued and not yet taken by the response writer. */
  get queuedBytes(): number {
    if (this.#closed) return 0;
    return Math.max(0, this.maxQueueBytes - (this.#controller.desiredSize ?? 0));
  }

  /** Whether the stream has ended. */
  get closed(): boolean {
    return this.#closed;
  }

  /** See {@linkcode Subscriber.onDrain}. */
  onDrain(callback: () => void): void {
    this.#drain = callback;
  }

  /** A publication's frame → one event (`id:` positions, `data:` envelope). */
  sendFrame(frame: Uint8Array): boolean {
    const payload = framePayload(frame);
    const m = ENVELOPE_HEAD.exec(decoder.decode(payload.subarray(0, 160)));
    if (m) this.positions.set(m[1], { epoch: m[2], id: Number(m[3]) });
    const head = encoder.encode(`${this.#idLine()}data: `);
    const event = new Uint8Array(head.length + payload.length + 2);
    event.set(head);
    event.set(payload, head.length);
    event[event.length - 2] = 10;
    event[event.length - 1] = 10;
    return this.write(event);
  }

  /**
   * A notice → `event: notice`. `subscribed` (not recovered) and `lost` move the position to
   * the live end they name, so a reconnect before the next publication misses nothing.
   */
  sendText(text: string): boolean {
    try {
      const n = JSON.parse(text);
      if (
        (n.notice === "lost" || (n.notice === "subscribed" && n.recovered !== true)) &&
        typeof n.channel === "string" && typeof n.epoch === "string" && typeof n.id === "number"
      ) this.positions.set(n.channel, { epoch: n.epoch, id: n.id });
    } catch {
      // Not JSON: sent as it is.
    }
    return this.write(encoder.encode(`event: notice\n${this.#idLine()}data: ${text}\n\n`));
  }

  /** Queues raw event-stream bytes; beyond the limit the stream is closed (slow consumer). */
  write(bytes: Uint8Array): boolean {
    if (this.#closed) return false;
    if (this.queuedBytes + bytes.length > this.maxQueueBytes) {
      this.#end("slow consumer");
      return false;
    }
    this.#controller.enqueue(bytes);
    return true;
  }

  /** The ping comment (nothing when data is already waiting: the proxy sees bytes anyway). */
  ping(): void {
    if (this.queuedBytes === 0) this.write(PING);
  }

  /** Ends the stream, dropping what waits (a reader that stopped never gets it anyway). */
  close(reason: string): void {
    this.#end(reason);
  }

  #idLine(): string {
    if (this.positions.size === 0) return "";
    const parts: string[] = [];
    for (const [channel, p] of this.positions) parts.push(`${channel}:${p.epoch}:${p.id}`);
    return `id: ${parts.join(",")}\n`;
  }

  #end(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#drain = null;
    try {
      // A slow consumer's queue is dropped (an error ends the response at once); any other end
      // lets the reader take what waits, then the stream ends cleanly.
      if (reason === "slow consumer") this.#controller.error(new Error(reason));
      else this.#controller.close();
    } catch {
      // Already cancelled by the client.
    }
    this.#onClose(this, reason);
  }
}

/** The `/events` endpoint and its open streams, with one ping timer for all of them. */
export class SseEndpoint {
  readonly #o: SseOptions;
  readonly #streams = new Set<SseStream>();
  #timer: ReturnType<typeof setInterval> | undefined;

  /** Applies `options`. */
  constructor(options: SseOptions) {
    this.#o = options;
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

  /** Ends every stream (shutdown: `Deno.serve` waits for open responses). */
  closeAll(): void {
    for (const s of [...this.#streams]) s.close("shutdown");
  }

  #closed(stream: SseStream, reason: string): void {
    this.#streams.delete(stream);
    this.#o.hub.unsubscribeAll(stream);
    if (reason === "slow consumer") this.#o.metrics.sseSlowConsumers++;
    this.#o.logger.info("sse.closed", { client: stream.id, reason });
    if (this.#streams.size === 0 && this.#timer !== undefined) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }

  /** One timer for every stream: the ping comment, and the end of streams whose token expired. */
  #arm(): void {
    if (this.#timer !== undefined) return;
    const interval = this.#o.pingInterval > 0 ? this.#o.pingInterval : 1000;
    this.#timer = setInterval(() => {
      const now = Date.now();
      for (const s of [...this.#streams]) {
        const exp = s.identity?.expiresAt ?? Infinity;
        if (now > exp + LEEWAY_MS) s.close("token expired");
        else if (this.#o.pingInterval > 0) s.ping();
      }
    }, interval);
  }
}
