/**
 * Turns the runner's per-run results into the comparison table, the PASS/FAIL targets and the
 * Markdown report.
 *
 * @module
 */
import type { MachineInfo } from "./proc.ts";
import type { Scenario } from "./scenarios.ts";
import { median, range } from "./stats.ts";

/** Which server a run measured. */
export type ServerKind = "ours" | "builtin";

/** The display names of the two servers. */
export const SERVER_NAMES: Record<ServerKind, string> = {
  ours: "ours",
  builtin: "built-in",
};

/** What one run of one scenario against one server measured. */
export interface RunResult {
  /** Scenario name. */
  scenario: string;
  /** Which server. */
  server: ServerKind;
  /** Repetition number, from 1. */
  rep: number;
  /** Why the run produced no numbers (e.g. no publish API), if it did not. */
  skipped?: string;
  /** What went wrong, if anything (numbers may still be there). */
  error?: string;
  /** Numbers by metric key (see {@linkcode METRICS}). */
  metrics: Record<string, number>;
  /** Notes for the report (slow-consumer outcome, …). */
  notes: string[];
  /** [p50, max] latency (ms) of each tenth of the deliveries, in arrival order. */
  latencyTimeline?: number[][];
  /** With `--cpu-prof`: the server's top functions by self time. */
  profileTop?: string[];
  /** For our server: the hash of its sources when the run started. */
  sourceHash?: string;
}

/** A metric of the table. */
export interface Metric {
  /** Key in {@linkcode RunResult.metrics}. */
  key: string;
  /** Row label. */
  label: string;
  /** Whether ours / built-in means something (not for the observers' CPU or error counts). */
  compare: boolean;
  /** Decimal places. */
  digits: number;
  /** Scenario kinds that report it. */
  kinds: Scenario["kind"][];
}

/** The rows of the table, in order. */
export const METRICS: Metric[] = [
  m("rssPerConnKiB", "RSS per idle connection (KiB)", true, 1, ["idle"]),
  m("handshakesPerSec", "handshakes/s", true, 0, ["idle"]),
  m("rssConnectedMiB", "server RSS with all connected (MiB)", true, 1, ["idle"]),
  m("deliveriesPerSec", "deliveries/s", true, 0, ["fanout", "slow"]),
  m("p50", "latency p50 (ms)", true, 2, ["fanout", "slow"]),
  m("p99", "latency p99 (ms)", true, 2, ["fanout", "slow"]),
  m("max", "latency max (ms)", true, 1, ["fanout", "slow"]),
  m("rssEndMiB", "server RSS at end (MiB)", true, 1, ["fanout", "slow"]),
  m("peakMiB", "server peak RSS (MiB)", true, 1, ["fanout", "slow"]),
  m("serverCpuPercent", "server CPU (% of its core)", true, 0, ["idle", "fanout", "slow"]),
  m("clientCpuPercent", "load client CPU (% of its core)", false, 0, ["idle", "fanout", "slow"]),
  m("otherCpuPercent", "other load on the machine (% of a core)", false, 0, [
    "idle",
    "fanout",
    "slow",
  ]),
  m("deliveryErrors", "delivery errors (gaps, dups, missing)", false, 0, ["fanout", "slow"]),
];

function m(
  key: string,
  label: string,
  compare: boolean,
  digits: number,
  kinds: Scenario["kind"][],
): Metric {
  return { key, label, compare, digits, kinds };
}

/** Median and spread of one metric over the repetitions of one server. */
export interface Summary {
  /** Median over runs. */
  median: number;
  /** Smallest run. */
  min: number;
  /** Largest run. */
  max: number;
  /** Runs with a value. */
  runs: number;
}

/** Summarizes `metric` of `server` in `scenario`. */
export function summarize(
  results: RunResult[],
  scenario: string,
  server: ServerKind,
  metric: string,
): Summary {
  const values = results
    .filter((r) => r.scenario === scenario && r.server === server && !r.skipped)
    .map((r) => r.metrics[metric])
    .filter((v) => v !== undefined && Number.isFinite(v));
  return { median: median(values), ...range(values), runs: values.length };
}

/** Formats a number with thousands separators and `digits` decimals; "–" for NaN. */
export function fmt(value: number, digits = 0): string {
  if (!Number.isFinite(value)) return "–";
  return value.toLocaleString("en-US", {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}

function cell(s: Summary, digits: number): string {
  if (s.runs === 0) return "n/a";
  if (s.runs === 1) return fmt(s.median, digits);
  return `${fmt(s.median, digits)} (${fmt(s.min, digits)}–${fmt(s.max, digits)})`;
}

/** The comparison table in Markdown: one block of rows per scenario. */
export function resultsTable(scenarios: Scenario[], results: RunResult[]): string {
  const lines = [
    "| scenario | metric | ours: median (min–max) | built-in: median (min–max) | ours / built-in |",
    "| --- | --- | ---: | ---: | ---: |",
  ];
  for (const s of scenarios) {
    let first = true;
    for (const metric of METRICS.filter((x) => x.kinds.includes(s.kind))) {
      const ours = summarize(results, s.name, "ours", metric.key);
      const builtin = summarize(results, s.name, "builtin", metric.key);
      if (ours.runs === 0 && builtin.runs === 0) continue;
      const ratio = ours.median / builtin.median;
      const ratioText = metric.compare && Number.isFinite(ratio) && ours.runs > 0 &&
          builtin.runs > 0
        ? `${fmt(ratio, 2)}×`
        : "–";
      const name = first ? `**${s.name}**<br>${s.title}` : "";
      first = false;
      lines.push(
        `| ${name} | ${metric.label} | ${cell(ours, metric.digits)} | ${
          cell(builtin, metric.digits)
        } | ${ratioText} |`,
      );
    }
  }
  return lines.join("\n");
}

/** One target of the issue, evaluated. */
export interface TargetResult {
  /** What is required. */
  target: string;
  /** The measured numbers behind the verdict. */
  measured: string;
  /** PASS, FAIL, or n/a (not measured in this run). */
  verdict: "PASS" | "FAIL" | "n/a";
}

/** Reference numbers for the built-in server given in the issue (this machine, one core). */
export const ISSUE_REFERENCE = {
  "fanout-1k-1": 156_000,
  "fanout-1k-16": 126_000,
  "fanout-10k-1": 114_000,
  rssPerConnKiB: 22,
  handshakesPerSec: 11_000,
};

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
  const judge = (scenario: string, have: boolean, ok: boolean): TargetResult["verdict"] =>
    !measured(scenario, "ours") || !measured(scenario, "builtin")
      ? "n/a"
      : !have || brokenRuns(results, scenario, "ours") > 0
      ? "FAIL"
      : ok
      ? "PASS"
      : "FAIL";
  const out: TargetResult[] = [];
  const push = (t: TargetResult, ...scenarioNames: string[]) => {
    for (const name of scenarioNames) t.measured += brokenNote(results, name);
    out.push(t);
  };
  const ratioTarget = (scenario: string, metric: string, factor: number, text: string) => {
    if (!names.has(scenario)) return;
    const ours = med(scenario, "ours", metric);
    const builtin = med(scenario, "builtin", metric);
    const ratio = ours / builtin;
    const ok = Number.isFinite(ratio);
    push({
      target: text,
      measured: ok
        ? `${fmt(ours)} vs ${fmt(builtin)} = ${fmt(ratio, 2)}×`
        : `ours ${fmt(ours)}, built-in ${fmt(builtin)}`,
      verdict: judge(scenario, ok, ratio >= factor),
    }, scenario);
  };
  ratioTarget(
    "fanout-1k-16",
    "deliveriesPerSec",
    5,
    "fan-out 1,000 clients, 16 in flight: ≥ 5× built-in deliveries/s",
  );
  ratioTarget(
    "fanout-1k-1",
    "deliveriesPerSec",
    1.3,
    "fan-out 1,000 clients, 1 in flight: ≥ 1.3× built-in",
  );
  ratioTarget(
    "fanout-10k-1",
    "deliveriesPerSec",
    1.3,
    "fan-out 10,000 clients, 1 in flight: ≥ 1.3× built-in",
  );
  for (const s of scenarios.filter((x) => x.kind === "fanout" && !x.role)) {
    const ours = med(s.name, "ours", "p99");
    const builtin = med(s.name, "builtin", "p99");
    const have = Number.isFinite(ours) && Number.isFinite(builtin);
    push({
      target: `${s.name}: p99 latency ≤ built-in p99`,
      measured: `${fmt(ours, 2)} ms vs ${fmt(builtin, 2)} ms`,
      verdict: judge(s.name, have, ours <= builtin),
    }, s.name);
  }
  if (names.has("idle")) {
    const ours = med("idle", "ours", "rssPerConnKiB");
    const builtin = med("idle", "builtin", "rssPerConnKiB");
    const have = Number.isFinite(ours) && Number.isFinite(builtin);
    out.push({
      target: "RSS per idle connection ≤ half of built-in",
      measured: `${fmt(ours, 1)} KiB vs ${fmt(builtin, 1)} KiB`,
      verdict: judge("idle", have, ours <= builtin / 2),
    });
    const hs = med("idle", "ours", "handshakesPerSec");
    const hsBuiltin = med("idle", "builtin", "handshakesPerSec");
    out.push({
      target: "handshakes/s ≥ built-in",
      measured: `${fmt(hs)}/s vs ${fmt(hsBuiltin)}/s`,
      verdict: judge("idle", Number.isFinite(hs) && Number.isFinite(hsBuiltin), hs >= hsBuiltin),
    });
  }
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

/** Our server with slow consumers: fast clients unaffected, slow ones dropped, memory bounded. */
function slowTargets(s: Scenario, results: RunResult[], maxQueueBytes: number): TargetResult[] {
  const base = s.baseline!;
  const plain = summarize(results, base, "ours", "deliveriesPerSec");
  const slow = summarize(results, s.name, "ours", "deliveriesPerSec");
  const plainP99 = summarize(results, base, "ours", "p99");
  const slowP99 = summarize(results, s.name, "ours", "p99");
  const dropped = summarize(results, s.name, "ours", "slowClosed1008");
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
      target: `${s.name}: all ${s.slow} slow clients closed with 1008 "slow consumer"`,
      measured: `${fmt(dropped.min)}–${fmt(dropped.max)} of ${s.slow} per run`,
      verdict: verdict(dropped.min === s.slow, dropped.runs > 0),
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
  for (const server of ["ours", "builtin"] as const) {
    const broken = brokenRuns(results, scenario, server);
    if (broken === 0) continue;
    const runs = results.filter((r) =>
      r.scenario === scenario && r.server === server && !r.skipped
    ).length;
    note += ` — ${SERVER_NAMES[server]}: ${broken} of ${runs} ${scenario} runs had errors`;
  }
  return note;
}

/** The targets as a Markdown table. */
export function targetsTable(targets: TargetResult[]): string {
  const lines = [
    "| target | measured (ours vs built-in, medians) | verdict |",
    "| --- | --- | --- |",
  ];
  for (const t of targets) lines.push(`| ${t.target} | ${t.measured} | **${t.verdict}** |`);
  return lines.join("\n");
}

/** Everything the Markdown report needs. */
export interface ReportInput {
  /** The machine. */
  machine: MachineInfo;
  /** Which version of our server was measured. */
  commit: string;
  /** The command that produced it. */
  command: string;
  /** How each server was started (with placeholder ports). */
  serverCommands: Record<ServerKind, string>;
  /** When the run started. */
  date: Date;
  /** Minutes it took. */
  minutes: number;
  /** Runs per scenario and server. */
  runs: number;
  /** The scenarios. */
  scenarios: Scenario[];
  /** Every run. */
  results: RunResult[];
  /** The evaluated targets. */
  targets: TargetResult[];
  /** Notes collected during the run. */
  notes: string[];
}

/** Marks the end of the generated part of docs/performance.md; what follows is kept. */
export const KEEP_MARKER = "<!-- bench: text below this line is kept by `deno task bench` -->";

/** Renders the generated part of docs/performance.md. */
export function renderReport(input: ReportInput): string {
  const { machine } = input;
  const runNotes = input.results.flatMap((r) => [
    ...(r.error ? [`${r.scenario} / ${SERVER_NAMES[r.server]} run ${r.rep}: ${r.error}`] : []),
    ...r.notes.map((n) => `${r.scenario} / ${SERVER_NAMES[r.server]} run ${r.rep}: ${n}`),
  ]);
  const reference = `~${
    fmt(ISSUE_REFERENCE["fanout-1k-1"])
  } deliveries/s at 1,000 clients with 1 in flight, ~${
    fmt(ISSUE_REFERENCE["fanout-1k-16"])
  } with 16, ~${
    fmt(ISSUE_REFERENCE["fanout-10k-1"])
  } at 10,000 clients; ~${ISSUE_REFERENCE.rssPerConnKiB} KiB RSS per idle connection; ~${
    fmt(ISSUE_REFERENCE.handshakesPerSec)
  } handshakes/s`;
  return `# Performance

Generated by \`bench/run.ts\` on ${input.date.toISOString()} in ${
    fmt(input.minutes, 1)
  } minutes. Our raw-TCP server ("ours") against a reference server with the same API built on
\`Deno.serve\` + \`Deno.upgradeWebSocket\` ("built-in", \`bench/reference_server.ts\`), driven by the
same load client (\`bench/load_client.ts\`). Each scenario ran ${input.runs}× per server, the two
servers alternating, each run on a freshly started server.

## Machine

- cores (\`nproc\`): ${machine.cores}; CPU: ${machine.cpu}; kernel ${machine.kernel}
- ${machine.deno}
- ${
    machine.taskset
      ? "each server pinned to core 1 and the load client to core 0 with `taskset`"
      : "`taskset` not found: processes were not pinned"
  }; open-file limit raised with \`ulimit -n\` (hard limit ${machine.hardFileLimit})
- loopback only (127.0.0.1)
- our server: commit ${input.commit}

## Command

\`\`\`sh
${input.command}
\`\`\`

The servers were started as (ports chosen free at each start; same flags for both):

\`\`\`sh
${input.serverCommands.ours}
${input.serverCommands.builtin}
\`\`\`

## Results

Medians over the runs, (min–max) across them; ratios are ours / built-in of the medians.
Latency is publish-to-delivery: the publisher stamps \`ts\`
(\`performance.timeOrigin + performance.now()\`) into the body right before sending the POST;
the client subtracts it from the time the read that carried the frame completed. Deliveries/s
counts frames received by all clients from the first publish to the last delivery. Server CPU is
the share of its one core used during the measured phase (near 100%: the server was the limit);
the load client's is shown so it can be seen not to be. "Other load" is CPU time used on the
machine by other processes during the measured phase (noise from whatever else ran).

${resultsTable(input.scenarios, input.results)}

## Targets

Reference numbers for the built-in server given in the issue (this machine, one server core):
${reference}. The targets compare against the built-in server measured in the same run.

${targetsTable(input.targets)}
${
    input.notes.length + runNotes.length > 0
      ? `\n## Notes from this run\n\n${
        [...input.notes, ...runNotes].map((n) => `- ${n}`).join("\n")
      }\n`
      : ""
  }
${KEEP_MARKER}
`;
}
