/**
 * Process-wide counters, rendered in the Prometheus text exposition format (version 0.0.4) for
 * `GET /metrics`. Counting is a field increment on the hot path; the text is built only when
 * scraped.
 *
 * @module
 */
import { LabeledCounter } from "./labeled_counter.ts";
import { DeflateMetrics } from "./metrics_deflate.ts";

export { LabeledCounter };

/** Gauge values, read once per scrape (current connections, history sizes …). */
export interface GaugeSnapshot {
  /** WebSocket clients connected now. */
  connections: number;
  /** Channels that exist now. */
  channels: number;
  /** Channels with at least one subscriber now. */
  activeChannels: number;
  /** Messages kept in history over all channels. */
  historyMessages: number;
  /** Bytes kept in history over all channels. */
  historyBytes: number;
  /** Bytes waiting in all outgoing queues. */
  queuedBytes: number;
  /** Bytes of the slabs the read and handshake buffer pools hold (in use or spare). */
  readBufferBytes: number;
  /** Presence members (users) of channels that keep presence, local to this instance. */
  presenceMembers?: number;
}

/** Every counter the server keeps. */
export class Metrics {
  /** Connections that completed the handshake. */
  connectionsTotal = 0;
  /** Handshakes refused, by HTTP status. */
  readonly handshakesRejected: LabeledCounter = new LabeledCounter();
  /** Handshakes that timed out. */
  handshakeTimeouts = 0;
  /** Messages queued to clients (pushes, acks, echoes, channel messages). */
  messagesPushed = 0;
  /** Bytes written to WebSocket sockets (frames with headers). */
  bytesPushed = 0;
  /** Messages received from clients. */
  messagesReceived = 0;
  /** Publishes accepted by the API. */
  publishes = 0;
  /** Publishes refused, by HTTP status. */
  publishesRejected: LabeledCounter = new LabeledCounter();
  /** Publishes answered from the idempotency store (a repeated `Idempotency-Key`). */
  idempotentReplays = 0;
  /** Repeats that waited for the first request with their key, still publishing. */
  idempotentWaits = 0;
  /** Idempotency keys evicted before their window ended (the store was full). */
  idempotencyEvictions = 0;
  /** `POST /disconnect` requests refused, by HTTP status. */
  readonly disconnectsRejected: LabeledCounter = new LabeledCounter();
  /** Connections closed with 4003 by `POST /disconnect` (here or relayed from another instance). */
  userDisconnects = 0;
  /** `GET /channels`, `GET /history` and `POST /unsubscribe` requests refused, by HTTP status. */
  readonly managementRejected: LabeledCounter = new LabeledCounter();
  /** Connections taken out of a channel by `POST /unsubscribe` (here or relayed). */
  userUnsubscribes = 0;
  /** `GET /events` streams refused, by HTTP status. */
  readonly sseRejected: LabeledCounter = new LabeledCounter();
  /** `GET /events` streams closed because the reader fell behind `--max-queue-bytes`. */
  sseSlowConsumers = 0;
  /** HTTP requests refused before routing (421: a Host that is not a name of the server). */
  readonly httpRejected: LabeledCounter = new LabeledCounter();
  /** Subscriptions refused because the channel had `--max-presence` members already. */
  presenceRefused = 0;
  /** Clients dropped because their queue overflowed. */
  slowConsumerDisconnects = 0;
  /** Clients dropped because a write stalled past `--send-timeout`. */
  sendTimeouts = 0;
  /** Heartbeat pings sent. */
  pingsSent = 0;
  /** Clients dropped because they did not answer a ping in time. */
  pingTimeouts = 0;
  /** Pongs that replaced a waiting pong (a newer ping came before the pong was written). */
  pongsCoalesced = 0;
  /** Times a client's reading paused because its outgoing queue was over half its limit. */
  readsPaused = 0;
  /** Clients of `/` closed for sending faster than `--max-client-rate`. */
  rateLimited = 0;
  /** Close frames sent, by code. */
  readonly closeCodesSent: LabeledCounter = new LabeledCounter();
  /** Close frames received, by code. */
  readonly closeCodesReceived: LabeledCounter = new LabeledCounter();
  /** Protocol errors, by failure. */
  readonly protocolErrors: LabeledCounter = new LabeledCounter();
  /**
   * Tokens refused (at the handshake, or in an `auth` refresh), by reason: a `TokenError` id,
   * "missing" (none given), "subject" (a refresh for another user).
   */
  readonly authFailures: LabeledCounter = new LabeledCounter();
  /** permessage-deflate (`--deflate`): connections, compressions, bytes, failures. */
  readonly deflate: DeflateMetrics = new DeflateMetrics();
  #gauges: (() => GaugeSnapshot) | null = null;

  /** Connects the gauges (the app does this once the servers exist); read once per scrape. */
  setGauges(gauges: () => GaugeSnapshot): void {
    this.#gauges = gauges;
  }

  /** Renders every metric in the Prometheus text format. */
  render(): string {
    const out: string[] = [];
    const metric = (name: string, type: string, help: string, series: [string, number][]) => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const [labels, value] of series) out.push(`${name}${labels} ${value}`);
    };
    const single = (value: number): [string, number][] => [["", value]];
    const labeled = (label: string, c: LabeledCounter): [string, number][] =>
      c.entries().map(([k, v]) => [`{${label}="${escapeLabel(k)}"}`, v]);
    const g = this.#gauges?.();
    metric(
      "push_connections",
      "gauge",
      "WebSocket clients connected now.",
      single(g?.connections ?? 0),
    );
    metric(
      "push_connections_total",
      "counter",
      "WebSocket handshakes accepted.",
      single(this.connectionsTotal),
    );
    metric(
      "push_handshakes_rejected_total",
      "counter",
      "WebSocket handshakes refused, by HTTP status.",
      labeled("status", this.handshakesRejected),
    );
    metric(
      "push_handshake_timeouts_total",
      "counter",
      "Handshakes not finished in time.",
      single(this.handshakeTimeouts),
    );
    metric(
      "push_messages_pushed_total",
      "counter",
      "Messages queued to clients.",
      single(this.messagesPushed),
    );
    metric(
      "push_bytes_pushed_total",
      "counter",
      "Bytes written to WebSocket clients.",
      single(this.bytesPushed),
    );
    metric(
      "push_messages_received_total",
      "counter",
      "Messages received from clients.",
      single(this.messagesReceived),
    );
    metric(
      "push_publishes_total",
      "counter",
      "Publishes accepted by the API.",
      single(this.publishes),
    );
    metric(
      "push_publishes_rejected_total",
      "counter",
      "Publishes refused, by HTTP status.",
      labeled("status", this.publishesRejected),
    );
    metric(
      "push_idempotent_replays_total",
      "counter",
      "Publishes answered from the idempotency store (a repeated Idempotency-Key).",
      single(this.idempotentReplays),
    );
    metric(
      "push_idempotent_waits_total",
      "counter",
      "Repeated Idempotency-Keys that waited for the first request, still publishing.",
      single(this.idempotentWaits),
    );
    metric(
      "push_idempotency_evictions_total",
      "counter",
      "Idempotency keys evicted before their window ended (the store was full).",
      single(this.idempotencyEvictions),
    );
    metric(
      "push_disconnects_rejected_total",
      "counter",
      "POST /disconnect requests refused, by HTTP status.",
      labeled("status", this.disconnectsRejected),
    );
    metric(
      "push_user_disconnects_total",
      "counter",
      "Connections closed with 4003 by POST /disconnect (on any instance, closed here).",
      single(this.userDisconnects),
    );
    metric(
      "push_management_rejected_total",
      "counter",
      "GET /channels, /history, /presence and POST /unsubscribe requests refused, by HTTP status.",
      labeled("status", this.managementRejected),
    );
    metric(
      "push_user_unsubscribes_total",
      "counter",
      "Connections taken out of a channel by POST /unsubscribe (on any instance, done here).",
      single(this.userUnsubscribes),
    );
    metric(
      "push_sse_rejected_total",
      "counter",
      "GET /events streams refused (401, 403, 400, 503), by HTTP status.",
      labeled("status", this.sseRejected),
    );
    metric(
      "push_sse_slow_consumers_total",
      "counter",
      "Server-Sent Events streams closed because more than --max-queue-bytes waited.",
      single(this.sseSlowConsumers),
    );
    metric(
      "push_http_rejected_total",
      "counter",
      "HTTP requests refused before routing (421 unknown Host), by status.",
      labeled("status", this.httpRejected),
    );
    metric(
      "push_presence_refused_total",
      "counter",
      "Subscriptions refused: a new member of a channel that had --max-presence members.",
      single(this.presenceRefused),
    );
    metric(
      "push_slow_consumer_disconnects_total",
      "counter",
      "Clients dropped because their outgoing queue overflowed.",
      single(this.slowConsumerDisconnects),
    );
    metric(
      "push_send_timeouts_total",
      "counter",
      "Clients dropped for a stalled write.",
      single(this.sendTimeouts),
    );
    metric(
      "push_ping_timeouts_total",
      "counter",
      "Clients dropped for not answering a ping.",
      single(this.pingTimeouts),
    );
    metric(
      "push_pongs_coalesced_total",
      "counter",
      "Pongs that replaced a pong still waiting (only the latest ping is answered).",
      single(this.pongsCoalesced),
    );
    metric(
      "push_reads_paused_total",
      "counter",
      "Times reading from a client paused while its outgoing queue was over half its limit.",
      single(this.readsPaused),
    );
    metric(
      "push_rate_limited_total",
      "counter",
      "Clients closed for sending messages faster than --max-client-rate.",
      single(this.rateLimited),
    );
    metric(
      "push_close_codes_sent_total",
      "counter",
      "Close frames sent, by code.",
      labeled("code", this.closeCodesSent),
    );
    metric(
      "push_close_codes_received_total",
      "counter",
      "Close frames received, by code.",
      labeled("code", this.closeCodesReceived),
    );
    metric(
      "push_protocol_errors_total",
      "counter",
      "Protocol errors, by failure.",
      labeled("failure", this.protocolErrors),
    );
    metric(
      "push_auth_failures_total",
      "counter",
      "Tokens refused at the handshake or in a refresh, by reason.",
      labeled("reason", this.authFailures),
    );
    this.deflate.render(metric, labeled);
    metric("push_channels", "gauge", "Channels that exist now.", single(g?.channels ?? 0));
    metric(
      "push_channels_active",
      "gauge",
      "Channels with subscribers now.",
      single(g?.activeChannels ?? 0),
    );
    metric(
      "push_history_messages",
      "gauge",
      "Messages kept in channel history.",
      single(g?.historyMessages ?? 0),
    );
    metric(
      "push_history_bytes",
      "gauge",
      "Bytes kept in channel history.",
      single(g?.historyBytes ?? 0),
    );
    metric(
      "push_queued_bytes",
      "gauge",
      "Bytes waiting in outgoing queues.",
      single(g?.queuedBytes ?? 0),
    );
    metric(
      "push_read_buffer_bytes",
      "gauge",
      "Bytes of the slabs idle reads and handshakes read into (in use or spare).",
      single(g?.readBufferBytes ?? 0),
    );
    metric(
      "push_presence_members",
      "gauge",
      "Presence members (users) of channels that keep presence, connected to this instance.",
      single(g?.presenceMembers ?? 0),
    );
    return out.join("\n") + "\n";
  }
}

function escapeLabel(value: string): string {
  return value.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n");
}
