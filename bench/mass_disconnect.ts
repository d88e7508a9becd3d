/**
 * `deno run … bench/mass_disconnect.ts`: what a burst of clients leaves behind once they are
 * gone. Starts the server as a child (main.ts, with the V8 flags it ships with), then, for each
 * round, connects N clients (default 10,000, subscribed to one channel as in the idle scenario),
 * drops them all without a close handshake, waits until `push_connections` is 0 and the server
 * is idle, and reads its VmRSS. Prints the RSS before the first round and after each.
 *
 * A drop is a reset: each client sends a ping and closes its socket without reading the pong,
 * so the kernel answers the unread bytes with a TCP RST (Deno cannot set SO_LINGER 0). With
 * `--drop=fin` the clients close plainly (FIN, no close frame).
 *
 * Options: `--clients=N`, `--rounds=N` (3), `--settle=MS` (idle time before each reading, 5000),
 * `--drop=rst|fin`, `--v8-flags=A,B` (default: the shipped ones), `--server-stdout` (shows V8's
 * `--trace-gc` output), `--inspect`: start the same app through this script's server role, with
 * `--expose-gc`, and also report V8's heap spaces and RSS after a forced GC
 * (separates garbage not yet collected from memory retained; measurement only); `--trim`: as
 * `--inspect`, and glibc's `malloc_trim(0)` after the GC (through FFI), to show how much of the
 * memory outside the JS heap is free memory that malloc keeps.
 *
 * Run: `deno task bench:disconnect` (options after it), i.e. `deno run --allow-net=127.0.0.1
 * --allow-read=. --allow-run --allow-env --allow-sys bench/mass_disconnect.ts`.
 *
 * @module
 */
import v8 from "node:v8";
import {
  denoPath,
  freePorts,
  lines,
  productV8Flags,
  readMemory,
  readSystemFile,
  sleep,
  stop,
} from "./proc.ts";
import { makeKeys, maskedFrame, openWebSocket, writeAll } from "./ws_handshake.ts";

function arg(name: string): string | undefined {
  return Deno.args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
}

const root = new URL("../", import.meta.url).pathname;

/** The server's own account of its memory (bytes); only with `--inspect`. */
interface Inside {
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  spaces: Record<string, number>;
}

function inside(): Inside {
  const m = Deno.memoryUsage();
  const spaces: Record<string, number> = {};
  for (const s of v8.getHeapSpaceStatistics()) spaces[s.space_name] = s.physical_space_size;
  return { ...m, spaces };
}

/**
 * `--role=server`: main.ts's app in this process. On SIGUSR2 it logs its heap to stderr
 * (`mem.stats seq=N before={…} after={…}`), before and after a forced GC.
 */
async function serve(): Promise<void> {
  const { parseConfig } = await import("../src/config.ts");
  const { Logger } = await import("../src/log.ts");
  const { startApp } = await import("../src/app.ts");
  const trim = Deno.args.includes("--trim");
  const config = parseConfig(
    Deno.args.filter((a) => !a.startsWith("--role=") && a !== "--trim"),
    () => undefined,
  );
  // glibc's malloc_trim(0) hands free pages inside malloc's heaps back to the kernel: how much
  // of what stays outside the JS heap is free memory malloc keeps (needs --allow-ffi).
  const libc = trim
    ? Deno.dlopen("libc.so.6", { malloc_trim: { parameters: ["usize"], result: "i32" } })
    : null;
  await startApp(config, new Logger(config.logLevel));
  let seq = 0;
  Deno.addSignalListener("SIGUSR2", () => {
    const before = inside();
    (globalThis as { gc?: () => void }).gc?.();
    libc?.symbols.malloc_trim(0n);
    const after = inside();
    console.error(
      `mem.stats seq=${++seq} before=${JSON.stringify(before)} after=${JSON.stringify(after)}`,
    );
  });
}

/**
 * Where a process's resident memory is, from /proc/PID/smaps (MiB): glibc's main heap (brk),
 * 256 KiB anonymous mappings (V8's heap pages), other anonymous mappings (thread arenas, stacks,
 * large allocations), and file-backed pages (the executable).
 */
async function residentParts(pid: number): Promise<string> {
  const parts = { brk: 0, v8Pages: 0, otherAnon: 0, file: 0 };
  let part: keyof typeof parts = "file";
  for (const line of (await readSystemFile(`/proc/${pid}/smaps`)).split("\n")) {
    const map = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (map) {
      const kib = (parseInt(map[2], 16) - parseInt(map[1], 16)) / 1024;
      const name = map[3];
      part = name === "[heap]"
        ? "brk"
        : name.startsWith("/")
        ? "file"
        : name === "" && kib === 256
        ? "v8Pages"
        : "otherAnon";
    } else if (line.startsWith("Rss:")) {
      parts[part] += Number(line.split(/\s+/)[1]);
    }
  }
  return Object.entries(parts).map(([k, v]) => `${k} ${mib(v)}`).join(", ");
}

/** The `push_connections` gauge from /metrics. */
async function connections(httpPort: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
  return Number(/^push_connections (\d+)/m.exec(text)?.[1]);
}

/** Connects `count` clients, 200 handshakes at a time. */
async function connectAll(port: number, count: number): Promise<Deno.TcpConn[]> {
  const keys = await makeKeys(count);
  const conns: Deno.TcpConn[] = [];
  const buffer = () => new Uint8Array(1024);
  for (let i = 0; i < count; i += 200) {
    const batch = keys.slice(i, i + 200).map((key) =>
      openWebSocket(port, "/?channels=bench&demo=false", key, buffer())
    );
    for (const opened of await Promise.all(batch)) conns.push(opened.conn);
  }
  return conns;
}

/**
 * Drops every client without a close frame. With "rst", a ping goes out first and its pong is
 * left unread, so closing the socket sends a reset.
 */
async function dropAll(conns: Deno.TcpConn[], how: string): Promise<void> {
  if (how === "rst") {
    const ping = maskedFrame(9, new Uint8Array(0));
    await Promise.all(conns.map((c) => writeAll(c, ping)));
    await sleep(500); // the pongs arrive and stay unread
  }
  for (const c of conns) c.close();
}

/** Polls `push_connections` until it reads 0. */
async function drained(httpPort: number): Promise<void> {
  while (await connections(httpPort) !== 0) await sleep(100);
}

const mib = (kib: number) => (kib / 1024).toFixed(1);
const mb = (bytes: number) => (bytes / 1048576).toFixed(1);

async function main(): Promise<void> {
  if (arg("role") === "server") return await serve();
  const count = Number(arg("clients") ?? 10_000);
  const rounds = Number(arg("rounds") ?? 3);
  const settle = Number(arg("settle") ?? 5000);
  const how = arg("drop") ?? "rst";
  const trim = Deno.args.includes("--trim");
  const inspect = trim || Deno.args.includes("--inspect");
  const v8Flags = [arg("v8-flags") ?? productV8Flags(), inspect ? "--expose-gc" : ""]
    .filter(Boolean).join(",");
  // Fixed free ports and --log-level warn: at info the server would log every handshake.
  const [wsPort, httpPort] = freePorts(2);
  const serverArgs = ["--ws-port", String(wsPort), "--http-port", String(httpPort)]
    .concat(["--demo", "false", "--max-clients", "20000", "--log-level", "warn"]);
  // The soft open-file limit raised in the child's shell: `exec` keeps the PID for /proc.
  const script = 'ulimit -n 65535 2>/dev/null || ulimit -n "$(ulimit -Hn)"; cd "$0"; exec "$@"';
  const program = inspect
    ? [new URL(import.meta.url).pathname, "--role=server", ...(trim ? ["--trim"] : [])]
    : ["main.ts"];
  const child = new Deno.Command("bash", {
    args: [
      "-c",
      script,
      root,
      denoPath(),
      "run",
      ...(v8Flags ? [`--v8-flags=${v8Flags}`] : []),
      "--allow-net=127.0.0.1",
      "--allow-read=.",
      "--allow-env",
      "--allow-sys",
      ...(trim ? ["--allow-ffi"] : []),
      ...program,
      ...serverArgs,
    ],
    stdin: "null",
    stdout: Deno.args.includes("--server-stdout") ? "inherit" : "null", // V8's --trace-* output
    stderr: "piped",
  }).spawn();
  const stats = inspect ? lines(child.stderr) : null;
  if (!inspect) child.stderr.pipeTo(new WritableStream()).catch(() => {});
  try {
    await run(child.pid, wsPort, httpPort, stats, { count, rounds, settle, how, v8Flags, trim });
  } finally {
    await stop(child);
  }
}

async function run(
  pid: number,
  wsPort: number,
  httpPort: number,
  stats: AsyncGenerator<string> | null,
  o: { count: number; rounds: number; settle: number; how: string; v8Flags: string; trim: boolean },
): Promise<void> {
  const { count, rounds, settle, how, v8Flags } = o;
  while (true) {
    try {
      await connections(httpPort);
      break;
    } catch {
      await sleep(100); // not listening yet
    }
  }
  /** With --inspect: the server's heap before and after a forced GC (and malloc_trim). */
  const heapReport = async () => {
    if (stats === null) return;
    Deno.kill(pid, "SIGUSR2");
    let line = "";
    while (!line.startsWith("mem.stats")) line = (await stats.next()).value ?? "mem.stats";
    const [before, after] = [/before=(\{.*?\}\}) /, /after=(\{.*\}\})$/]
      .map((re) => JSON.parse(re.exec(line)![1]) as Inside);
    const show = (s: Inside) =>
      `rss ${mb(s.rss)} heapTotal ${mb(s.heapTotal)} used ${mb(s.heapUsed)} ` +
      `external ${mb(s.external)} new ${mb(s.spaces.new_space ?? 0)} ` +
      `old ${mb(s.spaces.old_space ?? 0)} lo ${mb(s.spaces.large_object_space ?? 0)}`;
    console.log(`  heap before gc: ${show(before)}\n  heap after gc:  ${show(after)}`);
    const rss = (await readMemory(pid)).rssKiB;
    console.log(`  RSS after gc${o.trim ? " and malloc_trim" : ""} ${mib(rss)} MiB`);
    console.log(`  (${await residentParts(pid)})`);
  };
  const record = async (label: string) => {
    await sleep(settle);
    const m = await readMemory(pid);
    console.log(
      `${label}: RSS ${mib(m.rssKiB)} MiB (peak ${mib(m.peakKiB)} MiB; ` +
        `${await residentParts(pid)})`,
    );
    await heapReport();
    return m.rssKiB;
  };
  console.log(
    `${count.toLocaleString("en-US")} clients × ${rounds} rounds, drop=${how}, server flags ` +
      `${v8Flags || "(V8 defaults)"}, settle ${settle} ms, server pid ${pid}`,
  );
  const base = await record("baseline");
  const after: number[] = [];
  for (let round = 1; round <= rounds; round++) {
    const t0 = performance.now();
    const conns = await connectAll(wsPort, count);
    const connected = performance.now() - t0;
    const peak = await readMemory(pid);
    console.log(
      `round ${round}: ${conns.length} connected in ${connected.toFixed(0)} ms, ` +
        `RSS ${mib(peak.rssKiB)} MiB`,
    );
    await heapReport();
    await dropAll(conns, how);
    await drained(httpPort);
    after.push(await record(`after round ${round}`));
  }
  console.log(
    `\n| baseline | ${after.map((_, i) => `round ${i + 1}`).join(" | ")} | ` +
      `round ${rounds} − round 1 | round ${rounds} − baseline |`,
  );
  console.log(`| ${"---: | ".repeat(after.length + 3)}`);
  console.log(
    `| ${mib(base)} | ${after.map(mib).join(" | ")} | ${mib(after.at(-1)! - after[0])} | ` +
      `${mib(after.at(-1)! - base)} |`,
  );
}

if (import.meta.main) await main();
