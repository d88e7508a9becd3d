/**
 * The option table: every option's flag, default, limits and meaning, with the parsers of its
 * values. {@linkcode parseConfig} (in `config.ts`) reads flags and environment through it.
 *
 * @module
 */

import type { OptionSpec } from "./config_types.ts";
import {
  boolean,
  duration,
  integer,
  list,
  logLevel,
  range,
  redisUrl,
  size,
  url,
} from "./config_values.ts";

export { boolean } from "./config_values.ts";
export type { Config, OptionSpec } from "./config_types.ts";

/** Every option, in the order `--help` and the README list them. */
export const OPTIONS: readonly OptionSpec[] = [
  {
    key: "hostname",
    flag: "hostname",
    default: "127.0.0.1",
    help: "Address both servers bind to.",
    parse: (v) => v,
  },
  {
    key: "wsPort",
    flag: "ws-port",
    default: "9000",
    help: "WebSocket port (0 = any free port).",
    parse: integer(0, 65535),
  },
  {
    key: "httpPort",
    flag: "http-port",
    default: "8080",
    help: "Page and API port (0 = any free port).",
    parse: integer(0, 65535),
  },
  {
    key: "maxClients",
    flag: "max-clients",
    default: "10000",
    help: "Most WebSocket clients at once; one more gets HTTP 503.",
    parse: integer(1, 10_000_000),
  },
  {
    key: "maxMessageBytes",
    flag: "max-message-bytes",
    default: "1MiB",
    help: "Largest message from a client (close 1009 beyond).",
    parse: size(125, 1024 * 1024 * 1024),
  },
  {
    key: "maxFragments",
    flag: "max-fragments",
    default: "1024",
    help: "Most frames in one message from a client (close 1009 beyond).",
    parse: integer(1, 1_000_000),
  },
  {
    key: "maxClientRate",
    flag: "max-client-rate",
    default: "100",
    help: "Messages per second per client of / (burst 2x; close 1008 beyond; 0 = off).",
    parse: integer(0, 1_000_000),
  },
  {
    key: "maxHeaderBytes",
    flag: "max-header-bytes",
    default: "8KiB",
    help: "Largest handshake header block (HTTP 431 beyond).",
    parse: size(256, 1024 * 1024),
  },
  {
    key: "handshakeTimeout",
    flag: "handshake-timeout",
    default: "5s",
    help: "Time allowed to complete the opening handshake.",
    parse: duration(1, 600_000),
  },
  {
    key: "closeTimeout",
    flag: "close-timeout",
    default: "3s",
    help: "Wait for the peer's close frame before closing TCP.",
    parse: duration(1, 600_000),
  },
  {
    key: "demo",
    flag: "demo",
    default: "true",
    help: "Push the demo feed to clients of /.",
    parse: boolean,
  },
  {
    key: "demoInterval",
    flag: "demo-interval",
    default: "2000-5000",
    help: "Demo feed wait range MIN-MAX in ms.",
    parse: range,
  },
  {
    key: "maxQueueBytes",
    flag: "max-queue-bytes",
    default: "2MiB",
    help: "Outgoing bytes queued per client before it is a slow consumer.",
    parse: size(1024, 1024 * 1024 * 1024),
  },
  {
    key: "writeDelay",
    flag: "write-delay",
    default: "0",
    help: "Hold writes this long so publishes share one write per socket (0 = write when due).",
    parse: duration(0, 100),
  },
  {
    key: "maxBacklogBytes",
    flag: "max-backlog-bytes",
    default: "2MiB",
    help: "Outgoing bytes over all clients above which POST /publish waits (0 = never).",
    parse: size(0, 64 * 1024 * 1024 * 1024),
  },
  {
    key: "sendTimeout",
    flag: "send-timeout",
    default: "10s",
    help: "A write stalled this long ends the connection.",
    parse: duration(1, 600_000),
  },
  {
    key: "history",
    flag: "history",
    default: "100",
    help: "Publications kept per channel for resume (0 = none).",
    parse: integer(0, 1_000_000),
  },
  {
    key: "historyBytes",
    flag: "history-bytes",
    default: "4MiB",
    help: "Bytes of publications kept per channel.",
    parse: size(0, 1024 * 1024 * 1024),
  },
  {
    key: "historyTtl",
    flag: "history-ttl",
    default: "10m",
    help: "Drop a channel with no subscribers and no publication for this long (0 = never).",
    parse: duration(0, 7 * 24 * 3_600_000),
  },
  {
    key: "idempotencyWindow",
    flag: "idempotency-window",
    default: "5m",
    help:
      "A repeated Idempotency-Key on POST /publish within this long replays the first answer (0 = off).",
    parse: duration(0, 24 * 3_600_000),
  },
  {
    key: "maxSubscriptions",
    flag: "max-subscriptions",
    default: "100",
    help: "Channels one client may subscribe to at once.",
    parse: integer(1, 100_000),
  },
  {
    key: "presence",
    flag: "presence",
    default: "",
    help: "Channel patterns that keep presence: join/leave notices, GET /presence (room.*).",
    // Checked as patterns where they are compiled (push/auth_config.ts): exit 2 there too.
    parse: list,
  },
  {
    key: "maxPresence",
    flag: "max-presence",
    default: "100",
    help: "Presence members (users) one channel may have; a new one beyond it is refused.",
    parse: integer(1, 1_000_000),
  },
  {
    key: "pingInterval",
    flag: "ping-interval",
    default: "30s",
    help: "Ping a client that has been silent this long (0 = never).",
    parse: duration(0, 3_600_000),
  },
  {
    key: "pongTimeout",
    flag: "pong-timeout",
    default: "10s",
    help: "Disconnect a pinged client that stays silent this long.",
    parse: duration(1, 600_000),
  },
  {
    key: "publicWsUrl",
    flag: "public-ws-url",
    default: "",
    help: "WebSocket URL the page is told to use (behind a proxy); empty = same host, --ws-port.",
    parse: url(/^wss?:\/\/[^\s]+$/, "a ws:// or wss://"),
  },
  {
    key: "redis",
    flag: "redis",
    default: "",
    help: "redis://[[user]:password@]host[:port][/db]: share channels across instances.",
    parse: redisUrl,
  },
  {
    key: "publishToken",
    flag: "publish-token",
    default: "",
    help: "Bearer token for POST /publish; empty = loopback peers only.",
    parse: (v) => v,
  },
  {
    key: "jwtSecret",
    flag: "jwt-secret",
    default: "",
    help: "HMAC secret (32+ bytes) of HS256 client tokens; any key makes / require a token.",
    // Its length (32 bytes at least) is checked where the key is made (push/auth_config.ts):
    // the message there gives the rule, never the secret.
    parse: (v) => v,
  },
  {
    key: "jwtPublicKey",
    flag: "jwt-public-key",
    default: "",
    help: "RS256/ES256 public key of client tokens: PEM text, or a PEM file path.",
    parse: (v) => v,
  },
  {
    key: "jwtJwksUrl",
    flag: "jwt-jwks-url",
    default: "",
    help: "JWKS URL with the keys of client tokens (fetched at start, on unknown kid).",
    parse: url(/^https?:\/\/\S+$/, "an http:// or https://"),
  },
  {
    key: "jwtAudience",
    flag: "jwt-audience",
    default: "",
    help: "When set, a token's aud must be (or contain) it.",
    parse: (v) => v,
  },
  {
    key: "jwtIssuer",
    flag: "jwt-issuer",
    default: "",
    help: "When set, a token's iss must equal it.",
    parse: (v) => v,
  },
  {
    key: "anonymous",
    flag: "anonymous",
    default: "false",
    help: "With a key: clients without a token may connect, to public channels only.",
    parse: boolean,
  },
  {
    key: "publicChannels",
    flag: "public-channels",
    default: "",
    help: "With a key: channel patterns anyone may subscribe to (comma list: news,chat.*).",
    // Checked as patterns where they are compiled (push/auth_config.ts): exit 2 there too.
    parse: list,
  },
  {
    key: "drainTimeout",
    flag: "drain-timeout",
    default: "5s",
    help: "On SIGINT/SIGTERM, time clients get to answer close 1001.",
    parse: duration(0, 600_000),
  },
  {
    key: "tlsCert",
    flag: "tls-cert",
    default: "",
    help: "PEM certificate chain file: serve wss:// and https://.",
    parse: (v) => v,
  },
  {
    key: "tlsKey",
    flag: "tls-key",
    default: "",
    help: "PEM private key file for --tls-cert.",
    parse: (v) => v,
  },
  {
    key: "allowedOrigins",
    flag: "allowed-origins",
    default: "",
    help: "Browser origins allowed (comma list, or *); empty = the page server's own.",
    parse: list,
  },
  {
    key: "publicHosts",
    flag: "public-hosts",
    default: "",
    help: "Host names clients use to reach the server (comma list), beyond the bound address.",
    parse: list,
  },
  {
    key: "logLevel",
    flag: "log-level",
    default: "info",
    help: "One of silent, error, warn, info, debug.",
    parse: logLevel,
  },
];
