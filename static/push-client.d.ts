/**
 * Types of push-client.js, the client library of the push server (browsers and Deno).
 *
 * @module
 */

/** A publication as the server sends it, delivered once and in order per channel. */
export interface Publication {
  /** The channel it was published to. */
  channel: string;
  /** The history it belongs to (a server run, or a Redis dataset). */
  epoch: string;
  /** Its id in the channel: 1, 2, 3 … within an epoch. */
  id: number;
  /** A string for text, the value for JSON, base64 text for binary (`encoding: "base64"`). */
  data: unknown;
  /** "base64" for binary publications. */
  encoding?: "base64";
}

/** A notice from the server: `subscribed`, `lost`, `unsubscribed`, `expiring`, … */
export interface Notice {
  /** What happened. */
  notice: string;
  /** The channel it concerns, when it concerns one. */
  channel?: string;
  /** The channel's epoch (subscribed, lost). */
  epoch?: string;
  /** The channel's last id (subscribed, lost). */
  id?: number;
  /** Whether a resume was honoured (subscribed). */
  recovered?: boolean;
  /** Why (lost, unsubscribed). */
  reason?: string;
  [field: string]: unknown;
}

/** An error the server or the client reports: a refused command, a failed token lookup. */
export interface PushError {
  /** What went wrong. */
  error: string;
  /** The channel it concerns, when it concerns one. */
  channel?: string;
  [field: string]: unknown;
}

/** A position to resume a channel from. */
export interface Position {
  /** The epoch of the last publication received. */
  epoch: string;
  /** The id of the last publication received. */
  id: number;
}

/** One channel subscribed to. */
export interface Subscription {
  /** The channel. */
  readonly channel: string;
  /** Where it stands. */
  readonly status: "pending" | "subscribed" | "lost" | "refused" | "closed";
  /** The epoch of the last publication delivered (or subscribed at). */
  readonly epoch: string | null;
  /** The id of the last publication delivered (or subscribed at). */
  readonly id: number | null;
  /** Leaves the channel; nothing more is delivered. */
  unsubscribe(): void;
}

/** Options of {@linkcode PushClient}. */
export interface PushClientOptions {
  /** A token, or a function giving one: asked at every connect and when the server says `expiring`. */
  token?: string | (() => string | Promise<string>);
  /** false: do not connect until `connect()` is called. */
  connect?: boolean;
  /** First reconnect delay (ms, default 500); it doubles per failed attempt. */
  backoffBaseMs?: number;
  /** Longest reconnect delay before jitter (ms, default 30,000). */
  backoffCapMs?: number;
  /** A connection open this long resets the backoff (ms, default 10,000). */
  stableAfterMs?: number;
  /** After `quit`, how long the server gets to close before the client does (ms, default 3000). */
  quitTimeoutMs?: number;
  /** Another WebSocket implementation. */
  WebSocket?: typeof WebSocket;
}

/** What `retry` listeners get. */
export interface RetryEvent {
  /** Consecutive failed attempts so far. */
  attempt: number;
  /** Milliseconds until the next attempt. */
  delay: number;
  /** The close code of the connection that ended, if it ended with one. */
  code?: number;
  /** Its close reason. */
  reason?: string;
}

/** The events of {@linkcode PushClient.on}. */
export interface PushClientEvents {
  /** The connection state changed. */
  state: (state: "connecting" | "open" | "closed") => void;
  /** The socket opened (the URL, token included). */
  open: (url: string) => void;
  /** The socket closed; a reconnect follows unless the client was closed. */
  close: (event: { code: number; reason: string; wasClean: boolean }) => void;
  /** A notice arrived. */
  notice: (notice: Notice) => void;
  /** Any message arrived (raw). */
  message: (data: string | ArrayBuffer) => void;
  /** An error message arrived, or the client could not connect. */
  error: (error: PushError) => void;
  /** A reconnect is scheduled. */
  retry: (event: RetryEvent) => void;
}

/** Returns the parsed value if `text` is a JSON object, else null. */
export function parseObject(text: string): Record<string, unknown> | null;

/** A connection to the push server that survives drops until `close()`. */
export class PushClient {
  /** Creates the client and connects (unless `options.connect` is false). */
  constructor(url: string | (() => string | Promise<string>), options?: PushClientOptions);
  /** Where the connection stands. */
  readonly state: "connecting" | "open" | "closed";
  /** The socket, while there is one. */
  readonly socket: WebSocket | null;
  /** When the next attempt starts (`performance.now()` time) while waiting out the backoff; else 0. */
  readonly retryAt: number;
  /** The subscriptions, by channel. */
  readonly subscriptions: ReadonlyMap<string, Subscription>;
  /** Listens to an event; returns a function that stops listening. */
  on<E extends keyof PushClientEvents>(event: E, listener: PushClientEvents[E]): () => void;
  /** Subscribes to a channel; `since` resumes from a stored position. */
  subscribe(
    channel: string,
    onPublication: (publication: Publication) => void,
    options?: { since?: Position; onLost?: (notice: Notice) => void },
  ): Subscription;
  /** Sends a text message when open; false otherwise. */
  send(text: string): boolean;
  /** Connects (again) after `close()`, or when made with `connect: false`. */
  connect(): void;
  /** Tries at once instead of waiting out the backoff. */
  retryNow(): void;
  /** Says `quit` and lets the server close; no reconnection. */
  close(): void;
}
