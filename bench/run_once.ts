/**
 * One run of one scenario against one freshly started server: start it pinned to its core,
 * start the load client pinned to the other, sample memory and CPU around each phase, and turn
 * the client's JSON events into a {@linkcode RunResult}. Used by `bench/run.ts`.
 *
 * @module
 */
import { hmacSigningKey, signToken } from "../src/push/jwt_sign.ts";
import { DEFAULT_LOAD, type LoadConfig } from "./load_client.ts";
import {
  denoPath,
  freePorts,
  lines,
  readCpuSeconds,
  readMachineBusySeconds,
  readMemory,
  sleep,
  spawnPinned,
  stop,
  within,
} from "./proc.ts";
import { Publisher } from "./http_publisher.ts";
import { summarizeProfile } from "./profile_top.ts";
import { fmt, type RunResult, type ServerKind } from "./report.ts";
import type { Scenario } from "./scenarios.ts";
import { CLIENT_BOUND_PERCENT } from "./targets.ts";

/** Where logs, profiles and raw results go. */
export const ARTIFACTS = ".artifacts/bench";
/** The core every server is pinned to. */
export const SERVER_CORE = 1;
/** The core the load client is pinned to. */
export const CLIENT_CORE = 0;

/** Flags every server gets (ports are added per start). */
export const SERVER_FLAGS = ["--demo", "false", "--log-level", "warn", "--max-clients", "20000"];

/**
 * The command line of a server. `denoFlags` (profiling, V8 flags) go to the Deno servers only;
 * Bun runs `bench/bun_server.ts` with `bunPath` (bench tooling, not part of the product).
 */
export function serverArgv(
  kind: ServerKind,
  wsPort: number,
  httpPort: number,
  denoFlags: string[] = [],
  bunPath = "bun",
  extraFlags: string[] = [],
): string[] {
  const flags = [
    "--ws-port",
    String(wsPort),
    "--http-port",
    String(httpPort),
    ...SERVER_FLAGS,
    ...extraFlags,
  ];
  if (kind === "bun") return [bunPath, "run", "bench/bun_server.ts", ...flags];
  if (kind === "floor") {
    return [
      denoPath(),
      "run",
      ...denoFlags,
      "--allow-net=127.0.0.1",
      "bench/floor_server.ts",
      ...flags,
    ];
  }
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

/** Which load client drives the runs: the C epoll one (`bench/loadgen/`) or the Deno one. */
export type LoadClientKind = "c" | "deno";

/** Where the runner builds the C load client. */
export const LOADGEN_PATH = ".artifacts/loadgen";

/**
 * Builds the C load client (`cc -O2`, libc only); false when there is no `cc` or the build
 * fails (`why` says which).
 */
export async function buildLoadgen(): Promise<{ ok: boolean; why: string }> {
  try {
    const out = await new Deno.Command("cc", {
      args: ["-O2", "-o", LOADGEN_PATH, "bench/loadgen/loadgen.c"],
      stdout: "null",
      stderr: "piped",
    }).output();
    const why = new TextDecoder().decode(out.stderr).trim();
    return { ok: out.success, why: out.success ? "" : `cc failed: ${why.slice(0, 500)}` };
  } catch (err) {
    return { ok: false, why: `no cc: ${err instanceof Error ? err.message : err}` };
  }
}

/** The LoadConfig fields bench/loadgen/loadgen.c implements (others must be off: false, 0). */
const LOADGEN_FIELDS = new Set([
  "wsPort",
  "wsPorts",
  "httpPort",
  "channel",
  "path",
  "clients",
  "slow",
  "messages",
  "seconds",
  "size",
  "inflight",
  "rate",
  "echo",
  "echoWarmup",
  "idle",
  "connectConcurrency",
  "stallMs",
  "timeoutMs",
  "drainMs",
]);

/** Whether the C load client can run `config` (no field it lacks is switched on). */
export function loadgenSupports(config: LoadConfig): boolean {
  return Object.entries(config).every(([k, v]) => LOADGEN_FIELDS.has(k) || !v);
}

/**
 * The load client's command line for `config`: the C one when asked for and it supports every
 * field that is switched on (a scenario it cannot run falls back to the Deno client).
 */
export function clientArgv(kind: LoadClientKind, config: LoadConfig): string[] {
  if (kind === "c" && loadgenSupports(config)) return [LOADGEN_PATH, JSON.stringify(config)];
  return [
    denoPath(),
    "run",
    "--allow-net=127.0.0.1",
    "--allow-read=/proc/self/stat",
    "bench/load_client.ts",
    JSON.stringify(config),
  ];
}

/** How runs are made. */
export interface RunContext {
  /** The load client (default: the Deno one). */
  client?: LoadClientKind;
  /** Pin with taskset. */
  taskset: boolean;
  /** Profile the Deno servers. */
  cpuProf: boolean;
  /** V8 flags for the Deno servers. */
  v8Flags?: string;
  /** The `bun` executable, when the Bun reference server is run. */
  bunPath?: string;
}

/** The secret of the `jwt` scenarios (a benchmark's, not a real one). */
const BENCH_JWT_SECRET = "bench-secret-that-is-at-least-32-bytes-long";

/** An HS256 token for every channel, valid for an hour. */
async function benchToken(): Promise<string> {
  const key = await hmacSigningKey(BENCH_JWT_SECRET, "HS256");
  const now = Math.floor(Date.now() / 1000);
  return signToken({ sub: "bench", iat: now, exp: now + 3600, channels: ["*"] }, key, "HS256");
}

/** Runs one scenario once against one server. */
export async function runOnce(
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
  const profiling = options.cpuProf && kind !== "bun";
  const denoFlags = profiling
    ? ["--cpu-prof", `--cpu-prof-dir=${ARTIFACTS}/prof`, `--cpu-prof-name=${tag}.cpuprofile`]
    : [];
  if (options.v8Flags) denoFlags.push(`--v8-flags=${options.v8Flags}`); // both Deno servers alike
  if (scenario.jwt && kind !== "ours") {
    result.skipped = "no token verification in this server";
    return result;
  }
  if (scenario.deflate && kind !== "ours") {
    result.skipped = "no permessage-deflate in this server";
    return result;
  }
  const extraFlags = [
    ...(scenario.jwt ? ["--jwt-secret", BENCH_JWT_SECRET] : []),
    ...(scenario.deflate ? ["--deflate"] : []),
  ];
  const server = spawnPinned({
    argv: serverArgv(kind, wsPort, httpPort, denoFlags, options.bunPath, extraFlags),
    core: SERVER_CORE,
    stderrFile: `${ARTIFACTS}/${tag}.server.log`,
  }, taskset);
  let client: Deno.ChildProcess | null = null;
  try {
    const { api, status } = await waitReady(server, wsPort, httpPort);
    if (!api && scenario.kind !== "idle" && scenario.kind !== "echo") {
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
      // One token for every client: verifying it is the same work whoever presents it.
      ...(scenario.jwt
        ? {
          path: `/?channels=bench-${scenario.name}-${rep}&demo=false&token=${await benchToken()}`,
        }
        : {}),
      clients: scenario.clients,
      slow: scenario.slow,
      messages: scenario.messages,
      size: scenario.size,
      inflight: scenario.inflight,
      rate: scenario.rate,
      seconds: scenario.seconds,
      echo: scenario.kind === "echo",
      idle: scenario.kind === "idle",
      deflate: scenario.deflate ?? false,
      realisticBody: scenario.realisticBody ?? false,
    };
    if (options.client === "c" && !loadgenSupports(config)) {
      result.notes.push("the C load client lacks an option this scenario sets: the Deno one ran");
    }
    client = spawnPinned({
      argv: clientArgv(options.client ?? "deno", config),
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
      result.metrics.clientCpuSeconds = (Number(connected.clientCpuPercent) *
        Number(connected.seconds)) / 100;
      result.metrics.otherCpuPercent = await noise(machine0, serverCpu0, clientCpu0, t0);
      await sleep(1000); // idle for a second: what the connections cost at rest
      const after = await readMemory(server.pid);
      const n = Number(connected.connected);
      result.metrics.rssPerConnKiB = (after.rssKiB - before.rssKiB) / n;
      result.metrics.rssConnectedMiB = after.rssKiB / 1024;
    } else {
      await measuredPhase(scenario, result, server, client, events, say, noise, httpPort);
    }
    if ((result.metrics.clientCpuPercent ?? 0) > CLIENT_BOUND_PERCENT) {
      result.notes.push(
        `client-bound?: the load client used ${
          fmt(result.metrics.clientCpuPercent)
        }% of its core, so it may have been the bottleneck`,
      );
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
  if (profiling) result.profileTop = await profileTop(profile);
  return result;
}

/** The fan-out, slow-consumer or echo phase: `go`, the client's `result`, then `drain`. */
async function measuredPhase(
  scenario: Scenario,
  result: RunResult,
  server: Deno.ChildProcess,
  client: Deno.ChildProcess,
  events: ClientEvents,
  say: (word: string) => Promise<void>,
  noise: (since: number, serverCpu: number, clientCpu: number, from: number) => Promise<number>,
  httpPort: number,
): Promise<void> {
  await sleep(200);
  const m0 = await readMachineBusySeconds();
  const s0 = await readCpuSeconds(server.pid);
  const c0 = await readCpuSeconds(client.pid);
  const t1 = performance.now();
  await say("go");
  // Sampled when the phase ended, before the client spends seconds sorting its samples.
  await events.next("ended", DEFAULT_LOAD.timeoutMs + 30_000);
  const seconds = (performance.now() - t1) / 1000;
  result.metrics.serverCpuPercent = (100 * ((await readCpuSeconds(server.pid)) - s0)) / seconds;
  result.metrics.otherCpuPercent = await noise(m0, s0, c0, t1);
  const r = await events.next("result", 60_000);
  const mem = await readMemory(server.pid);
  result.metrics.rssEndMiB = mem.rssKiB / 1024;
  result.metrics.peakMiB = mem.peakKiB / 1024;
  const latency = r.latency as Record<string, number>;
  const errors = r.errors as Record<string, number>;
  const rate = Number(r.deliveriesPerSec);
  if (scenario.kind === "echo") result.metrics.roundTripsPerSec = rate;
  else result.metrics.deliveriesPerSec = rate;
  result.metrics.p50 = latency.p50;
  result.metrics.p99 = latency.p99;
  result.metrics.max = latency.max;
  result.metrics.clientCpuPercent = Number(r.clientCpuPercent);
  result.metrics.clientCpuSeconds = Number(r.clientCpuSeconds);
  result.metrics.deliveryErrors = errors.gaps + errors.duplicates + errors.malformed +
    errors.missingTs + errors.unexpectedFrames + errors.incompleteClients;
  result.latencyTimeline = r.latencyTimeline as number[][];
  if (r.outcome !== "done") result.error = `measured phase ${r.outcome}`;
  if (result.metrics.deliveryErrors > 0 || errors.closedClients > 0) {
    result.notes.push(`delivery errors: ${JSON.stringify(errors)}`);
  }
  const publish = r.publish as Record<string, number | string> | null;
  const deliveries = Number(r.deliveries);
  if (deliveries > 0) result.metrics.wireBytesPerDelivery = Number(r.wireBytes) / deliveries;
  if (scenario.deflate) {
    result.notes.push(
      `permessage-deflate: ${r.compressed} of ${deliveries} deliveries compressed; the client ` +
        `inflated ${r.inflatedPrefixes} message starts (one per distinct compressed message)`,
    );
  }
  if (publish) {
    result.metrics.deliveries = Number(r.deliveries);
    result.metrics.sendReorders = Number(r.sendReorders);
    result.metrics.publishesPerSec = Number(publish.perSecond);
    if (scenario.rate > 0) result.metrics.behindMs = Number(publish.maxBehindMs);
    if (Number(publish.failures) > 0) {
      result.notes.push(`publish failures: ${publish.failures} (${publish.firstFailure})`);
    }
  }
  if (scenario.slow > 0) {
    await say("drain");
    const slow = await events.next("slow", DEFAULT_LOAD.drainMs + 20_000);
    const closes = slow.closes as Record<string, number>;
    result.metrics.slowClosed1008 = Object.entries(closes)
      .filter(([k]) => k.startsWith("1008")).reduce((n, [, v]) => n + v, 0);
    result.metrics.slowClosedEof = closes.eof ?? 0;
    // A client that reads nothing gets its 1008 only if it starts reading before --close-timeout
    // ends the wait for its reply: the close frame sits behind the ~4 MB the kernel still holds
    // for it. So what the server decided is read from its own counter of slow-consumer closes.
    result.metrics.slowClosedByServer = await slowConsumerCount(httpPort);
    result.notes.push(
      `slow clients: ${
        JSON.stringify(closes)
      }; each had received ${slow.receivedMin}–${slow.receivedMax} of ${scenario.messages} messages; server RSS ${
        fmt(result.metrics.rssEndMiB, 1)
      } MiB (peak ${fmt(result.metrics.peakMiB, 1)} MiB) before they read`,
    );
  }
}

/** Our server's `push_slow_consumer_disconnects_total` (0 from a server without it). */
async function slowConsumerCount(httpPort: number): Promise<number> {
  try {
    const response = await fetch(`http://127.0.0.1:${httpPort}/metrics`);
    const text = await response.text();
    const line = /^push_slow_consumer_disconnects_total (\d+)$/m.exec(text);
    return line ? Number(line[1]) : 0;
  } catch {
    return 0;
  }
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
