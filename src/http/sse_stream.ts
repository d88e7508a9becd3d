/**
 * One Server-Sent Events stream of `GET /events` (src/http/sse.ts): a hub `Subscriber` whose
 * queue is the response body's `ReadableStream`, turning publication frames and notices into
 * event-stream blocks with the client's position in every channel as `id:`.
 *
 * @module
 */
import type { Identity } from "../push/auth.ts";
import { parsePosition } from "../push/channel_hub.ts";
import type { Position } from "../push/broker.ts";
import type { Subscriber } from "../push/subscriptions.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const PING = encoder.encode(": ping\n\n");
const ENVELOPE_HEAD = /^\{"channel":"([A-Za-z0-9_.-]+)","epoch":"([A-Za-z0-9]+)","id":(\d+)/;
/** Process-unique ids for streams, far from the WebSocket connections' (they share the hub). */
let nextId = 2 ** 40;

/** The close code of a stream that ends normally (mirrors WebSocket's 1000). */
export const NORMAL_CLOSE = 1000;
/** The code of the `closed` notice a stream gets when the server shuts down (WebSocket's 1001). */
export const GOING_AWAY = 1001;

/** Why a stream ended without a `closed` notice: its reader is gone or too slow to get one. */
export const SLOW_CONSUMER = "slow consumer";
const CLIENT_CLOSED = "client closed";

/**
 * The notice a stream gets as its last event when the server ends it, the event-stream form of a
 * WebSocket close frame: the same code and reason (4003 "disconnected by server", 4001 "token
 * expired", 1001 "going away"), so a client can tell a final end from one worth reconnecting.
 */
export function closedNotice(code: number, reason: string): string {
  return JSON.stringify({ notice: "closed", code, reason });
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
      cancel: () => this.#end(CLIENT_CLOSED),
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
   * the live end they name, so a reconnect before the next publication misses nothing;
   * `unsubscribed` drops the channel from `id:` (the stream is no longer in it).
   */
  sendText(text: string): boolean {
    try {
      const n = JSON.parse(text);
      if (
        (n.notice === "lost" || (n.notice === "subscribed" && n.recovered !== true)) &&
        typeof n.channel === "string" && typeof n.epoch === "string" && typeof n.id === "number"
      ) this.positions.set(n.channel, { epoch: n.epoch, id: n.id });
      else if (n.notice === "unsubscribed" && typeof n.channel === "string") {
        this.positions.delete(n.channel);
      }
    } catch {
      // Not JSON: sent as it is.
    }
    return this.write(encoder.encode(`event: notice\n${this.#idLine()}data: ${text}\n\n`));
  }

  /** Queues raw event-stream bytes; beyond the limit the stream is closed (slow consumer). */
  write(bytes: Uint8Array): boolean {
    if (this.#closed) return false;
    if (this.queuedBytes + bytes.length > this.maxQueueBytes) {
      this.#end(SLOW_CONSUMER);
      return false;
    }
    this.#controller.enqueue(bytes);
    return true;
  }

  /** The ping comment (nothing when data is already waiting: the proxy sees bytes anyway). */
  ping(): void {
    if (this.queuedBytes === 0) this.write(PING);
  }

  /**
   * Ends the stream with `code` and `reason`, the WebSocket close's terms (the `Sessions`
   * contract): the reader first gets the `closed` notice with them, after what already waits.
   * A stream with no room left for the notice is cut as a slow consumer instead.
   */
  close(code: number = NORMAL_CLOSE, reason = ""): void {
    if (this.#closed) return;
    if (!this.sendText(closedNotice(code, reason))) return; // cut as a slow consumer
    this.#end(reason || "closed");
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
      if (reason === SLOW_CONSUMER) this.#controller.error(new Error(reason));
      else this.#controller.close();
    } catch {
      // Already cancelled by the client.
    }
    this.#onClose(this, reason);
  }
}
