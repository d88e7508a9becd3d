/**
 * Process plumbing for the runner: spawn with a raised open-file limit and a pinned core, read a
 * process's memory and CPU time from /proc, watch the machine for other load, find free ports.
 *
 * The runner is granted `--allow-read=.` only, so /proc files are read with `cat` when a direct
 * read is not allowed.
 *
 * @module
 */

/** Linux clock ticks per second for /proc/…/stat times (USER_HZ; 100 on every common kernel). */
const CLOCK_TICKS = 100;

/** Reads a system file directly, or through `cat` when read permission does not reach it. */
export async function readSystemFile(path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) throw err;
  }
  const out = await new Deno.Command("cat", { args: [path], stderr: "null" }).output();
  if (!out.success) throw new Deno.errors.NotFound(`cannot read ${path}`);
  return new TextDecoder().decode(out.stdout);
}

/** Runs a command and returns its trimmed stdout ("" when it fails). */
export async function commandOutput(command: string, args: string[] = []): Promise<string> {
  try {
    const out = await new Deno.Command(command, { args, stderr: "null" }).output();
    return new TextDecoder().decode(out.stdout).trim();
  } catch {
    return "";
  }
}

/** Memory of a process from /proc/PID/status, in KiB. */
export interface Memory {
  /** Resident set size now (VmRSS). */
  rssKiB: number;
  /** Peak resident set size (VmHWM). */
  peakKiB: number;
}

/** Reads VmRSS and VmHWM of `pid`. */
export async function readMemory(pid: number): Promise<Memory> {
  const status = await readSystemFile(`/proc/${pid}/status`);
  const field = (name: string) =>
    Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status)?.[1]);
  return { rssKiB: field("VmRSS"), peakKiB: field("VmHWM") };
}

/** CPU seconds (user + system) used so far by `pid`, from /proc/PID/stat. */
export async function readCpuSeconds(pid: number): Promise<number> {
  const stat = await readSystemFile(`/proc/${pid}/stat`);
  // Fields after the command name (which may hold spaces) start at ") ": utime is the 14th field.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

/** Busy CPU seconds of the whole machine so far (all cores), from /proc/stat. */
export async function readMachineBusySeconds(): Promise<number> {
  const line = (await readSystemFile("/proc/stat")).split("\n")[0];
  const [user, nice, system, _idle, _iowait, irq, softirq, steal] = line.trim().split(/\s+/)
    .slice(1).map(Number);
  return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS;
}

/**
 * Waits until the machine is quiet (less than `maxBusy` of one core busy over a 500 ms sample),
 * for at most `timeoutMs`. Returns the last busy fraction seen: other work on this 2-core
 * machine (tests, builds) would otherwise show up as benchmark noise.
 */
export async function waitForQuiet(maxBusy = 0.15, timeoutMs = 30_000): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  while (true) {
    const a = await readMachineBusySeconds();
    await sleep(500);
    const busy = ((await readMachineBusySeconds()) - a) / 0.5;
    if (busy <= maxBusy || performance.now() > deadline) return busy;
  }
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Resolves with `promise`'s value, or with `fallback` after `ms` — and clears its timer either
 * way, so a long timeout never keeps the process alive after the work is done.
 */
export async function within<T, F>(promise: Promise<T>, ms: number, fallback: F): Promise<T | F> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<F>((resolve) => timer = setTimeout(() => resolve(fallback), ms)),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Ports that were free a moment ago (bound to 0, then released). */
export function freePorts(count: number): number[] {
  const listeners = Array.from(
    { length: count },
    () => Deno.listen({ hostname: "127.0.0.1", port: 0 }),
  );
  const ports = listeners.map((l) => (l.addr as Deno.NetAddr).port);
  for (const l of listeners) l.close();
  return ports;
}

/** Whether `taskset` is available to pin processes to a core. */
export async function hasTaskset(): Promise<boolean> {
  return (await commandOutput("bash", ["-c", "command -v taskset"])) !== "";
}

/** The Deno executable running this script (falls back to `deno` on PATH). */
export function denoPath(): string {
  try {
    return Deno.execPath();
  } catch {
    return "deno";
  }
}

/** How to start one child: the command line, the core to pin it to, its stdio. */
export interface SpawnOptions {
  /** The command and its arguments. */
  argv: string[];
  /** Pin to this CPU with `taskset -c` (when available). */
  core?: number;
  /** Pipe stdin (for commands) instead of closing it. */
  stdin?: boolean;
  /** Pipe stdout instead of discarding it. */
  stdout?: boolean;
  /** Write stderr to this file (relative to the project), else discard it. */
  stderrFile?: string;
}

/**
 * Spawns through `bash -c 'ulimit -n …; exec …'`: Deno cannot call setrlimit, and `exec` keeps
 * the PID, so /proc/PID is the child itself. The soft limit is raised to 65535 or, when the hard
 * limit is lower, to the hard limit.
 */
export function spawnPinned(options: SpawnOptions, taskset: boolean): Deno.ChildProcess {
  const pin = taskset && options.core !== undefined ? ["taskset", "-c", String(options.core)] : [];
  const script = 'ulimit -n 65535 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@"';
  const child = new Deno.Command("bash", {
    args: ["-c", script, "bench", ...pin, ...options.argv],
    stdin: options.stdin ? "piped" : "null",
    stdout: options.stdout ? "piped" : "null",
    stderr: options.stderrFile ? "piped" : "null",
  }).spawn();
  if (options.stderrFile) {
    const file = Deno.openSync(options.stderrFile, { write: true, create: true, truncate: true });
    child.stderr.pipeTo(file.writable).catch(() => {});
  }
  return child;
}

/**
 * The V8 flags our server ships with: the `--v8-flags=` of the `start` task in deno.json ("" when
 * none). The benchmarks run both servers with them, so the product is measured as it runs.
 */
export function productV8Flags(): string {
  const config = JSON.parse(Deno.readTextFileSync(new URL("../deno.json", import.meta.url)));
  return /--v8-flags=(\S+)/.exec(config.tasks.start)?.[1] ?? "";
}

/** The lines of a text stream (a child's stdout), without their "\n"; a last unterminated one is dropped. */
export async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let rest = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    const parts = (rest + chunk).split("\n");
    rest = parts.pop()!;
    yield* parts;
  }
}

/** Sends SIGTERM, then SIGKILL after `graceMs`; resolves when the child has exited. */
export async function stop(child: Deno.ChildProcess, graceMs = 3000): Promise<void> {
  const status = child.status;
  try {
    child.kill("SIGTERM");
  } catch {
    return; // already gone
  }
  const exited = await within(status.then(() => true), graceMs, false);
  if (!exited) {
    try {
      child.kill("SIGKILL");
    } catch {
      // Exited meanwhile.
    }
    await status;
  }
}

/** Facts about this machine for the report. */
export interface MachineInfo {
  /** `nproc`. */
  cores: string;
  /** The CPU model from /proc/cpuinfo. */
  cpu: string;
  /** `deno --version`, first line. */
  deno: string;
  /** The kernel from `uname -r`. */
  kernel: string;
  /** `ulimit -Hn`. */
  hardFileLimit: number;
  /** Whether servers and the client are pinned with taskset. */
  taskset: boolean;
}

/** Collects {@linkcode MachineInfo}. */
export async function machineInfo(): Promise<MachineInfo> {
  const cpuinfo = await readSystemFile("/proc/cpuinfo").catch(() => "");
  const hardLimit = await commandOutput("bash", ["-c", "ulimit -Hn"]);
  return {
    cores: await commandOutput("nproc"),
    cpu: /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? "unknown",
    deno: (await commandOutput(denoPath(), ["--version"])).split("\n")[0],
    kernel: await commandOutput("uname", ["-r"]),
    hardFileLimit: hardLimit === "unlimited" ? Infinity : Number(hardLimit) || 0,
    taskset: await hasTaskset(),
  };
}
