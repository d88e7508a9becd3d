/**
 * The targets of issue 13 ("Latency as good as throughput"), evaluated from the medians of a
 * run: ours against Bun (`bench/bun_server.ts`) where Bun was measured, and against the
 * built-in reference server. A target is n/a when a server it needs was not measured.
 *
 * @module
 */
import {
  fmt,
  type RunResult,
  SERVER_NAMES,
  type ServerKind,
  summarize,
  type TargetResult,
} from "./report.ts";
import type { Scenario } from "./scenarios.ts";

/** A load client above this share of its core during a phase may have been the bottleneck. */
export const CLIENT_BOUND_PERCENT = 90;

/** The fan-out scenarios whose p99 must be within 1.5× Bun's (paced and unpaced, 1k and 10k). */
export const LATENCY_SCENARIOS = ["paced-1k", "fanout-1k-1", "fanout-1k-16", "fanout-10k-1"];

/** The scenario with 16 concurrent publishers, where send-order reorders are reported. */
export const REORDER_SCENARIO = "fanout-1k-16";

/** Evaluates the issue's targets from the medians. */
export function evaluateTargets(
  scenarios: Scenario[],
  results: RunResult[],
  maxQueueBytes: number,
): TargetResult[] {
  const names = new Set(scenarios.map((s) => s.name));
  const med = (scenario: string, server: ServerKind, metric: string) =>
    summarize(results, scenario, server, metric).median;
  // A target is n/a when a server was not measured (skipped, e.g. no publish API, or not
  // selected); it FAILs when a server ran but produced no number (it broke).
  const measured = (scenario: string, server: ServerKind) =>
    results.some((r) => r.scenario === scenario && r.server === server && !r.skipped);
  // Our server losing or dropping messages (or stalling) fails every target of that scenario:
  // its numbers would describe a run that did not deliver.
  const judge = (
    scenario: string,
    other: ServerKind | null,
    have: boolean,
    ok: boolean,
  ): TargetResult["verdict"] =>
    !measured(scenario, "ours") || (other !== null && !measured(scenario, other))
      ? "n/a"
      : !have || brokenRuns(results, scenario, "ours") > 0
      ? "FAIL"
      : ok
      ? "PASS"
      : "FAIL";
  const out: TargetResult[] = [];
  const push = (t: TargetResult, scenario: string): TargetResult => {
    t.measured += brokenNote(results, scenario) + clientBoundNote(results, scenario);
    out.push(t);
    return t;
  };
  /** ours / other of `metric` must be ≥ factor (or ≤ factor with `atMost`). */
  const ratio = (
    scenario: string,
    metric: string,
    other: ServerKind,
    factor: number,
    text: string,
    atMost = false,
    digits = 0,
    unit = "",
  ): TargetResult | undefined => {
    if (!names.has(scenario)) return undefined;
    const ours = med(scenario, "ours", metric);
    const theirs = med(scenario, other, metric);
    const r = ours / theirs;
    const have = Number.isFinite(r);
    return push({
      target: text,
      measured: `${fmt(ours, digits)}${unit} vs ${SERVER_NAMES[other]} ${
        fmt(theirs, digits)
      }${unit}${have ? ` = ${fmt(r, 2)}×` : ""}`,
      verdict: judge(scenario, other, have, atMost ? r <= factor : r >= factor),
    }, scenario);
  };
  /**
   * Appends the floor server's figure in `scenario` to target `t`, when both exist: what any
   * server on `Deno.Conn` reaches there, against `vs` (the target's reference).
   */
  const floor = (
    t: TargetResult | undefined,
    scenario: string,
    metric: string,
    vs: ServerKind | null,
    digits = 0,
    unit = "",
  ) => {
    if (t === undefined || !measured(scenario, "floor")) return;
    const f = med(scenario, "floor", metric);
    const rel = vs === null
      ? ""
      : ` = ${fmt(f / med(scenario, vs, metric), 2)}× ${SERVER_NAMES[vs]}`;
    t.measured += `; the Deno floor (bench/floor_server.ts): ${fmt(f, digits)}${unit}${rel}`;
  };
  for (const name of LATENCY_SCENARIOS) {
    ratio(name, "p99", "bun", 1.5, `${name}: p99 publish-to-delivery ≤ 1.5× Bun's`, true, 2, " ms");
  }
  ratio("fanout-1k-1", "deliveriesPerSec", "bun", 1, "fanout-1k-1: deliveries/s ≥ Bun's");
  ratio("fanout-1k-16", "deliveriesPerSec", "bun", 1, "fanout-1k-16: deliveries/s ≥ Bun's");
  ratio(
    "fanout-10k-1",
    "deliveriesPerSec",
    "builtin",
    2,
    "fanout-10k-1: deliveries/s ≥ 2× built-in",
  );
  floor(
    ratio(
      "echo-100",
      "roundTripsPerSec",
      "builtin",
      1.3,
      "echo-100: round trips/s ≥ 1.3× built-in",
    ),
    "echo-100",
    "roundTripsPerSec",
    "builtin",
  );
  ratio("fanout-16k", "deliveriesPerSec", "builtin", 1, "fanout-16k: deliveries/s ≥ built-in");
  if (names.has("idle")) {
    const kib = med("idle", "ours", "rssPerConnKiB");
    const t = push({
      target: "idle: RSS per connection ≤ 6 KiB",
      measured: `${fmt(kib, 1)} KiB (built-in ${
        fmt(med("idle", "builtin", "rssPerConnKiB"), 1)
      }, Bun ${fmt(med("idle", "bun", "rssPerConnKiB"), 1)})`,
      verdict: judge("idle", null, Number.isFinite(kib), kib <= 6),
    }, "idle");
    floor(t, "idle", "rssPerConnKiB", null, 1, " KiB");
  }
  floor(
    ratio("idle", "handshakesPerSec", "builtin", 1.5, "idle: handshakes/s ≥ 1.5× built-in"),
    "idle",
    "handshakesPerSec",
    "builtin",
  );
  if (names.has("idle-jwt") && names.has("idle")) {
    // Issue 14: verifying an HS256 token at every handshake must not halve the handshake rate.
    const withToken = med("idle-jwt", "ours", "handshakesPerSec");
    const without = med("idle", "ours", "handshakesPerSec");
    const r = withToken / without;
    push({
      target: "idle-jwt: handshakes/s with HS256 verification ≥ half of idle's (ours)",
      measured: `${fmt(withToken, 0)} vs ${fmt(without, 0)} = ${fmt(r, 2)}×`,
      verdict: judge("idle-jwt", null, Number.isFinite(r), r >= 0.5),
    }, "idle-jwt");
  }
  const lossy = scenarios.filter((s) =>
    measured(s.name, "ours") && brokenRuns(results, s.name, "ours") > 0
  );
  const ran = scenarios.filter((s) => s.kind !== "idle" && measured(s.name, "ours"));
  out.push({
    target: "ours: nothing lost, duplicated or reordered (by id) in any scenario",
    measured: ran.length === 0
      ? "not measured"
      : lossy.length === 0
      ? `${ran.length} scenarios clean`
      : `errors in ${lossy.map((s) => s.name).join(", ")}`,
    verdict: ran.length === 0 ? "n/a" : lossy.length === 0 ? "PASS" : "FAIL",
  });
  if (names.has(REORDER_SCENARIO)) out.push(reorderTarget(results));
  for (const s of scenarios.filter((x) => x.kind === "slow" && x.baseline)) {
    out.push(...slowTargets(s, results, maxQueueBytes));
  }
  for (const s of scenarios.filter((x) => x.role === "stress")) {
    const broken = brokenRuns(results, s.name, "ours");
    const runs = results.filter((r) => r.scenario === s.name && r.server === "ours" && !r.skipped);
    const dropped = runs.map((r) => r.metrics.deliveryErrors ?? 0);
    out.push({
      target: `${s.name}: no healthy client dropped, no message lost (ours)`,
      measured: `${broken} of ${runs.length} runs with errors (delivery errors per run: ${
        dropped.join(", ") || "–"
      })`,
      verdict: runs.length === 0 ? "n/a" : broken === 0 ? "PASS" : "FAIL",
    });
  }
  return out;
}

/**
 * Deliveries out of publish order with 16 concurrent publishers: for each client, a delivery
 * whose POST the load client *wrote* before that of a message the client had already received
 * (summed over clients and runs, against all deliveries of those runs).
 */
function reorderTarget(results: RunResult[]): TargetResult {
  const total = (server: ServerKind) => {
    const runs = results.filter((r) =>
      r.scenario === REORDER_SCENARIO && r.server === server && !r.skipped &&
      r.metrics.sendReorders !== undefined
    );
    if (runs.length === 0) return null;
    const reordered = runs.reduce((n, r) => n + r.metrics.sendReorders, 0);
    const deliveries = runs.reduce((n, r) => n + (r.metrics.deliveries ?? 0), 0);
    return { reordered, deliveries };
  };
  const text = (server: ServerKind) => {
    const t = total(server);
    return t === null
      ? `${SERVER_NAMES[server]} –`
      : `${SERVER_NAMES[server]} ${fmt(t.reordered)} of ${fmt(t.deliveries)}`;
  };
  const ours = total("ours");
  return {
    target: `${REORDER_SCENARIO}: deliveries out of publish (send) order, summed over runs = 0`,
    measured: [text("ours"), text("builtin"), text("bun")].join(", "),
    verdict: ours === null ? "n/a" : ours.reordered === 0 ? "PASS" : "FAIL",
  };
}

/**
 * " — load client at 97% of its core against Bun: …" when the client's median CPU in a
 * server's runs passed {@linkcode CLIENT_BOUND_PERCENT}: that server's number is then a lower
 * bound (the client may have set the pace), which makes a target against it easier.
 */
function clientBoundNote(results: RunResult[], scenario: string): string {
  let note = "";
  for (const server of ["ours", "builtin", "bun"] as const) {
    const cpu = summarize(results, scenario, server, "clientCpuPercent").median;
    if (cpu > CLIENT_BOUND_PERCENT) {
      note += ` — load client at ${fmt(cpu)}% of its core against ${
        SERVER_NAMES[server]
      }: may be client-bound`;
    }
  }
  return note;
}

/**
 * Whether every run of ours in `scenario` closed exactly `slow` clients as slow consumers, each
 * of which saw the close (1008, or the TCP close after the close timeout) rather than staying open.
 */
function slowClosedAll(results: RunResult[], scenario: string, slow: number): boolean {
  const runs = results.filter((r) => r.scenario === scenario && r.server === "ours" && !r.skipped);
  return runs.length > 0 && runs.every((r) =>
    r.metrics.slowClosedByServer === slow &&
    (r.metrics.slowClosed1008 ?? 0) + (r.metrics.slowClosedEof ?? 0) === slow
  );
}

/** Our server with slow consumers: fast clients unaffected, slow ones dropped, memory bounded. */
function slowTargets(s: Scenario, results: RunResult[], maxQueueBytes: number): TargetResult[] {
  const base = s.baseline!;
  const plain = summarize(results, base, "ours", "deliveriesPerSec");
  const slow = summarize(results, s.name, "ours", "deliveriesPerSec");
  const plainP99 = summarize(results, base, "ours", "p99");
  const slowP99 = summarize(results, s.name, "ours", "p99");
  const dropped = summarize(results, s.name, "ours", "slowClosed1008");
  const eof = summarize(results, s.name, "ours", "slowClosedEof");
  const byServer = summarize(results, s.name, "ours", "slowClosedByServer");
  const plainPeak = summarize(results, base, "ours", "peakMiB");
  const slowPeak = summarize(results, s.name, "ours", "peakMiB");
  // "Within noise": no worse than the plain runs' own spread allows, with 10% slack.
  // Each slow client may hold its queue (plus copies in flight: × 1.5); 10% of the baseline's
  // peak absorbs GC timing, which differs from run to run.
  const budgetMiB = (s.slow * maxQueueBytes * 1.5) / (1024 * 1024) + 0.1 * plainPeak.median;
  const extra = slowPeak.median - plainPeak.median;
  const broken = brokenRuns(results, base, "ours") + brokenRuns(results, s.name, "ours") > 0;
  const note = brokenNote(results, base) + brokenNote(results, s.name);
  const verdict = (ok: boolean, have: boolean) => !have ? "n/a" : ok && !broken ? "PASS" : "FAIL";
  const targets: TargetResult[] = [
    {
      target: `${s.name}: fast clients' deliveries/s within noise of ${base} (≥ its min − 10%)`,
      measured: `${fmt(slow.median)} vs ${fmt(plain.median)} (min ${fmt(plain.min)})`,
      verdict: verdict(slow.median >= plain.min * 0.9, slow.runs > 0 && plain.runs > 0),
    },
    {
      target: `${s.name}: fast clients' p99 within noise of ${base} (≤ its max + 10%)`,
      measured: `${fmt(slowP99.median, 2)} ms vs ${fmt(plainP99.median, 2)} ms (max ${
        fmt(plainP99.max, 2)
      })`,
      verdict: verdict(
        slowP99.median <= plainP99.max * 1.1,
        slowP99.runs > 0 && plainP99.runs > 0,
      ),
    },
    {
      target: `${s.name}: all ${s.slow} slow clients closed as slow consumers (the server ` +
        `counted each in push_slow_consumer_disconnects_total; each client saw the 1008 "slow consumer" close, or ` +
        `the TCP close when it was still not reading after --close-timeout)`,
      measured: `server: ${fmt(byServer.min)}–${fmt(byServer.max)} of ${s.slow} per run; ` +
        `clients saw 1008: ${fmt(dropped.min)}–${fmt(dropped.max)}, TCP close: ${fmt(eof.min)}–${
          fmt(eof.max)
        }`,
      verdict: verdict(
        slowClosedAll(results, s.name, s.slow),
        dropped.runs > 0 && byServer.runs > 0,
      ),
    },
    {
      target:
        `${s.name}: server peak RSS bounded (≤ ${base} + slow × max-queue-bytes × 1.5 + 10% = +${
          fmt(budgetMiB, 0)
        } MiB)`,
      measured: `${fmt(slowPeak.median, 1)} MiB vs ${fmt(plainPeak.median, 1)} MiB (+${
        fmt(extra, 1)
      })`,
      verdict: verdict(extra <= budgetMiB, slowPeak.runs > 0 && plainPeak.runs > 0),
    },
  ];
  for (const t of targets) t.measured += note;
  return targets;
}

/** Runs of `server` in `scenario` that failed or lost, duplicated or reordered messages. */
export function brokenRuns(results: RunResult[], scenario: string, server: ServerKind): number {
  return results.filter((r) =>
    r.scenario === scenario && r.server === server && !r.skipped &&
    (r.error !== undefined || (r.metrics.deliveryErrors ?? 0) > 0)
  ).length;
}

/** " — ours: 1 of 3 runs broken …" when a server's runs of `scenario` had errors. */
function brokenNote(results: RunResult[], scenario: string): string {
  let note = "";
  for (const server of ["ours", "builtin", "bun"] as const) {
    const broken = brokenRuns(results, scenario, server);
    if (broken === 0) continue;
    const runs = results.filter((r) =>
      r.scenario === scenario && r.server === server && !r.skipped
    ).length;
    note += ` — ${SERVER_NAMES[server]}: ${broken} of ${runs} ${scenario} runs had errors`;
  }
  return note;
}
