/**
 * `deno task bench`: runs every scenario against our server and the reference server, one
 * after the other on the same machine, ≥ 3 times each, and writes docs/performance.md.
 *
 * Options:
 * - `--quick`: small scenarios, 1 run each (a smoke run; the report goes to .artifacts/bench/)
 * - `--only=NAME[,NAME]`: scenarios by name or prefix (`idle`, `fanout`, `fanout-1k-16`, `slow`)
 * - `--runs=N`: runs per scenario and server (default 3, 1 with --quick)
 * - `--servers=ours,builtin`: which servers (default both)
 * - `--out=PATH`: where the report goes (default docs/performance.md for a full run of all
 *   scenarios, .artifacts/bench/performance.md otherwise)
 * - `--max-minutes=N`: stop starting new runs after N minutes (default 25)
 * - `--cpu-prof`: run the servers with `deno run --cpu-prof` (profiles in .artifacts/bench/prof/)
 *   and print each run's top functions by self time
 * - `--v8-flags=A,B`: V8 flags for both servers (`deno run --v8-flags=A,B`); by default the ones
 *   `deno task start` ships with (deno.json), `--v8-flags=` for V8's defaults
 * - `--retries=N`: repeat a run up to N times when other processes loaded the machine during it
 *   (default 2; the quietest attempt is kept)
 *
 * Each server is started through `bash -c 'ulimit -n …; exec taskset -c 1 deno run …'`; the load
 * client likewise on core 0. Every phase has a timeout; the client closes its connections and
 * every server is stopped (SIGTERM, then SIGKILL) at the end of its run.
 *
 * @module
 */
import { DEFAULT_LOAD, type LoadConfig } from "./load_client.ts";
import {
  denoPath,
  freePorts,
  lines,
  machineInfo,
  productV8Flags,
  readCpuSeconds,
  readMachineBusySeconds,
  readMemory,
  sleep,
  spawnPinned,
  stop,
  waitForQuiet,
  within,
} from "./proc.ts";
import { describeCommit, sourceHash } from "./code_version.ts";
import { Publisher } from "./http_publisher.ts";
import { summarizeProfile } from "./profile_top.ts";
import {
  evaluateTargets,
  fmt,
  KEEP_MARKER,
  renderReport,
  resultsTable,
  type RunResult,
  SERVER_NAMES,
  type ServerKind,
  targetsTable,
} from "./report.ts";
import {
  fullScenarios,
  MAX_QUEUE_BYTES,
  quickScenarios,
  type Scenario,
  selectScenarios,
} from "./scenarios.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const ARTIFACTS = ".artifacts/bench";
const SERVER_CORE = 1;
const CLIENT_CORE = 0;

/** Flags both servers get (ports are added per start). */
const SERVER_FLAGS = ["--demo", "false", "--log-level", "warn", "--max-clients", "20000"];

function serverArgv(
  kind: ServerKind,
  wsPort: number,
  httpPort: number,
  denoFlags: string[] = [],
): string[] {
  const flags = ["--ws-port", String(wsPort), "--http-port", String(httpPort), ...SERVER_FLAGS];
  return kind === "ours"
    ? [
      denoPath(),
      "run",
      ...denoFlags,
      "--allow-net",
      "--allow-read=./static",
      "--allow-env=PUSH_*",
      "main.ts",
      ...flags,
    ]
    : [
      denoPath(),
      "run",
      ...denoFlags,
      "--allow-net=127.0.0.1",
      "--allow-env=PUSH_*",
      "bench/reference_server.ts",
      ...flags,
    ];
}

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
}

function parseOptions(args: string[]): Options {
  const get = (name: string) =>
    args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
  const quick = args.includes("--quick");
  const servers = (get("servers") ?? "ours,builtin").split(",").map((s) =>
    s === "ref" || s === "reference" ? "builtin" : s
  );
  for (const s of servers) {
    if (s !== "ours" && s !== "builtin") throw new Error(`Unknown server "${s}" in --servers.`);
  }
  for (const a of args) {
    if (!/^--(quick|only=|runs=|servers=|out=|max-minutes=|retries=|cpu-prof$|v8-flags=)/.test(a)) {
      throw new Error(`Unknown option ${a}. See the header of bench/run.ts.`);
    }
  }
  return {
    quick,
    only: get("only"),
    runs: Number(get("runs") ?? (quick ? 1 : 3)),
    servers: servers as ServerKind[],
    out: get("out"),
    maxMinutes: Number(get("max-minutes") ?? 25),
    retries: Number(get("retries") ?? 2),
    cpuProf: args.includes("--cpu-prof"),
    v8Flags: get("v8-flags") ?? productV8Flags(),
  };
}

/** Reads the load client's JSON lines and hands them out by event name. */
export class ClientEvents {
  readonly #events: Record<string, unknown>[] = [];
  readonly #waiters: (() => void)[] = [];
  #ended = false;

  constructor(stdout: ReadableStream<Uint8Array>) {
    (async () => {
      for await (const line of lines(stdout)) {
        if (!line.startsWith("{")) continue;
        this.#events.push(JSON.parse(line));
        for (const w of this.#waiters.splice(0)) w();
      }
    })().catch(() => {}).finally(() => {
      this.#ended = true;
      for (const w of this.#waiters.splice(0)) w();
    });
  }

  /** The next event named `name`; throws on an `error` event, on exit, or after `timeoutMs`. */
  async next(name: string, timeoutMs: number): Promise<Record<string, unknown>> {
    const deadline = performance.now() + timeoutMs;
    while (true) {
      const i = this.#events.findIndex((e) => e.event === name || e.event === "error");
      if (i >= 0) {
        const [event] = this.#events.splice(i, 1);
        if (event.event === "error") throw new Error(`load client: ${event.message}`);
        return event;
      }
      if (this.#ended) throw new Error(`load client exited before "${name}"`);
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for "${name}"`);
      await within(new Promise<void>((r) => this.#waiters.push(r)), left, undefined);
    }
  }
}

/** Waits until the server accepts TCP on both ports; then probes `POST /publish`. */
async function waitReady(
  child: Deno.ChildProcess,
  wsPort: number,
  httpPort: number,
): Promise<{ api: boolean; status: number }> {
  let exited = false;
  child.status.then(() => exited = true);
  const deadline = performance.now() + 20_000;
  while (true) {
    if (exited) throw new Error("the server exited during startup (see its log)");
    if (performance.now() > deadline) throw new Error("the server did not start within 20 s");
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port: wsPort })).close();
      const publisher = await Publisher.connect(httpPort);
      try {
        const { status } = await publisher.post(
          "/publish?channel=bench-probe",
          "application/json",
          () => "{}",
        );
        return { api: status === 200, status };
      } finally {
        publisher.close();
      }
    } catch {
      await sleep(100);
    }
  }
}

/** Runs one scenario once against one server. */
async function runOnce(
  scenario: Scenario,
  kind: ServerKind,
  rep: number,
  options: RunContext,
): Promise<RunResult> {
  const { taskset } = options;
  const result: RunResult = { scenario: scenario.name, server: kind, rep, metrics: {}, notes: [] };
  const [wsPort, httpPort] = freePorts(2);
  const tag = `${scenario.name}-${kind}-${rep}`;
  const profile = `${ARTIFACTS}/prof/${tag}.cpuprofile`;
  const profFlags = options.cpuProf
    ? ["--cpu-prof", `--cpu-prof-dir=${ARTIFACTS}/prof`, `--cpu-prof-name=${tag}.cpuprofile`]
    : [];
  if (options.v8Flags) profFlags.push(`--v8-flags=${options.v8Flags}`); // both servers alike
  const server = spawnPinned({
    argv: serverArgv(kind, wsPort, httpPort, profFlags),
    core: SERVER_CORE,
    stderrFile: `${ARTIFACTS}/${tag}.server.log`,
  }, taskset);
  let client: Deno.ChildProcess | null = null;
  try {
    const { api, status } = await waitReady(server, wsPort, httpPort);
    if (!api && scenario.kind !== "idle") {
      result.skipped = `no publish API (POST /publish answered ${status})`;
      return result;
    }
    await sleep(500); // let startup garbage settle before the baseline memory sample
    const before = await readMemory(server.pid);
    const config: LoadConfig = {
      ...DEFAULT_LOAD,
      wsPort,
      httpPort,
      channel: `bench-${scenario.name}-${rep}`,
      clients: scenario.clients,
      slow: scenario.slow,
      messages: scenario.messages,
      size: scenario.size,
      inflight: scenario.inflight,
      idle: scenario.kind === "idle",
    };
    client = spawnPinned({
      argv: [
        denoPath(),
        "run",
        "--allow-net=127.0.0.1",
        "--allow-read=/proc/self/stat",
        "bench/load_client.ts",
        JSON.stringify(config),
      ],
      core: CLIENT_CORE,
      stdin: true,
      stdout: true,
      stderrFile: `${ARTIFACTS}/${tag}.client.log`,
    }, taskset);
    const events = new ClientEvents(client.stdout);
    const stdin = client.stdin.getWriter();
    const say = (word: string) => stdin.write(new TextEncoder().encode(word + "\n"));

    const machine0 = await readMachineBusySeconds();
    const clientCpu0 = await readCpuSeconds(client.pid);
    const serverCpu0 = await readCpuSeconds(server.pid);
    const t0 = performance.now();
    const connected = await events.next("connected", 120_000);
    if (Number(connected.failures) > 0) {
      result.error = `${connected.failures} handshakes failed, e.g. ${connected.firstFailure}`;
    }
    result.metrics.handshakesPerSec = Number(connected.handshakesPerSec);

    const noise = async (since: number, serverCpu: number, clientCpu: number, from: number) => {
      const seconds = (performance.now() - from) / 1000;
      const busy = (await readMachineBusySeconds()) - since;
      const ours = (await readCpuSeconds(server.pid)) - serverCpu +
        (await readCpuSeconds(client!.pid)) - clientCpu;
      return (100 * Math.max(0, busy - ours)) / seconds;
    };

    if (scenario.kind === "idle") {
      // The server idles while the client starts, so its CPU time over the connect phase's
      // length is its load during the handshakes.
      result.metrics.serverCpuPercent = (100 * ((await readCpuSeconds(server.pid)) - serverCpu0)) /
        Number(connected.seconds);
      result.metrics.clientCpuPercent = Number(connected.clientCpuPercent);
      result.metrics.otherCpuPercent = await noise(machine0, serverCpu0, clientCpu0, t0);
      await sleep(1000); // idle for a second: what the connections cost at rest
      const after = await readMemory(server.pid);
      const n = Number(connected.connected);
      result.metrics.rssPerConnKiB = (after.rssKiB - before.rssKiB) / n;
      result.metrics.rssConnectedMiB = after.rssKiB / 1024;
    } else {
      await sleep(200);
      const m0 = await readMachineBusySeconds();
      const s0 = await readCpuSeconds(server.pid);
      const c0 = await readCpuSeconds(client.pid);
      const t1 = performance.now();
      await say("go");
      const r = await events.next("result", DEFAULT_LOAD.timeoutMs + 30_000);
      const seconds = (performance.now() - t1) / 1000;
      result.metrics.serverCpuPercent = (100 * ((await readCpuSeconds(server.pid)) - s0)) /
        seconds;
      result.metrics.otherCpuPercent = await noise(m0, s0, c0, t1);
      const mem = await readMemory(server.pid);
      result.metrics.rssEndMiB = mem.rssKiB / 1024;
      result.metrics.peakMiB = mem.peakKiB / 1024;
      const latency = r.latency as Record<string, number>;
      const errors = r.errors as Record<string, number>;
      result.metrics.deliveriesPerSec = Number(r.deliveriesPerSec);
      result.metrics.p50 = latency.p50;
      result.metrics.p99 = latency.p99;
      result.metrics.max = latency.max;
      result.metrics.clientCpuPercent = Number(r.clientCpuPercent);
      result.metrics.deliveryErrors = errors.gaps + errors.duplicates + errors.malformed +
        errors.missingTs + errors.unexpectedFrames + errors.incompleteClients;
      result.latencyTimeline = r.latencyTimeline as number[][];
      if (r.outcome !== "done") result.error = `measured phase ${r.outcome}`;
      if (result.metrics.deliveryErrors > 0 || errors.closedClients > 0) {
        result.notes.push(`delivery errors: ${JSON.stringify(errors)}`);
      }
      const publish = r.publish as Record<string, unknown> | null;
      if (publish && Number(publish.failures) > 0) {
        result.notes.push(`publish failures: ${publish.failures} (${publish.firstFailure})`);
      }
      if (scenario.slow > 0) {
        await say("drain");
        const slow = await events.next("slow", DEFAULT_LOAD.drainMs + 20_000);
        const closes = slow.closes as Record<string, number>;
        result.metrics.slowClosed1008 = Object.entries(closes)
          .filter(([k]) => k.startsWith("1008")).reduce((n, [, v]) => n + v, 0);
        result.notes.push(
          `slow clients: ${
            JSON.stringify(closes)
          }; each had received ${slow.receivedMin}–${slow.receivedMax} of ${scenario.messages} messages; server RSS ${
            fmt(result.metrics.rssEndMiB, 1)
          } MiB (peak ${fmt(result.metrics.peakMiB, 1)} MiB) before they read`,
        );
      }
    }
    await say("close");
    await events.next("closed", 15_000).catch((err) => result.notes.push(String(err)));
    await stdin.close().catch(() => {});
  } catch (err) {
    result.error = err instanceof Error ? err.message : String(err);
  } finally {
    if (client) await stop(client, 5000);
    await stop(server, 5000);
  }
  if (options.cpuProf) result.profileTop = await profileTop(profile);
  return result;
}

/** How runs are made. */
interface RunContext {
  /** Pin with taskset. */
  taskset: boolean;
  /** Profile the servers. */
  cpuProf: boolean;
  /** V8 flags for both servers. */
  v8Flags?: string;
}

/** The 8 functions with most self time in a server's profile, as "12.3% name" lines. */
async function profileTop(path: string): Promise<string[]> {
  try {
    const rows = summarizeProfile(JSON.parse(await Deno.readTextFile(path)), true);
    return rows.filter((r) => r.name !== "(root)").sort((a, b) => b.selfPercent - a.selfPercent)
      .slice(0, 8).map((r) => `${r.selfPercent.toFixed(1)}% of busy samples: ${r.name}`);
  } catch (err) {
    return [`no profile: ${err instanceof Error ? err.message : err}`];
  }
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
  if (m.deliveriesPerSec !== undefined) {
    parts.push(
      `${fmt(m.deliveriesPerSec)} deliveries/s`,
      `p50 ${fmt(m.p50, 2)} p99 ${fmt(m.p99, 2)} max ${fmt(m.max, 1)} ms`,
    );
  }
  parts.push(`server ${fmt(m.serverCpuPercent)}% client ${fmt(m.clientCpuPercent)}% CPU`);
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
  console.log(
    `${machine.cores} cores, ${machine.cpu}, ${machine.deno}; ${scenarios.length} scenarios × ${options.runs} runs × ${options.servers.length} servers`,
  );

  const results: RunResult[] = [];
  let oursLacksApi = "";
  const context: RunContext = {
    taskset: machine.taskset,
    cpuProf: options.cpuProf,
    v8Flags: options.v8Flags,
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
      "fan-out and slow-consumer scenarios were skipped; only the built-in server was measured there.";
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
  console.log(`\n${resultsTable(scenarios, results)}\n\n${targetsTable(targets)}`);
  for (const t of targets) console.log(`${t.verdict.padEnd(4)}  ${t.target}: ${t.measured}`);

  const minutes = (performance.now() - t0) / 60_000;
  const fullRun = !options.quick && !options.only && options.servers.length === 2 &&
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
    commit: `${commit}; sources (main.ts, src/) hash ${hashes.join(" → ")}`,
    command,
    serverCommands: {
      ours: show(serverArgv("ours", 0, 0, v8Flags)).replace(
        "--ws-port 0 --http-port 0",
        "--ws-port A --http-port B",
      ),
      builtin: show(serverArgv("builtin", 0, 0, v8Flags)).replace(
        "--ws-port 0 --http-port 0",
        "--ws-port A --http-port B",
      ),
    },
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
