/**
 * The permessage-deflate counters (`--deflate`), a part of {@linkcode Metrics} of their own so
 * the main table stays readable.
 *
 * @module
 */
import { LabeledCounter } from "./labeled_counter.ts";

/** Adds one metric (name, type, help, series) to the exposition. */
type AddMetric = (name: string, type: string, help: string, series: [string, number][]) => void;

/** Counters of permessage-deflate, rendered as `push_deflate_*`. */
export class DeflateMetrics {
  /** Connections with permessage-deflate negotiated now: up in `Connection.open`, down when finished. */
  connections = 0;
  /** Messages compressed: a broadcast once, whatever its number of deflate subscribers. */
  compressions = 0;
  /** Payload bytes of compressed deliveries before compression (each delivery counts). */
  outPlainBytes = 0;
  /** The same deliveries' payload bytes as sent, compressed. */
  outCompressedBytes = 0;
  /** Compressed messages received from clients and inflated. */
  inMessages = 0;
  /** Their payload bytes as received (compressed). */
  inCompressedBytes = 0;
  /** Their bytes once inflated. */
  inInflatedBytes = 0;
  /** Compressed messages refused, by reason: inflated-too-big, compressed-too-big, bad-deflate-data. */
  readonly failures: LabeledCounter = new LabeledCounter();

  /** Adds the `push_deflate_*` series through `metric`. */
  render(
    metric: AddMetric,
    labeled: (label: string, c: LabeledCounter) => [string, number][],
  ): void {
    metric("push_deflate_connections", "gauge", "Connections with permessage-deflate now.", [
      ["", this.connections],
    ]);
    metric(
      "push_deflate_compressions_total",
      "counter",
      "Messages compressed (a broadcast once, however many deflate subscribers get it).",
      [["", this.compressions]],
    );
    metric(
      "push_deflate_out_bytes_total",
      "counter",
      "Payload bytes of compressed deliveries to clients, before and after compression.",
      [['{kind="plain"}', this.outPlainBytes], ['{kind="compressed"}', this.outCompressedBytes]],
    );
    metric(
      "push_deflate_in_messages_total",
      "counter",
      "Compressed messages received from clients and inflated.",
      [["", this.inMessages]],
    );
    metric(
      "push_deflate_in_bytes_total",
      "counter",
      "Payload bytes of compressed messages from clients, as received and once inflated.",
      [['{kind="compressed"}', this.inCompressedBytes], [
        '{kind="inflated"}',
        this.inInflatedBytes,
      ]],
    );
    metric(
      "push_deflate_failures_total",
      "counter",
      "Compressed messages refused, by reason (1009: inflated-too-big, compressed-too-big; 1007: bad-deflate-data).",
      labeled("reason", this.failures),
    );
  }
}
