/**
 * The benchmark scenarios, full size and `--quick` size.
 *
 * @module
 */

/**
 * What a scenario measures: idle memory and handshakes; fan-out throughput and latency (paced
 * when {@linkcode Scenario.rate} is set); the same with slow consumers; echo round trips.
 */
export type ScenarioKind = "idle" | "fanout" | "slow" | "echo";

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
  /**
   * Ours only: the server verifies an HS256 token (`--jwt-secret`) at every handshake, and the
   * clients present one (`?token=`); the reference servers have no such check and are skipped.
   */
  jwt?: boolean;
  /** Messages published. */
  messages: number;
  /** Body size in bytes. */
  size: number;
  /** Publishes in flight (most, when paced). */
  inflight: number;
  /** Publishes per second (paced publisher); 0: each publish as soon as an answer is back. */
  rate: number;
  /** Publish for this long, at most `messages` (0: publish all `messages`). */
  seconds: number;
  /** For `slow`: the scenario without slow clients that it is compared with. */
  baseline?: string;
  /**
   * "baseline": only there to be compared with (no targets of its own); "stress": checks that
   * no healthy client is dropped under overload. Unset: one of the fan-out scenarios.
   */
  role?: "baseline" | "stress";
  /**
   * Ours only: the server runs with `--deflate` and every client offers permessage-deflate
   * (as browsers do) and reads the compressed frames; the reference servers are skipped.
   */
  deflate?: boolean;
  /** Bodies padded with JSON-like text that compresses like real pushes (~4×), not "xxx…". */
  realisticBody?: boolean;
}

/** Our server's per-client queue limit (`--max-queue-bytes` default) that slow clients overflow. */
export const MAX_QUEUE_BYTES = 2 * 1024 * 1024;

/**
 * Slow consumers must be sent more than the kernel buffers for a socket that is never read
 * (~4 MB on this loopback: tcp_wmem max plus the initial receive window) plus our queue limit
 * (2 MiB), or our slow-consumer policy never triggers: 600 × 16 KiB ≈ 9.8 MB does.
 */
const SLOW_MESSAGES = 600;

/** How long the unpaced fan-out scenarios publish (a backlog needs time to build up). */
export const FANOUT_SECONDS = 10;

/** The full-size scenarios. */
export function fullScenarios(): Scenario[] {
  const t = FANOUT_SECONDS;
  return [
    sc("idle", "10,000 idle connections", "idle", 10_000, 0, 0, 0, 1),
    {
      ...sc(
        "idle-jwt",
        "10,000 idle connections, each with an HS256 token",
        "idle",
        10_000,
        0,
        0,
        0,
        1,
      ),
      jwt: true,
    },
    paced(1000, 1000),
    timed("fanout-1k-1", 1000, 64, 1, t, 5000),
    timed("fanout-1k-16", 1000, 64, 16, t, 20_000),
    timed("fanout-10k-1", 10_000, 64, 1, t, 1000),
    timed("fanout-16k", 100, 16384, 1, t, 5000),
    echo(100, 2000),
    ...slowTrio(1000, 10),
    ...deflatePair(1000, t, 5000),
    idleDeflate(10_000),
  ];
}

/** Small versions of the same scenarios for a smoke run (`--quick`). */
export function quickScenarios(): Scenario[] {
  return [
    sc("idle", "1,000 idle connections", "idle", 1000, 0, 0, 0, 1),
    {
      ...sc(
        "idle-jwt",
        "1,000 idle connections, each with an HS256 token",
        "idle",
        1000,
        0,
        0,
        0,
        1,
      ),
      jwt: true,
    },
    paced(200, 100),
    timed("fanout-1k-1", 200, 64, 1, 1, 1000),
    timed("fanout-1k-16", 200, 64, 16, 1, 4000),
    timed("fanout-10k-1", 2000, 64, 1, 1, 200),
    timed("fanout-16k", 50, 16384, 1, 1, 1000),
    echo(20, 200),
    ...slowTrio(100, 3),
    ...deflatePair(200, 1, 1000),
    idleDeflate(1000),
  ];
}

/**
 * A 4 KiB JSON publication fanned out to `clients`, without and with permessage-deflate: the
 * same realistic bodies (they compress ~4×), so deliveries/s, bytes on the wire per delivery
 * and server CPU compare directly. `--only=fanout-4k-deflate` brings the plain one along.
 */
function deflatePair(clients: number, seconds: number, cap: number): Scenario[] {
  const plain = { ...timed("fanout-4k", clients, 4096, 1, seconds, cap), realisticBody: true };
  return [
    { ...plain, title: `${plain.title}, JSON-like bodies`, role: "baseline" },
    {
      ...timed("fanout-4k-deflate", clients, 4096, 1, seconds, cap),
      title: `${plain.title}, JSON-like bodies, permessage-deflate`,
      realisticBody: true,
      deflate: true,
      baseline: "fanout-4k",
    },
  ];
}

/** Idle connections that negotiated permessage-deflate: what deflate adds per connection. */
function idleDeflate(clients: number): Scenario {
  const title = `${clients.toLocaleString("en-US")} idle connections with permessage-deflate`;
  return { ...sc("idle-deflate", title, "idle", clients, 0, 0, 0, 1), deflate: true };
}

/**
 * An unpaced fan-out that publishes for `seconds` (at most `cap` messages), each publisher
 * connection sending its next POST when the answer to the last one is back.
 */
function timed(
  name: string,
  clients: number,
  size: number,
  inflight: number,
  seconds: number,
  cap: number,
): Scenario {
  const what = size >= 1024 ? `${size / 1024} KiB` : `${size} B`;
  const title = `${clients.toLocaleString("en-US")} clients, msgs of ${what} for ${seconds} s (≤ ${
    cap.toLocaleString("en-US")
  }), ${inflight} in flight`;
  return { ...sc(name, title, "fanout", clients, 0, cap, size, inflight), seconds };
}

/** Publishes per second of the paced scenario: 100/s to 1,000 clients is 100k deliveries/s. */
export const PACED_RATE = 100;

/**
 * The paced fan-out: `messages` publishes written at {@linkcode PACED_RATE}/s whatever the
 * answers do (up to 4 in flight, so one slow answer does not shift the schedule): latency at a
 * load the server keeps up with, not at saturation.
 */
function paced(clients: number, messages: number): Scenario {
  const title = `${clients.toLocaleString("en-US")} clients, ${
    messages.toLocaleString("en-US")
  } msgs of 64 B paced at ${PACED_RATE}/s (≤ 4 in flight)`;
  return { ...sc("paced-1k", title, "fanout", clients, 0, messages, 64, 4), rate: PACED_RATE };
}

/** Echo: `clients` connections on `/echo`, each `rounds` closed-loop round trips of 64 B. */
function echo(clients: number, rounds: number): Scenario {
  const title = `${clients} clients × ${
    rounds.toLocaleString("en-US")
  } round trips of 64 B on /echo, 1 in flight each`;
  return sc(`echo-100`, title, "echo", clients, 0, rounds, 64, 1);
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
  return { name, title, kind, clients, slow, messages, size, inflight, rate: 0, seconds: 0 };
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
