/**
 * A throwaway `redis-server` for integration tests: a free port on 127.0.0.1, a fresh directory
 * under `.artifacts/`, no persistence unless asked, and stop/restart on the same port so tests can
 * take Redis away from a client and give it back.
 *
 * Readiness is an event, not a sleep: the server's own "Ready to accept connections" log line.
 * Every wait has a deadline and every child process and pipe is awaited, so Deno's test
 * sanitizers stay quiet.
 *
 * @module
 */
import { freePorts } from "../../bench/proc.ts";
import { withDeadline } from "./async.ts";

/** Options of {@linkcode startRedisServer}. */
export interface RedisServerOptions {
  /** Extra `redis-server` arguments, e.g. `["--requirepass", "s3cret"]`. */
  args?: string[];
  /**
   * Keep data across {@linkcode RedisServer.restart} (append-only file, fsync always, so even a
   * kill loses nothing). Default false: every start is an empty Redis.
   */
  persistence?: boolean;
}

/** A running `redis-server` child process. */
export interface RedisServer extends AsyncDisposable {
  /** The port it listens on (the same after a restart). */
  port: number;
  /** `redis://127.0.0.1:<port>` (no password or db: add them for tests that need them). */
  url: string;
  /** Its working directory under `.artifacts/`. */
  dir: string;
  /** Whether the process is running. */
  readonly running: boolean;
  /** Its log lines so far (all runs), for failure messages. */
  logs: string[];
  /** Stops it gracefully (SIGTERM, then SIGKILL after a deadline) and waits for the exit. */
  stop(): Promise<void>;
  /** Kills it at once (SIGKILL), like a crash, and waits for the exit. */
  kill(): Promise<void>;
  /** Starts it again on the same port (stopping it first if it runs) and waits until ready. */
  restart(): Promise<void>;
  /** Stops it and removes its directory. */
  [Symbol.asyncDispose](): Promise<void>;
}

/** How long a start may take before the test fails. */
const READY_TIMEOUT = 10_000;
/** How long SIGTERM is given before SIGKILL. */
const STOP_TIMEOUT = 5_000;

/** One run of the process. */
interface Run {
  process: Deno.ChildProcess;
  /** Resolves when the process has exited and its output is fully read. */
  exited: Promise<Deno.CommandStatus>;
  /** Resolves true on the ready line, false if the process exits before it. */
  ready: Promise<boolean>;
}

function spawn(args: string[], logs: string[]): Run {
  let process: Deno.ChildProcess;
  try {
    process = new Deno.Command("redis-server", {
      args,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new Error(
        "redis-server was not found: install the Debian package redis-server " +
          "(apt-get install redis-server; CI installs it).",
      );
    }
    throw err;
  }
  let onReady!: (ready: boolean) => void;
  const ready = new Promise<boolean>((resolve) => onReady = resolve);
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    let rest = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      const lines = (rest + chunk).split("\n");
      rest = lines.pop()!;
      for (const line of lines) {
        logs.push(line);
        if (line.includes("Ready to accept connections")) onReady(true);
      }
    }
  };
  const exited = Promise.all([process.status, pump(process.stdout), pump(process.stderr)])
    .then(([status]) => status)
    .finally(() => onReady(false));
  return { process, exited, ready };
}

/**
 * Starts `redis-server` on a free 127.0.0.1 port with a throwaway directory under `.artifacts/`
 * and resolves once it accepts connections.
 *
 * @example
 * ```ts
 * await using redis = await startRedisServer();
 * const client = new RedisClient(parseRedisUrl(redis.url));
 * ```
 */
export async function startRedisServer(options: RedisServerOptions = {}): Promise<RedisServer> {
  const root = new URL("../../.artifacts/", import.meta.url).pathname;
  await Deno.mkdir(root, { recursive: true });
  const dir = await Deno.makeTempDir({ dir: root, prefix: "redis-" });
  const logs: string[] = [];
  const persistence = options.persistence
    ? ["--appendonly", "yes", "--appendfsync", "always"]
    : ["--appendonly", "no"];
  const argsFor = (port: number) => [
    "--port",
    String(port),
    "--bind",
    "127.0.0.1",
    "--dir",
    dir,
    "--save",
    "",
    ...persistence,
    ...(options.args ?? []),
  ];
  let run: Run | null = null;

  /** Starts a run on `port`; resolves false when the port was taken (the caller may retry). */
  const launch = async (port: number): Promise<boolean> => {
    const started = logs.length;
    const attempt = spawn(argsFor(port), logs);
    let ready: boolean;
    try {
      ready = await withDeadline(
        attempt.ready,
        READY_TIMEOUT,
        "redis-server to accept connections",
      );
    } catch (err) {
      attempt.process.kill("SIGKILL");
      await attempt.exited;
      throw new Error(`${(err as Error).message}\n${logs.slice(started).join("\n")}`);
    }
    if (ready) {
      run = attempt;
      return true;
    }
    await attempt.exited;
    const output = logs.slice(started).join("\n");
    if (/address already in use/i.test(output)) return false;
    throw new Error(`redis-server exited at start:\n${output}`);
  };

  const halt = async (signal: "SIGTERM" | "SIGKILL") => {
    const current = run;
    if (current === null) return;
    run = null;
    try {
      current.process.kill(signal);
    } catch {
      // It exited by itself.
    }
    if (signal === "SIGTERM") {
      try {
        await withDeadline(current.exited, STOP_TIMEOUT, "redis-server to stop");
      } catch {
        try {
          current.process.kill("SIGKILL");
        } catch {
          // It exited meanwhile.
        }
      }
    }
    await current.exited;
  };

  let port = 0;
  try {
    for (let tries = 0; port === 0; tries++) {
      const candidate = freePorts(1)[0];
      if (await launch(candidate)) port = candidate;
      else if (tries >= 5) throw new Error("no free port for redis-server after 6 tries");
    }
  } catch (err) {
    await Deno.remove(dir, { recursive: true });
    throw err;
  }

  const server: RedisServer = {
    port,
    url: `redis://127.0.0.1:${port}`,
    dir,
    get running() {
      return run !== null;
    },
    logs,
    stop: () => halt("SIGTERM"),
    kill: () => halt("SIGKILL"),
    async restart() {
      await halt("SIGTERM");
      // The port is ours, but a stray process could have taken it meanwhile: fail plainly.
      if (!(await launch(port))) {
        throw new Error(`port ${port} was taken while redis-server was stopped`);
      }
    },
    async [Symbol.asyncDispose]() {
      await halt("SIGTERM");
      await Deno.remove(dir, { recursive: true });
    },
  };
  return server;
}
