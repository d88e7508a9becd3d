/**
 * Fan-out through Redis (`deno task bench:redis`): the same clients and publishes against
 *
 * - one instance with the in-process hub (no Redis),
 * - one instance with `--redis`,
 * - two instances with `--redis`, half the clients on each, every publish sent to the first,
 *
 * in the same run, 3 runs each, medians and spread. The results replace the "Several instances
 * through Redis" section of docs/performance.md.
 *
 * Nothing is pinned: two servers, redis-server and the load client share the machine's two cores,
 * which is the point of the comparison (what Redis costs on the same hardware).
 *
 * @module
 */
import { startRedisServer } from "../tests/support/redis_server.ts";
import { DEFAULT_LOAD, type LoadConfig } from "./load_client.ts";
import { ClientEvents } from "./run.ts";
import { clientArgv } from "./run_once.ts";
import {
  denoPath,
  freePorts,
  machineInfo,
  productV8Flags,
  sleep,
  spawnPinned,
  stop,
} from "./proc.ts";
import { median, range } from "./stats.ts";

const ARTIFACTS = ".artifacts/bench";
const FLAGS = ["--demo", "false", "--log-level", "warn", "--max-clients", "20000"];

interface Setup {
  name: string;
  instances: number;
  redis: boolean;
}

const SETUPS: Setup[] = [
  { name: "1 instance, in-process hub", instances: 1, redis: false },
  { name: "1 instance, Redis", instances: 1, redis: true },
  { name: "2 instances, Redis", instances: 2, redis: true },
];

interface Result {
  deliveriesPerSec: number;
  p50: number;
  p99: number;
  max: number;
  errors: number;
}

async function waitHealthy(httpPort: number): Promise<void> {
  const deadline = performance.now() + 20_000;
  while (performance.now() < deadline) {
    try {
      const health = await (await fetch(`http://127.0.0.1:${httpPort}/healthz`)).json();
      if (health.status === "ok") return;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  throw new Error(`the server on ${httpPort} did not become healthy`);
}

async function runOnce(
  setup: Setup,
  redisUrl: string,
  load: Omit<LoadConfig, "wsPort" | "httpPort" | "wsPorts">,
  tag: string,
): Promise<Result> {
  const servers: Deno.ChildProcess[] = [];
  const ports: { ws: number; http: number }[] = [];
  try {
    for (let i = 0; i < setup.instances; i++) {
      const [ws, http] = freePorts(2);
      ports.push({ ws, http });
      servers.push(spawnPinned({
        argv: [
          denoPath(),
          "run",
          ...(productV8Flags() ? [`--v8-flags=${productV8Flags()}`] : []), // as `deno task start`
          "--allow-net",
          "--allow-read=./static",
          "--allow-env=PUSH_*",
          "main.ts",
          "--ws-port",
          String(ws),
          "--http-port",
          String(http),
          ...FLAGS,
          ...(setup.redis ? ["--redis", redisUrl] : []),
        ],
        stderrFile: `${ARTIFACTS}/redis-${tag}-${i}.server.log`,
      }, false));
    }
    for (const p of ports) await waitHealthy(p.http);
    const config: LoadConfig = {
      ...load,
      wsPort: ports[0].ws,
      wsPorts: ports.map((p) => p.ws),
      httpPort: ports[0].http,
    };
    const client = spawnPinned({
      // The Deno client, which the recorded results in docs/performance.md were measured with.
      argv: clientArgv("deno", config),
      core: -1,
      stdin: true,
      stdout: true,
      stderrFile: `${ARTIFACTS}/redis-${tag}.client.log`,
    }, false);
    const events = new ClientEvents(client.stdout);
    const stdin = client.stdin.getWriter();
    const say = (word: string) => stdin.write(new TextEncoder().encode(word + "\n"));
    try {
      const connected = await events.next("connected", 120_000);
      if (Number(connected.failures) > 0) {
        throw new Error(`${connected.failures} handshakes failed`);
      }
      await sleep(300); // every instance's Redis subscription is confirmed by now
      await say("go");
      const r = await events.next("result", DEFAULT_LOAD.timeoutMs + 30_000);
      const latency = r.latency as Record<string, number>;
      const errors = r.errors as Record<string, number>;
      await say("close");
      await events.next("closed", 15_000).catch(() => {});
      return {
        deliveriesPerSec: Number(r.deliveriesPerSec),
        p50: latency.p50,
        p99: latency.p99,
        max: latency.max,
        errors: errors.gaps + errors.duplicates + errors.malformed + errors.missingTs +
          errors.unexpectedFrames + errors.incompleteClients,
      };
    } finally {
      await stdin.close().catch(() => {});
      await stop(client, 5000);
    }
  } finally {
    for (const s of servers) await stop(s, 5000);
  }
}

function cell(values: number[], digits = 0): string {
  const f = (n: number) =>
    n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
  const { min, max } = range(values);
  return values.length > 1 ? `${f(median(values))} (${f(min)}–${f(max)})` : f(values[0]);
}

async function main(): Promise<void> {
  const runs = Number(Deno.args.find((a) => a.startsWith("--runs="))?.slice(7) ?? 3);
  const clients = Number(Deno.args.find((a) => a.startsWith("--clients="))?.slice(10) ?? 1000);
  const messages = Number(Deno.args.find((a) => a.startsWith("--messages="))?.slice(11) ?? 1000);
  const inflight = Number(Deno.args.find((a) => a.startsWith("--inflight="))?.slice(11) ?? 16);
  await Deno.mkdir(ARTIFACTS, { recursive: true });
  await using redis = await startRedisServer();
  const results = new Map<string, Result[]>(SETUPS.map((s) => [s.name, []]));
  const started = performance.now();
  for (let rep = 1; rep <= runs; rep++) {
    for (const setup of SETUPS) {
      const load = {
        ...DEFAULT_LOAD,
        channel: `redis-bench-${rep}-${setup.instances}-${setup.redis}`,
        clients,
        messages,
        size: 64,
        inflight,
        idle: false,
      };
      const r = await runOnce(setup, redis.url, load, `${rep}-${setup.instances}-${setup.redis}`);
      results.get(setup.name)!.push(r);
      console.log(
        `  ${setup.name.padEnd(28)} run ${rep}: ${
          Math.round(r.deliveriesPerSec).toLocaleString("en-US")
        } deliveries/s, ` +
          `p50 ${r.p50.toFixed(2)} p99 ${r.p99.toFixed(2)} max ${
            r.max.toFixed(1)
          } ms, errors ${r.errors}`,
      );
    }
  }
  const base = median(results.get(SETUPS[0].name)!.map((r) => r.deliveriesPerSec));
  const machine = await machineInfo();
  const rows = SETUPS.map((s) => {
    const rs = results.get(s.name)!;
    const d = rs.map((r) => r.deliveriesPerSec);
    return `| ${s.name} | ${cell(d)} | ${(median(d) / base).toFixed(2)}× | ${
      cell(rs.map((r) => r.p50), 2)
    } | ${cell(rs.map((r) => r.p99), 2)} | ${cell(rs.map((r) => r.max), 1)} | ${
      rs.reduce((n, r) => n + r.errors, 0)
    } |`;
  });
  const section = `## Several instances through Redis

Generated by \`bench/redis_run.ts\` on ${new Date().toISOString()} in ${
    ((performance.now() - started) / 60_000).toFixed(1)
  } minutes, ${machine.cpu}, ${machine.cores} cores, ${machine.deno}; redis-server from Debian on
127.0.0.1 (no persistence). ${clients.toLocaleString("en-US")} clients × ${
    messages.toLocaleString("en-US")
  } messages of 64 B, ${inflight} publishes in flight, ${runs} runs per setup, setups alternating.
With two instances, half the clients are on each and every publish goes to the first. Nothing is
pinned: the servers, redis-server and the load client share both cores. The servers run with
${
    productV8Flags()
      ? `\`--v8-flags=${productV8Flags()}\`, as \`deno task start\` does`
      : "V8's defaults"
  }.
Medians (min–max).

\`\`\`sh
deno task bench:redis
\`\`\`

| setup | deliveries/s | vs in-process | p50 (ms) | p99 (ms) | max (ms) | delivery errors |
| --- | ---: | ---: | ---: | ---: | ---: | ---: |
${rows.join("\n")}
`;
  const path = "docs/performance.md";
  let doc = await Deno.readTextFile(path).catch(() => "# Performance\n");
  const at = doc.indexOf("## Several instances through Redis");
  if (at >= 0) {
    const next = doc.indexOf("\n## ", at + 5);
    doc = doc.slice(0, at) + section + (next >= 0 ? doc.slice(next + 1) : "");
  } else {
    doc = doc.trimEnd() + "\n\n" + section;
  }
  await Deno.writeTextFile(path, doc);
  console.log(section);
}

if (import.meta.main) await main();
