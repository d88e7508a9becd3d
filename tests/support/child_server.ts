/**
 * Runs the server as a child process (from source or as a compiled binary), reads its log lines
 * from stderr and learns the ports it bound, for tests of the real process: signals, exit codes,
 * the compiled binary.
 *
 * @module
 */

/** `deno run` arguments that start main.ts from source with `deno task start`'s permissions. */
export const RUN_ARGS: readonly string[] = [
  "run",
  "--allow-net",
  "--allow-read=./static",
  "--allow-env=PUSH_*",
  "main.ts",
];

/**
 * {@linkcode RUN_ARGS} with `deno task start`'s V8 flags too: memory tests measure the process
 * as it is deployed (a small young generation).
 */
export const START_ARGS: readonly string[] = [
  "run",
  "--v8-flags=--max-semi-space-size=8",
  ...RUN_ARGS.slice(1),
];

/** Server flags: both ports chosen by the OS (the child logs them), no demo publisher. */
export const FREE_PORTS_NO_DEMO: readonly string[] = [
  "--ws-port",
  "0",
  "--http-port",
  "0",
  "--demo",
  "false",
];

/** A server running in a child process. */
export interface ChildServer extends AsyncDisposable {
  /** The child process. */
  process: Deno.ChildProcess;
  /** The WebSocket port it logged. */
  wsPort: number;
  /** The page server's port it logged. */
  httpPort: number;
  /** Every log line so far. */
  logs: string[];
  /** Resolves with the first log line (existing or future) containing `text`; rejects on exit. */
  waitForLog(text: string): Promise<string>;
  /** Resolves with the exit status. */
  status: Promise<Deno.CommandStatus>;
}

/**
 * Spawns `command args…` and waits until both servers logged their addresses.
 * `args` should bind port 0 so parallel tests never collide.
 */
export async function spawnServer(
  command: string,
  args: string[],
  env?: Record<string, string>,
): Promise<ChildServer> {
  const process = new Deno.Command(command, {
    args,
    env,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const logs: string[] = [];
  const waiters: { text: string; resolve: (line: string) => void; reject: (e: Error) => void }[] =
    [];
  const pump = (async () => {
    let rest = "";
    for await (const chunk of process.stderr.pipeThrough(new TextDecoderStream())) {
      const lines = (rest + chunk).split("\n");
      rest = lines.pop()!;
      for (const line of lines) {
        logs.push(line);
        for (let i = waiters.length - 1; i >= 0; i--) {
          if (line.includes(waiters[i].text)) waiters.splice(i, 1)[0].resolve(line);
        }
      }
    }
    for (const w of waiters.splice(0)) {
      w.reject(new Error(`server exited before logging "${w.text}":\n${logs.join("\n")}`));
    }
  })();
  const status = Promise.all([process.status, pump]).then(([s]) => s);
  const waitForLog = (text: string) => {
    const found = logs.find((line) => line.includes(text));
    if (found) return Promise.resolve(found);
    return new Promise<string>((resolve, reject) => waiters.push({ text, resolve, reject }));
  };
  const port = (line: string) => Number(/address=\S+:(\d+)/.exec(line)![1]);
  try {
    const wsPort = port(await waitForLog("ws.listening"));
    const httpPort = port(await waitForLog("http.listening"));
    return {
      process,
      wsPort,
      httpPort,
      logs,
      waitForLog,
      status,
      async [Symbol.asyncDispose]() {
        try {
          process.kill("SIGKILL");
        } catch {
          // Already exited.
        }
        await status;
      },
    };
  } catch (err) {
    await status;
    throw err;
  }
}
