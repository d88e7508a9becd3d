/**
 * `deno task bench:memory`: where the memory of idle connections goes. Connects N idle clients
 * (default 10,000, subscribed to one channel, as in the benchmark's idle scenario) to our server
 * and to a floor server (`--kind=bare`: `bench/floor_server.ts`, which only answers the handshake
 * and keeps one 128-byte read pending per socket, through callbacks made once), and prints, per client, the growth of RSS and of each
 * part of it that the runtime reports: V8's young generation, the rest of the JS heap, memory
 * outside the JS heap.
 *
 * Options: `--clients=N`, `--kinds=ours,bare`, `--runs=N` (default 2), `--v8-flags=A,B` (for
 * both servers; by default the ones `deno task start` ships with, `--v8-flags=` for V8's own).
 *
 * Each server runs in its own process pinned to core 1 (`taskset`), the clients in another on
 * core 0; the servers report `Deno.memoryUsage()` and V8's heap spaces when asked on stdin.
 *
 * @module
 */
import v8 from "node:v8";
import { parseConfig } from "../src/config.ts";
import { Logger } from "../src/log.ts";
import { startApp } from "../src/app.ts";
import { serveFloor } from "./floor_server.ts";
import {
  denoPath,
  freePorts,
  hasTaskset,
  lines,
  productV8Flags,
  sleep,
  spawnPinned,
  stop,
} from "./proc.ts";
import { makeKeys, openWebSocket } from "./ws_handshake.ts";

/** What a server process reports about its memory (bytes). */
interface MemoryStats {
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  newSpace: number;
  oldSpace: number;
}

function arg(name: string): string | undefined {
  return Deno.args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
}

function memoryStats(): MemoryStats {
  const m = Deno.memoryUsage();
  const space = (name: string) =>
    v8.getHeapSpaceStatistics().find((s) => s.space_name === name)?.physical_space_size ?? 0;
  return { ...m, newSpace: space("new_space"), oldSpace: space("old_space") };
}

/** Server role: start, say "ready", answer each stdin line with a JSON line of stats. */
async function serve(kind: string, port: number): Promise<void> {
  if (kind === "bare") {
    serveFloor(Deno.listen({ hostname: "127.0.0.1", port })).catch(() => {});
  } else {
    const config = parseConfig(
      ["--ws-port", String(port), "--http-port", "0", "--demo", "false", "--log-level", "warn"]
        .concat(["--max-clients", "20000"]),
      () => undefined,
    );
    await startApp(config, new Logger(config.logLevel));
  }
  const out = Deno.stdout;
  const encoder = new TextEncoder();
  await out.write(encoder.encode("ready\n"));
  for await (const _ of lines(Deno.stdin.readable)) {
    await out.write(encoder.encode(JSON.stringify(memoryStats()) + "\n"));
  }
  Deno.exit(0);
}

/** Client role: connect N idle clients, say "connected MS", close all at the next stdin line. */
async function clients(port: number, count: number): Promise<void> {
  const keys = await makeKeys(count);
  const conns: Deno.Conn[] = [];
  const t0 = performance.now();
  for (let i = 0; i < count; i += 100) {
    await Promise.all(
      keys.slice(i, i + 100).map(async (key) => {
        const opened = await openWebSocket(
          port,
          "/?channels=bench&demo=false",
          key,
          new Uint8Array(1024),
        );
        conns.push(opened.conn);
      }),
    );
  }
  await Deno.stdout.write(
    new TextEncoder().encode(`connected ${(performance.now() - t0).toFixed(0)}\n`),
  );
  for await (const _ of lines(Deno.stdin.readable)) break;
  for (const conn of conns) conn.close();
  Deno.exit(0);
}

/** One measurement: baseline, N clients, 1 s, the difference per client. */
async function measure(kind: string, count: number, taskset: boolean, v8Flags: string) {
  const [port] = freePorts(1);
  const self = new URL(import.meta.url).pathname;
  const server = spawnPinned({
    argv: [
      denoPath(),
      "run",
      ...(v8Flags ? [`--v8-flags=${v8Flags}`] : []),
      "--allow-net=127.0.0.1",
      "--allow-read=.",
      "--allow-env=PUSH_*",
      self,
      "--role=server",
      `--kind=${kind}`,
      `--port=${port}`,
    ],
    core: 1,
    stdin: true,
    stdout: true,
  }, taskset);
  const serverLines = lines(server.stdout);
  const writer = server.stdin.getWriter();
  const ask = async (): Promise<MemoryStats> => {
    await writer.write(new TextEncoder().encode("stats\n"));
    return JSON.parse((await serverLines.next()).value!);
  };
  let client: Deno.ChildProcess | null = null;
  try {
    if ((await serverLines.next()).value !== "ready") throw new Error(`${kind} did not start`);
    await sleep(500);
    const before = await ask();
    client = spawnPinned({
      argv: [
        denoPath(),
        "run",
        "--allow-net=127.0.0.1",
        "--allow-read=.",
        "--allow-env=PUSH_*",
        self,
        "--role=clients",
        `--port=${port}`,
        `--clients=${count}`,
      ],
      core: 0,
      stdin: true,
      stdout: true,
    }, taskset);
    const connected = (await lines(client.stdout).next()).value ?? "";
    if (!connected.startsWith("connected")) throw new Error("the clients did not connect");
    await sleep(1000);
    const after = await ask();
    const perClient = (key: keyof MemoryStats) => (after[key] - before[key]) / count / 1024;
    const outside = (s: MemoryStats) => s.rss - s.heapTotal - s.external;
    return {
      rss: perClient("rss"),
      newSpace: perClient("newSpace"),
      oldSpace: perClient("oldSpace"),
      heapUsed: perClient("heapUsed"),
      external: perClient("external"),
      outside: (outside(after) - outside(before)) / count / 1024,
    };
  } finally {
    if (client) {
      const w = client.stdin.getWriter();
      await w.write(new TextEncoder().encode("close\n")).catch(() => {});
      await stop(client);
    }
    await writer.close().catch(() => {});
    await stop(server);
  }
}

async function main(): Promise<void> {
  const role = arg("role");
  if (role === "server") return await serve(arg("kind") ?? "ours", Number(arg("port")));
  if (role === "clients") return await clients(Number(arg("port")), Number(arg("clients")));
  const count = Number(arg("clients") ?? 10_000);
  const kinds = (arg("kinds") ?? "ours,bare").split(",");
  const runs = Number(arg("runs") ?? 2);
  const taskset = await hasTaskset();
  const v8Flags = arg("v8-flags") ?? productV8Flags();
  console.log(
    `${count.toLocaleString("en-US")} idle clients, servers run with ` +
      `${
        v8Flags ? `--v8-flags=${v8Flags}` : "V8's default flags"
      }; KiB per client, after − before:\n`,
  );
  console.log(
    "| server | run | RSS | V8 young generation | V8 old space | JS heap used | " +
      "array buffers | outside the JS heap |",
  );
  console.log("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
  for (let run = 1; run <= runs; run++) {
    for (const kind of kinds) {
      const r = await measure(kind, count, taskset, v8Flags);
      const f = (x: number) => x.toFixed(1);
      console.log(
        `| ${kind} | ${run} | ${f(r.rss)} | ${f(r.newSpace)} | ${f(r.oldSpace)} | ` +
          `${f(r.heapUsed)} | ${f(r.external)} | ${f(r.outside)} |`,
      );
    }
  }
}

if (import.meta.main) await main();
