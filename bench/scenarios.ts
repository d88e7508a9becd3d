/**
 * The benchmark scenarios, full size and `--quick` size.
 *
 * @module
 */

/** What a scenario measures. */
export type ScenarioKind = "idle" | "fanout" | "slow";

/** One benchmark scenario. */
export interface Scenario {
  /** Short name for `--only` and the table. */
  name: string;
  /** What it is, for the report. */
  title: string;
  /** idle: memory and handshakes; fanout: throughput and latency; slow: with slow consumers. */
  kind: ScenarioKind;
  /** Clients that read everything. */
  clients: number;
  /** Clients that stop reading (slow consumers). */
  slow: number;
  /** Messages published. */
  messages: number;
  /** Body size in bytes. */
  size: number;
  /** Publishes in flight. */
  inflight: number;
  /** For `slow`: the scenario without slow clients that it is compared with. */
  baseline?: string;
  /**
   * "baseline": only there to be compared with (no targets of its own); "stress": checks that
   * no healthy client is dropped under overload. Unset: one of the fan-out scenarios.
   */
  role?: "baseline" | "stress";
}

/** Our server's per-client queue limit (`--max-queue-bytes` default) that slow clients overflow. */
export const MAX_QUEUE_BYTES = 2 * 1024 * 1024;

/**
 * Slow consumers must be sent more than the kernel buffers for a socket that is never read
 * (~4 MB on this loopback: tcp_wmem max plus the initial receive window) plus our queue limit
 * (2 MiB), or our slow-consumer policy never triggers: 600 × 16 KiB ≈ 9.8 MB does.
 */
const SLOW_MESSAGES = 600;

/** The full-size scenarios. */
export function fullScenarios(): Scenario[] {
  return [
    sc("idle", "10,000 idle connections", "idle", 10_000, 0, 0, 0, 1),
    sc(
      "fanout-1k-1",
      "1,000 clients × 1,000 msgs of 64 B, 1 in flight",
      "fanout",
      1000,
      0,
      1000,
      64,
      1,
    ),
    sc(
      "fanout-1k-16",
      "1,000 clients × 1,000 msgs of 64 B, 16 in flight",
      "fanout",
      1000,
      0,
      1000,
      64,
      16,
    ),
    sc(
      "fanout-10k-1",
      "10,000 clients × 100 msgs of 64 B, 1 in flight",
      "fanout",
      10_000,
      0,
      100,
      64,
      1,
    ),
    sc(
      "fanout-16k",
      "100 clients × 200 msgs of 16 KiB, 1 in flight",
      "fanout",
      100,
      0,
      200,
      16384,
      1,
    ),
    ...slowTrio(1000, 10),
  ];
}

/** Small versions of the same scenarios for a smoke run (`--quick`). */
export function quickScenarios(): Scenario[] {
  return [
    sc("idle", "1,000 idle connections", "idle", 1000, 0, 0, 0, 1),
    sc("fanout-1k-1", "200 clients × 200 msgs of 64 B, 1 in flight", "fanout", 200, 0, 200, 64, 1),
    sc(
      "fanout-1k-16",
      "200 clients × 200 msgs of 64 B, 16 in flight",
      "fanout",
      200,
      0,
      200,
      64,
      16,
    ),
    sc(
      "fanout-10k-1",
      "2,000 clients × 50 msgs of 64 B, 1 in flight",
      "fanout",
      2000,
      0,
      50,
      64,
      1,
    ),
    sc("fanout-16k", "50 clients × 50 msgs of 16 KiB, 1 in flight", "fanout", 50, 0, 50, 16384, 1),
    ...slowTrio(100, 3),
  ];
}

/**
 * The slow-consumer scenario, its plain baseline (the same without slow clients, 1 publish in
 * flight), and the same traffic published 16 at a time: faster than one server core can write
 * 16 KiB frames to every client, so every client's queue grows — which must not get healthy
 * clients dropped as slow consumers.
 */
function slowTrio(clients: number, slow: number): Scenario[] {
  const what = `${clients.toLocaleString("en-US")} clients × ${SLOW_MESSAGES} msgs of 16 KiB`;
  return [
    {
      ...sc("slow-plain", `${what}, 1 in flight`, "fanout", clients, 0, SLOW_MESSAGES, 16384, 1),
      role: "baseline",
    },
    {
      ...sc(
        "slow",
        `the same + ${slow} clients that never read`,
        "slow",
        clients,
        slow,
        SLOW_MESSAGES,
        16384,
        1,
      ),
      baseline: "slow-plain",
    },
    {
      ...sc(
        "overload-16k",
        `${what}, 16 in flight`,
        "fanout",
        clients,
        0,
        SLOW_MESSAGES,
        16384,
        16,
      ),
      role: "stress",
    },
  ];
}

function sc(
  name: string,
  title: string,
  kind: ScenarioKind,
  clients: number,
  slow: number,
  messages: number,
  size: number,
  inflight: number,
): Scenario {
  return { name, title, kind, clients, slow, messages, size, inflight };
}

/**
 * Keeps the scenarios named in `only` (comma-separated names or prefixes: `fanout` selects all
 * fan-out ones). A slow scenario brings its baseline along.
 */
export function selectScenarios(all: Scenario[], only: string | undefined): Scenario[] {
  if (!only) return all;
  const wanted = only.split(",").map((s) => s.trim()).filter((s) => s !== "");
  const picked = new Set<string>();
  for (const w of wanted) {
    // An exact name wins over prefixes ("fanout-1k-1" is also a prefix of "fanout-1k-16").
    const exact = all.filter((s) => s.name === w);
    for (const s of exact.length > 0 ? exact : all.filter((s) => s.name.startsWith(w))) {
      picked.add(s.name);
    }
  }
  for (const s of all) if (picked.has(s.name) && s.baseline) picked.add(s.baseline);
  return all.filter((s) => picked.has(s.name));
}
