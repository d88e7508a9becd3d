/**
 * Turns the runner's per-run results into the comparison table and the Markdown report (the
 * PASS/FAIL targets are evaluated in `bench/targets.ts`).
 *
 * @module
 */
import type { MachineInfo } from "./proc.ts";
import type { Scenario } from "./scenarios.ts";
import { median, range } from "./stats.ts";

/**
 * Which server a run measured: ours, the two reference servers, or the floor of a server on
 * `Deno.Conn` (`bench/floor_server.ts`, idle and echo only).
 */
export type ServerKind = "ours" | "builtin" | "bun" | "floor";

/** Every server kind, in table order. */
export const SERVER_KINDS: ServerKind[] = ["ours", "builtin", "bun", "floor"];

/** The display names of the servers. */
export const SERVER_NAMES: Record<ServerKind, string> = {
  ours: "ours",
  builtin: "built-in",
  bun: "Bun",
  floor: "Deno floor",
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

const ALL: Scenario["kind"][] = ["idle", "fanout", "slow", "echo"];
const MEASURED: Scenario["kind"][] = ["fanout", "slow", "echo"];
const FANOUT: Scenario["kind"][] = ["fanout", "slow"];

/** The rows of the table, in order. */
export const METRICS: Metric[] = [
  m("rssPerConnKiB", "RSS per idle connection (KiB)", true, 1, ["idle"]),
  m("handshakesPerSec", "handshakes/s", true, 0, ["idle"]),
  m("rssConnectedMiB", "server RSS with all connected (MiB)", true, 1, ["idle"]),
  m("deliveriesPerSec", "deliveries/s", true, 0, FANOUT),
  m("wireBytesPerDelivery", "bytes read per delivery (frames + headers)", true, 0, FANOUT),
  m("roundTripsPerSec", "round trips/s", true, 0, ["echo"]),
  m("publishesPerSec", "publishes answered/s", true, 0, FANOUT),
  m("behindMs", "paced: latest publish behind schedule (ms)", false, 1, ["fanout"]),
  m("p50", "latency p50 (ms)", true, 2, MEASURED),
  m("p99", "latency p99 (ms)", true, 2, MEASURED),
  m("max", "latency max (ms)", true, 1, MEASURED),
  m("rssEndMiB", "server RSS at end (MiB)", true, 1, MEASURED),
  m("peakMiB", "server peak RSS (MiB)", true, 1, MEASURED),
  m("serverCpuPercent", "server CPU (% of its core)", true, 0, ALL),
  m("clientCpuPercent", "load client CPU (% of its core)", false, 0, ALL),
  m("clientCpuSeconds", "load client CPU (s) in the measured phase", false, 2, ALL),
  m("otherCpuPercent", "other load on the machine (% of a core)", false, 0, ALL),
  m("deliveryErrors", "delivery errors (gaps, dups, missing)", false, 0, MEASURED),
  m("sendReorders", "deliveries out of publish (send) order", false, 0, FANOUT),
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

/**
 * The comparison table in Markdown: one block of rows per scenario, a column per server in
 * `servers`, and ratios of ours against each other server.
 */
export function resultsTable(
  scenarios: Scenario[],
  results: RunResult[],
  servers: ServerKind[] = SERVER_KINDS.filter((k) => results.some((r) => r.server === k)),
): string {
  const shown = SERVER_KINDS.filter((k) => servers.includes(k));
  const others = shown.filter((k) => k !== "ours" && shown.includes("ours"));
  const lines = [
    `| scenario | metric | ${
      shown.map((k) => `${SERVER_NAMES[k]}: median (min–max)`).join(" | ")
    } |${others.map((k) => ` ours / ${SERVER_NAMES[k]} |`).join("")}`,
    `| --- | --- |${" ---: |".repeat(shown.length + others.length)}`,
  ];
  for (const s of scenarios) {
    let first = true;
    for (const metric of METRICS.filter((x) => x.kinds.includes(s.kind))) {
      const sums = shown.map((k) => summarize(results, s.name, k, metric.key));
      if (sums.every((x) => x.runs === 0)) continue;
      const ours = summarize(results, s.name, "ours", metric.key);
      const ratios = others.map((k) => {
        const theirs = summarize(results, s.name, k, metric.key);
        const ratio = ours.median / theirs.median;
        return metric.compare && Number.isFinite(ratio) && ours.runs > 0 && theirs.runs > 0
          ? `${fmt(ratio, 2)}×`
          : "–";
      });
      const name = first ? `**${s.name}**<br>${s.title}` : "";
      first = false;
      lines.push(
        `| ${name} | ${metric.label} | ${sums.map((x) => cell(x, metric.digits)).join(" | ")} |${
          ratios.map((r) => ` ${r} |`).join("")
        }`,
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

/** The targets as a Markdown table. */
export function targetsTable(targets: TargetResult[]): string {
  const lines = [
    "| target | measured (ours vs the other server, medians) | verdict |",
    "| --- | --- | --- |",
  ];
  for (const t of targets) lines.push(`| ${t.target} | ${t.measured} | **${t.verdict}** |`);
  return lines.join("\n");
}

/** Everything the Markdown report needs. */
export interface ReportInput {
  /** The machine. */
  machine: MachineInfo;
  /** Which load client drove the runs: "c" (`bench/loadgen/`) or "deno" (`bench/load_client.ts`). */
  client?: "c" | "deno";
  /** Which version of our server was measured. */
  commit: string;
  /** The command that produced it. */
  command: string;
  /** How each measured server was started (with placeholder ports). */
  serverCommands: Partial<Record<ServerKind, string>>;
  /** The servers measured, in order. */
  servers: ServerKind[];
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

/** The issue's table (issue 13, independent C load generator), shown in the report. */
export const ISSUE_TABLE = `| scenario | Bun | Deno built-in | ours (then) |
| --- | ---: | ---: | ---: |
| 1,000 clients, paced at 100/s: p50 / p99 | 7 / 22 ms | 18 / 28 ms | 11 / 170 ms |
| 1,000 clients, 1 POST in flight: deliveries/s, p99 | 136k, 20 ms | 99k, 24 ms | 166k, 715 ms |
| 10,000 clients, 1 POST in flight: deliveries/s, p99 | 109k, 225 ms | 86k, 286 ms | 357k, 2.6 s |
| 1,000 clients, 16 POSTs in flight: deliveries/s, p99 | 1.45M, 30 ms | 88k, 416 ms | 611k, 249 ms |
| 100 clients × 16 KiB: deliveries/s | 45k | 48k | 38k |
| echo, 100 clients, 64 B: round trips/s, p50 | 114k, 0.7 ms | 54k, 1.3 ms | 23k, 3.8 ms |
| 10,000 idle clients: KiB per connection; handshakes/s | 2.2; 16.9k | 21.6; 5.2k | 6.8; 8.3k |`;

/** Marks the end of the generated part of docs/performance.md; what follows is kept. */
export const KEEP_MARKER = "<!-- bench: text below this line is kept by `deno task bench` -->";

/** Renders the generated part of docs/performance.md. */
export function renderReport(input: ReportInput): string {
  const { machine } = input;
  const runNotes = input.results.flatMap((r) => [
    ...(r.error ? [`${r.scenario} / ${SERVER_NAMES[r.server]} run ${r.rep}: ${r.error}`] : []),
    ...r.notes.map((n) => `${r.scenario} / ${SERVER_NAMES[r.server]} run ${r.rep}: ${n}`),
  ]);
  return `# Performance

Generated by \`bench/run.ts\` on ${input.date.toISOString()} in ${
    fmt(input.minutes, 1)
  } minutes. Our raw-TCP server ("ours") against reference servers with the same API: one built
on \`Deno.serve\` + \`Deno.upgradeWebSocket\` ("built-in", \`bench/reference_server.ts\`) and,
where \`bun\` is installed, one on \`Bun.serve\` + \`server.publish\` ("Bun",
\`bench/bun_server.ts\`), all driven by the same load client (see Machine). "Deno floor"
(\`bench/floor_server.ts\`) is the least any server on \`Deno.Conn\` does (handshake, one read
pending, each echo written back unparsed): what the runtime itself allows, measured in the idle and
echo scenarios only. Servers measured: ${
    input.servers.map((k) => SERVER_NAMES[k]).join(", ")
  }. Each scenario ran ${input.runs}× per server, the servers alternating, each run on a freshly
started server.

## Machine

- cores (\`nproc\`): ${machine.cores}; CPU: ${machine.cpu}; kernel ${machine.kernel}
- ${machine.deno}
- ${
    machine.taskset
      ? "each server pinned to core 1 and the load client to core 0 with `taskset`"
      : "`taskset` not found: processes were not pinned"
  }; open-file limit raised with \`ulimit -n\` (hard limit ${machine.hardFileLimit})
- load client: ${
    input.client === "c"
      ? "C, one epoll process (`bench/loadgen/loadgen.c`, built with `cc -O2`)"
      : "Deno (`bench/load_client.ts`)"
  }
- loopback only (127.0.0.1)
- our server: commit ${input.commit}

## Command

\`\`\`sh
${input.command}
\`\`\`

The servers were started as (ports chosen free at each start; the same server flags for all, V8
flags for the Deno servers only):

\`\`\`sh
${input.servers.map((k) => input.serverCommands[k]).filter((c) => c).join("\n")}
\`\`\`

## Results

Medians over the runs, (min–max) across them; ratios are ours / the other server of the
medians. Latency is publish-to-delivery over every delivery to every client: the publisher stamps
\`ts\` (\`performance.timeOrigin + performance.now()\`) into the body right before writing the
POST; the client subtracts it from the time the read that carried the frame completed.
Deliveries/s counts frames received by all clients from the first publish to the last delivery.
"In flight" counts POSTs whose answer has not come back; a paced publisher writes publish i at
i / rate seconds whatever the answers do. Echo round trips are closed loop (each client sends its
next 64 B message when the last one came back); their latency is the round trip. "Out of publish
(send) order" counts, per client, deliveries whose POST was written before that of a message the
client had already received (ids still arrive in the server's order; this is the order the
publishes were sent in). Server CPU is the share of its one core used during the measured phase
(near 100%: the server was the limit); the load client's is shown so it can be seen not to be
(above 90% it may have been the limit, and the run is noted). "Other load" is CPU time used on
the machine by other processes during the measured phase (noise from whatever else ran).

${resultsTable(input.scenarios, input.results, input.servers)}

## Targets

The issue's figures (issue 13, measured with an independent C load generator on this machine,
one server core), for orientation; the targets compare against the servers measured in this run:

${ISSUE_TABLE}

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
