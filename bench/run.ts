/**
 * `deno task bench`: runs every scenario against our server and the reference servers (the
 * built-in one on `Deno.serve`, and one on `Bun.serve` where `bun` is installed), one after the
 * other on the same machine, ≥ 3 times each, and writes docs/performance.md.
 *
 * Options:
 * - `--quick`: small scenarios, 1 run each (a smoke run; the report goes to .artifacts/bench/)
 * - `--only=NAME[,NAME]`: scenarios by name or prefix (`idle`, `paced-1k`, `fanout`,
 *   `fanout-1k-16`, `echo-100`, `slow`, `overload-16k`, `fanout-4k-deflate`, `idle-deflate`)
 * - `--runs=N`: runs per scenario and server (default 3, 1 with --quick)
 * - `--servers=ours,builtin,bun,floor`: which servers (default all four; Bun is skipped with a
 *   note when `bun` is not on PATH; `floor`, `bench/floor_server.ts`, the least a server on
 *   `Deno.Conn` does, runs the plain idle and echo scenarios only)
 * - `--out=PATH`: where the report goes (default docs/performance.md for a full run of all
 *   scenarios, .artifacts/bench/performance.md otherwise)
 * - `--max-minutes=N`: stop starting new runs after N minutes (default 60; three servers × 3
 *   runs of the 10 scenarios take ~30 min on a quiet machine)
 * - `--cpu-prof`: run the servers with `deno run --cpu-prof` (profiles in .artifacts/bench/prof/)
 *   and print each run's top functions by self time
 * - `--v8-flags=A,B`: V8 flags for both servers (`deno run --v8-flags=A,B`); by default the ones
 *   `deno task start` ships with (deno.json), `--v8-flags=` for V8's defaults
 * - `--retries=N`: repeat a run up to N times when other processes loaded the machine during it
 *   (default 2; the quietest attempt is kept)
 * - `--client=c|deno`: the load client: `c` is `bench/loadgen/loadgen.c`, built with
 *   `cc -O2` into .artifacts/loadgen at the start (one epoll process, so the client is not the
 *   bottleneck against fast servers); `deno` is `bench/load_client.ts`. Default: `c` when `cc`
 *   builds it, else `deno`
 *
 * Each server is started through `bash -c 'ulimit -n …; exec taskset -c 1 deno run …'`; the load
 * client likewise on core 0. Every phase has a timeout; the client closes its connections and
 * every server is stopped (SIGTERM, then SIGKILL) at the end of its run.
 *
 * @module
 */
import { commandOutput, denoPath, machineInfo, productV8Flags, waitForQuiet } from "./proc.ts";
import { describeCommit, sourceHash } from "./code_version.ts";
import {
  fmt,
  KEEP_MARKER,
  renderReport,
  resultsTable,
  type RunResult,
  SERVER_KINDS,
  SERVER_NAMES,
  type ServerKind,
  targetsTable,
} from "./report.ts";
import {
  ARTIFACTS,
  buildLoadgen,
  type LoadClientKind,
  type RunContext,
  runOnce,
  SERVER_CORE,
  serverArgv,
} from "./run_once.ts";
import { CLIENT_BOUND_PERCENT, evaluateTargets } from "./targets.ts";
import {
  fullScenarios,
  MAX_QUEUE_BYTES,
  quickScenarios,
  type Scenario,
  selectScenarios,
} from "./scenarios.ts";

/** The load client's event reader (used by `bench/redis_run.ts` too). */
export { ClientEvents } from "./run_once.ts";

const ROOT = new URL("..", import.meta.url).pathname;
interface Options {
  quick: boolean;
  only?: string;
  runs: number;
  servers: ServerKind[];
  out?: string;
  maxMinutes: number;
  retries: number;
  cpuProf: boolean;
  v8Flags?: string;
  /** Whether --servers was given (else Bun is added when installed). */
  serversGiven: boolean;
  /** --client: the load client, or undefined for "c when it builds, else deno". */
  client?: LoadClientKind;
}

/**
 * Whether the floor server measures `scenario`: it answers handshakes, holds idle sockets and
 * echoes, nothing else (no API, no tokens, no compression).
 */
function floorMeasures(scenario: Scenario): boolean {
  return (scenario.kind === "idle" || scenario.kind === "echo") && !scenario.jwt &&
    !scenario.deflate;
}

function parseOptions(args: string[]): Options {
  const get = (name: string) =>
    args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
  const quick = args.includes("--quick");
  const servers = (get("servers") ?? SERVER_KINDS.join(",")).split(",").map((s) =>
    s === "ref" || s === "reference" ? "builtin" : s
  );
  for (const s of servers) {
    if (!(SERVER_KINDS as string[]).includes(s)) {
      throw new Error(`Unknown server "${s}" in --servers (ours, builtin, bun, floor).`);
    }
  }
  for (const a of args) {
    if (
      !/^--(quick|only=|runs=|servers=|out=|max-minutes=|retries=|cpu-prof$|v8-flags=|client=(c|deno)$)/
        .test(a)
    ) {
      throw new Error(`Unknown option ${a}. See the header of bench/run.ts.`);
    }
  }
  return {
    quick,
    only: get("only"),
    runs: Number(get("runs") ?? (quick ? 1 : 3)),
    servers: servers as ServerKind[],
    out: get("out"),
    maxMinutes: Number(get("max-minutes") ?? 60),
    retries: Number(get("retries") ?? 2),
    cpuProf: args.includes("--cpu-prof"),
    v8Flags: get("v8-flags") ?? productV8Flags(),
    serversGiven: get("servers") !== undefined,
    client: get("client") as LoadClientKind | undefined,
  };
}

/** Other processes using more than this share of a core during a run make it noisy. */
const NOISY_PERCENT = 25;

/**
 * Runs once after waiting for a quiet machine; when other processes still loaded it (this
 * machine is shared with test runs), runs again up to `retries` times and keeps the quietest.
 */
async function runQuietly(
  scenario: Scenario,
  kind: ServerKind,
  rep: number,
  context: RunContext,
  retries: number,
): Promise<RunResult> {
  let best: RunResult | null = null;
  for (let attempt = 0; attempt <= retries; attempt++) {
    const busy = await waitForQuiet();
    const r = await runOnce(scenario, kind, rep, context);
    if (busy > 0.15) {
      r.notes.push(`the machine was busy before the run (${fmt(busy * 100)}% of a core)`);
    }
    const other = r.metrics.otherCpuPercent ?? 0;
    if (best === null || (!r.error && other < (best.metrics.otherCpuPercent ?? 0))) best = r;
    if (r.skipped || r.error || other <= NOISY_PERCENT) break;
    if (attempt < retries) {
      console.log(`  ${SERVER_NAMES[kind].padEnd(8)} run ${rep}: ${fmt(other)}% other load, again`);
    }
  }
  const other = best!.metrics.otherCpuPercent ?? 0;
  if (other > NOISY_PERCENT) {
    best!.notes.push(`noisy: other processes used ${fmt(other)}% of a core`);
  }
  return best!;
}

function describe(r: RunResult): string {
  if (r.skipped) return `skipped: ${r.skipped}`;
  const m = r.metrics;
  const parts: string[] = [];
  if (m.rssPerConnKiB !== undefined) parts.push(`${fmt(m.rssPerConnKiB, 1)} KiB/conn`);
  if (m.handshakesPerSec !== undefined) parts.push(`${fmt(m.handshakesPerSec)} handshakes/s`);
  if (m.deliveriesPerSec !== undefined) parts.push(`${fmt(m.deliveriesPerSec)} deliveries/s`);
  if (m.roundTripsPerSec !== undefined) parts.push(`${fmt(m.roundTripsPerSec)} round trips/s`);
  if (m.p50 !== undefined) {
    parts.push(`p50 ${fmt(m.p50, 2)} p99 ${fmt(m.p99, 2)} max ${fmt(m.max, 1)} ms`);
  }
  if (m.behindMs !== undefined) parts.push(`${fmt(m.publishesPerSec)} publishes/s`);
  if (m.sendReorders > 0) parts.push(`${fmt(m.sendReorders)} out of send order`);
  if (m.deliveryErrors > 0) parts.push(`${fmt(m.deliveryErrors)} delivery errors`);
  parts.push(
    `server ${fmt(m.serverCpuPercent)}% client ${fmt(m.clientCpuPercent)}% CPU (${
      fmt(m.clientCpuSeconds, 2)
    } s)`,
  );
  if (m.clientCpuPercent > CLIENT_BOUND_PERCENT) parts.push("CLIENT-BOUND?");
  if (m.otherCpuPercent > 10) parts.push(`other load ${fmt(m.otherCpuPercent)}%`);
  if (r.error) parts.push(`ERROR: ${r.error}`);
  return parts.join(", ");
}

async function main(): Promise<void> {
  const options = parseOptions(Deno.args);
  const started = new Date();
  const t0 = performance.now();
  await Deno.mkdir(`${ROOT}${ARTIFACTS}`, { recursive: true });
  Deno.chdir(ROOT);
  const machine = await machineInfo();
  const commit = await describeCommit();
  const firstHash = await sourceHash();
  const all = options.quick ? quickScenarios() : fullScenarios();
  const scenarios = selectScenarios(all, options.only);
  if (scenarios.length === 0) throw new Error(`No scenario matches --only=${options.only}.`);
  const notes: string[] = [];
  const needFiles = Math.max(...scenarios.map((s) => s.clients + s.slow)) + 100;
  if (machine.hardFileLimit > 0 && machine.hardFileLimit < needFiles) {
    notes.push(
      `The hard open-file limit (${machine.hardFileLimit}) is below the ${needFiles} descriptors the largest scenario needs per process.`,
    );
  }
  if (!machine.taskset) notes.push("taskset was not found: processes were not pinned to cores.");
  // Bun is bench tooling (`npm install -g bun`), not part of the product: without it the Bun
  // reference server is skipped, with a note, and its targets are n/a.
  const bunPath = options.servers.includes("bun")
    ? await commandOutput("bash", ["-c", "command -v bun"])
    : "";
  if (options.servers.includes("bun") && !bunPath) {
    options.servers = options.servers.filter((k) => k !== "bun");
    const note = "bun was not found on PATH: the Bun reference server was skipped " +
      "(`npm install -g bun` to compare with it); its targets are n/a.";
    notes.push(note);
    console.log(note);
  }
  console.log(
    `${machine.cores} cores, ${machine.cpu}, ${machine.deno}; ${scenarios.length} scenarios × ${options.runs} runs × ${options.servers.length} servers`,
  );

  // The C load client when it builds (or when asked for); the Deno one otherwise, with a note.
  let client: LoadClientKind = options.client ?? "c";
  if (client === "c") {
    const built = await buildLoadgen();
    if (!built.ok && options.client === "c") throw new Error(`--client=c: ${built.why}`);
    if (!built.ok) {
      client = "deno";
      notes.push(`The C load client was not built (${built.why}): the Deno one was used.`);
    }
  }
  console.log(
    `load client: ${client === "c" ? "C (bench/loadgen)" : "Deno (bench/load_client.ts)"}`,
  );

  const results: RunResult[] = [];
  let oursLacksApi = "";
  const context: RunContext = {
    taskset: machine.taskset,
    cpuProf: options.cpuProf,
    v8Flags: options.v8Flags,
    bunPath,
    client,
  };
  if (options.cpuProf) await Deno.mkdir(`${ARTIFACTS}/prof`, { recursive: true });
  outer: for (const scenario of scenarios) {
    console.log(`\n${scenario.name}: ${scenario.title}`);
    for (let rep = 1; rep <= options.runs; rep++) {
      // Alternate which server goes first, so slow drift on the machine hits both alike.
      const order = rep % 2 === 1 ? options.servers : [...options.servers].reverse();
      for (const kind of order) {
        if ((performance.now() - t0) / 60_000 > options.maxMinutes) {
          notes.push(`Stopped after --max-minutes=${options.maxMinutes}: some runs are missing.`);
          break outer;
        }
        if (kind === "floor" && !floorMeasures(scenario)) continue; // it has no API
        if (kind === "ours" && oursLacksApi && scenario.kind !== "idle") {
          results.push({
            scenario: scenario.name,
            server: kind,
            rep,
            skipped: "no publish API",
            metrics: {},
            notes: [],
          });
          console.log(`  ${SERVER_NAMES[kind].padEnd(8)} run ${rep}: skipped: no publish API`);
          continue;
        }
        const hash = kind === "ours" ? await sourceHash() : undefined;
        const r = await runQuietly(scenario, kind, rep, context, options.retries);
        r.sourceHash = hash;
        if (kind === "ours" && r.skipped?.startsWith("no publish API")) {
          oursLacksApi = r.skipped;
        }
        results.push(r);
        console.log(`  ${SERVER_NAMES[kind].padEnd(8)} run ${rep}: ${describe(r)}`);
        for (const line of r.profileTop ?? []) console.log(`      ${line}`);
      }
    }
  }
  if (oursLacksApi) {
    const note = `NOTE: our server has ${oursLacksApi}, so its ` +
      "fan-out and slow-consumer scenarios were skipped; only the reference servers were measured there.";
    notes.unshift(note);
    console.log(`\n${note}`);
  }

  const hashes = [...new Set([firstHash, ...results.map((r) => r.sourceHash ?? firstHash)])];
  if (hashes.length > 1) {
    const note = `WARNING: our server's sources changed during this run (source hashes ${
      hashes.join(", ")
    }): its runs measured different versions; run again for a clean table.`;
    notes.unshift(note);
    console.log(`\n${note}`);
  }
  const targets = evaluateTargets(scenarios, results, MAX_QUEUE_BYTES);
  console.log(
    `\n${resultsTable(scenarios, results, options.servers)}\n\n${targetsTable(targets)}`,
  );
  for (const t of targets) console.log(`${t.verdict.padEnd(4)}  ${t.target}: ${t.measured}`);

  const minutes = (performance.now() - t0) / 60_000;
  // A full run measures every server it can: ours, built-in, and Bun unless it is missing.
  const fullRun = !options.quick && !options.only && !options.serversGiven &&
    !options.cpuProf && options.v8Flags === productV8Flags();
  const out = options.out ?? (fullRun ? "docs/performance.md" : `${ARTIFACTS}/performance.md`);
  const command = `deno task bench${
    Deno.args.length ? " " + Deno.args.join(" ") : ""
  }\n# = deno run --allow-net=127.0.0.1 --allow-read=. --allow-write=./docs,./.artifacts --allow-run --allow-env --allow-sys bench/run.ts${
    Deno.args.length ? " " + Deno.args.join(" ") : ""
  }`;
  const v8Flags = options.v8Flags ? [`--v8-flags=${options.v8Flags}`] : [];
  const show = (argv: string[]) =>
    `${machine.taskset ? `taskset -c ${SERVER_CORE} ` : ""}${
      argv.join(" ").replace(denoPath(), "deno")
    }`;
  let report = renderReport({
    machine,
    client,
    commit: `${commit}; sources (main.ts, src/) hash ${hashes.join(" → ")}`,
    command,
    serverCommands: Object.fromEntries(
      options.servers.map((k) => [
        k,
        show(serverArgv(k, 0, 0, v8Flags, "bun")).replace(
          "--ws-port 0 --http-port 0",
          "--ws-port A --http-port B",
        ),
      ]),
    ),
    servers: options.servers,
    date: started,
    minutes,
    runs: options.runs,
    scenarios,
    results,
    targets,
    notes,
  });
  try {
    const previous = await Deno.readTextFile(out);
    const kept = previous.indexOf(KEEP_MARKER);
    if (kept >= 0) report += previous.slice(kept + KEEP_MARKER.length).replace(/^\n/, "");
  } catch {
    // No previous report.
  }
  await Deno.writeTextFile(out, report);
  // `deno task check` runs `deno fmt --check` over the repository, docs included.
  await new Deno.Command(denoPath(), { args: ["fmt", "--quiet", out] }).output().catch(() => {});
  await Deno.writeTextFile(
    `${ARTIFACTS}/results.json`,
    JSON.stringify({ started, machine, options, results, targets }, null, 2),
  );
  console.log(`\nWrote ${out} (and ${ARTIFACTS}/results.json) in ${fmt(minutes, 1)} minutes.`);
}

if (import.meta.main) await main();
