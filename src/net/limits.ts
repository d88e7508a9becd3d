/**
 * The limits of the WebSocket server and of each connection, as one object the app passes
 * through unchanged (its `Config` has these fields), and the options a route's connections share.
 *
 * @module
 */
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import type { MessageReaderOptions } from "../protocol/message.ts";
import type { Backlog } from "./outbox/backlog.ts";
import type { WriteScheduler } from "./outbox/write_scheduler.ts";
import type { WritePool } from "./outbox/write_pool.ts";
import type { PeerHandler } from "./peer.ts";
import type { Connection } from "./connection.ts";

/** What bounds one connection. Durations are milliseconds, sizes bytes. */
export interface ConnectionLimits {
  /** Largest message accepted, summed over its fragments (1009 beyond). */
  readonly maxMessageBytes: number;
  /** Most frames one message may be split into (1009 beyond). */
  readonly maxFragments: number;
  /** Bytes that may wait in the outgoing queue (slow consumer beyond). */
  readonly maxQueueBytes: number;
  /** How long to wait for the peer's close frame after sending ours. */
  readonly closeTimeout: number;
  /** How long a write may make no progress. */
  readonly sendTimeout: number;
  /** Ping the client after this much silence; 0 disables pings. */
  readonly pingInterval: number;
  /** Messages under this many payload bytes go uncompressed to deflate clients (default 256). */
  readonly deflateMinBytes?: number;
  /** Drop a pinged client that stays silent this long. */
  readonly pongTimeout: number;
}

/** What bounds the server: its connections' limits, and those of the accept path. */
export interface ServerLimits extends ConnectionLimits {
  /** Most clients at once; the next handshake gets 503. */
  readonly maxClients: number;
  /** Largest request head (431 beyond). */
  readonly maxHeaderBytes: number;
  /** Time allowed for the whole opening handshake. */
  readonly handshakeTimeout: number;
  /** Write coalescing delay in ms; 0 writes at once. */
  readonly writeDelay: number;
  /** Negotiate permessage-deflate with clients that offer it (default: decline it). */
  readonly deflate?: boolean;
}

/**
 * What every connection of a route shares. One object per route: what differs per connection
 * (id, request, socket) is passed on its own, because an options object per client is memory on
 * every idle client.
 */
export interface ConnectionOptions {
  /** The server's limits (not copied). */
  limits: ConnectionLimits;
  /** The reader's limits, made once from `limits`. */
  reader: MessageReaderOptions;
  /** Defers writer wake-ups so publishes coalesce; null writes at once. */
  scheduler: WriteScheduler | null;
  /** The server's outgoing backlog, for publisher back-pressure; null counts nothing. */
  backlog: Backlog | null;
  /** The server's write window, shared by every connection. */
  pool: WritePool;
  /** The route's behaviour. */
  handler: PeerHandler;
  /** Where events are logged. */
  logger: Logger;
  /** Where events are counted. */
  metrics: Metrics;
  /** Called first once a connection has ended (the server drops it from its registry). */
  onFinished?: (c: Connection) => void;
}
