/**
 * The shape of the server's configuration: {@linkcode Config} and the {@linkcode OptionSpec} that
 * describes one option. The option table itself is in `config_options.ts`.
 *
 * @module
 */

import type { LogLevel } from "./log.ts";

/** The server's whole configuration. Durations are milliseconds, sizes bytes. */
export interface Config {
  /** Address both servers bind to. */
  hostname: string;
  /** WebSocket port (raw TCP); 0 picks a free port. */
  wsPort: number;
  /** HTTP port for the page and the API; 0 picks a free port. */
  httpPort: number;
  /** Most simultaneous WebSocket clients; one more gets 503. */
  maxClients: number;
  /** Largest message accepted from a client, summed over fragments (1009 beyond). */
  maxMessageBytes: number;
  /** Most frames one message may be split into (1009 beyond). */
  maxFragments: number;
  /** Negotiate permessage-deflate (RFC 7692) with clients that offer it. */
  deflate: boolean;
  /** Messages to deflate clients shorter than this many bytes are sent uncompressed. */
  deflateMinBytes: number;
  /** Messages per second one client of `/` may send (burst 2×); 0 = unlimited (1008 beyond). */
  maxClientRate: number;
  /** Largest handshake header block (431 beyond). */
  maxHeaderBytes: number;
  /** Time a client has to complete the opening handshake. */
  handshakeTimeout: number;
  /** Time the server waits for the peer's close frame after sending its own. */
  closeTimeout: number;
  /** Whether clients of `/` get the demo feed. */
  demo: boolean;
  /** The demo feed's wait range [min, max] in ms ("I am waiting N seconds"). */
  demoInterval: [number, number];
  /** Bytes that may wait in one client's outgoing queue before it counts as a slow consumer. */
  maxQueueBytes: number;
  /** Delay before a woken writer writes, so several publishes share one write; 0 = none. */
  writeDelay: number;
  /** Outgoing bytes over all clients above which publishes wait for delivery to catch up. */
  maxBacklogBytes: number;
  /** A write that makes no progress for this long ends the connection. */
  sendTimeout: number;
  /** Publications kept per channel for resume. */
  history: number;
  /** Bytes of publications kept per channel. */
  historyBytes: number;
  /** A channel without subscribers whose newest publication is this old is dropped; 0 = never. */
  historyTtl: number;
  /** A repeated `Idempotency-Key` within this long replays the first answer; 0 = off. */
  idempotencyWindow: number;
  /** Channels one client may subscribe to at once. */
  maxSubscriptions: number;
  /** Channel patterns that keep presence (members, join/leave notices, `GET /presence`). */
  presence: string[];
  /** The most presence members (users) of one channel; a new one beyond it is refused. */
  maxPresence: number;
  /** Ping a client that sent nothing for this long; 0 disables pings. */
  pingInterval: number;
  /** A pinged client that sends nothing for this long is disconnected. */
  pongTimeout: number;
  /** The WebSocket URL `/config.json` gives the page (behind a proxy); empty = derived. */
  publicWsUrl: string;
  /** Redis URL: share channels and history with other instances; empty = in-process hub. */
  redis: string;
  /** Bearer token required by the publish API; empty = only loopback peers may publish. */
  publishToken: string;
  /** HMAC secret of HS256/384/512 client tokens (at least 32 bytes); empty = none. */
  jwtSecret: string;
  /** RS/ES public key of client tokens: PEM text, or a path to a PEM file; empty = none. */
  jwtPublicKey: string;
  /** URL of a JWKS document with the keys of client tokens; empty = none. */
  jwtJwksUrl: string;
  /** When set, a token's `aud` must be (or contain) it. */
  jwtAudience: string;
  /** When set, a token's `iss` must equal it. */
  jwtIssuer: string;
  /** With a key: clients without a token may connect, to public channels only. */
  anonymous: boolean;
  /** With a key: channel patterns every client may subscribe to. */
  publicChannels: string[];
  /** Time clients get to answer the shutdown's close 1001 before the rest are cut off. */
  drainTimeout: number;
  /** PEM certificate chain file: serve wss:// and https:// (needs `tlsKey`). */
  tlsCert: string;
  /** PEM private key file for `tlsCert`. */
  tlsKey: string;
  /** Browser origins allowed to connect: exact origins, or ["*"]; empty = the page's own. */
  allowedOrigins: string[];
  /** Extra host names (Host header) both servers answer to, beyond the bound/loopback names. */
  publicHosts: string[];
  /** Log verbosity. */
  logLevel: LogLevel;
}

/** One option: its key in {@linkcode Config}, flag, default, help line and parser. */
export interface OptionSpec<K extends keyof Config = keyof Config> {
  key: K;
  flag: string;
  default: string;
  help: string;
  parse: (value: string) => Config[K];
}
