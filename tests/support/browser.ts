/**
 * Headless Chromium for browser tests: launched with a throw-away profile, reached over one
 * {@linkcode CdpConnection}, opening {@linkcode Page}s, and shut down again with its child
 * processes awaited and its profile removed, so Deno's test sanitizers stay quiet.
 *
 * @module
 */
import { delay, withDeadline } from "./async.ts";
import { CdpConnection, DEFAULT_TIMEOUT_MS } from "./cdp_connection.ts";
import { Page } from "./page.ts";

/** The project root (this file is tests/support/browser.ts). */
const ROOT = new URL("../../", import.meta.url).pathname;

/** Where Chromium is looked for, in order: Debian's launcher, then `chromium` on PATH. */
export const CHROMIUM_CANDIDATES: readonly string[] = ["/usr/bin/chromium", "chromium"];

/** The flags every test browser is started with (the profile and `about:blank` are added). */
export const CHROMIUM_FLAGS: readonly string[] = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-quic",
  "--disable-dev-shm-usage",
  "--remote-debugging-port=0",
];

/** Options of {@linkcode Browser.launch}. */
export interface LaunchOptions {
  /** Executables to try, in order (default {@linkcode CHROMIUM_CANDIDATES}). */
  executables?: readonly string[];
  /** Deadline for Chromium to print its DevTools URL. */
  timeoutMs?: number;
}

/** Thrown when no Chromium executable exists. */
export class ChromiumNotFoundError extends Error {
  constructor(tried: readonly string[]) {
    super(
      `Chromium was not found (tried ${tried.join(", ")}). The browser tests need it: install ` +
        "the Debian package `chromium` (`apt-get install chromium`; CI installs it in .ci/run).",
    );
    this.name = "ChromiumNotFoundError";
  }
}

/**
 * A running headless Chromium, its DevTools connection and its temporary profile directory
 * (inside `.artifacts/`). `close()` (or `await using`) ends all three.
 */
export class Browser implements AsyncDisposable {
  readonly cdp: CdpConnection;
  readonly process: Deno.ChildProcess;
  /** The temporary profile directory (removed by `close()`). */
  readonly profileDir: string;
  /** The DevTools URL Chromium printed. */
  readonly wsUrl: string;
  readonly #stderr: { text: string; done: Promise<void>; cancel: () => Promise<void> };
  #closing: Promise<void> | null = null;

  private constructor(
    cdp: CdpConnection,
    process: Deno.ChildProcess,
    profileDir: string,
    wsUrl: string,
    stderr: { text: string; done: Promise<void>; cancel: () => Promise<void> },
  ) {
    this.cdp = cdp;
    this.process = process;
    this.profileDir = profileDir;
    this.wsUrl = wsUrl;
    this.#stderr = stderr;
  }

  /** Everything Chromium wrote to stderr so far (for failure messages). */
  get stderr(): string {
    return this.#stderr.text;
  }

  /** Starts Chromium with a fresh profile and connects to it. */
  static async launch(options: LaunchOptions = {}): Promise<Browser> {
    const executables = options.executables ?? CHROMIUM_CANDIDATES;
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    await Deno.mkdir(`${ROOT}.artifacts`, { recursive: true });
    const profileDir = await Deno.makeTempDir({
      dir: `${ROOT}.artifacts`,
      prefix: "chromium-profile-",
    });

    let process: Deno.ChildProcess | null = null;
    for (const executable of executables) {
      try {
        process = new Deno.Command(executable, {
          args: [...CHROMIUM_FLAGS, `--user-data-dir=${profileDir}`, "about:blank"],
          stdin: "null",
          stdout: "null",
          stderr: "piped",
        }).spawn();
        break;
      } catch (err) {
        if (!(err instanceof Deno.errors.NotFound)) {
          await removeDir(profileDir);
          throw err;
        }
      }
    }
    if (!process) {
      await removeDir(profileDir);
      throw new ChromiumNotFoundError(executables);
    }

    // Read stderr to the end (the pipe must never fill up, and it is inherited by every Chromium
    // child process: its end means they have all gone).
    const stderr = { text: "", done: Promise.resolve(), cancel: () => Promise.resolve() };
    const reader = process.stderr.pipeThrough(new TextDecoderStream()).getReader();
    let announce: (url: string) => void = () => {};
    const announced = new Promise<string>((resolve) => announce = resolve);
    stderr.done = (async () => {
      try {
        while (true) {
          const { value, done } = await reader.read();
          if (done) break;
          stderr.text += value;
          const m = /DevTools listening on (ws:\/\/\S+)/.exec(stderr.text);
          if (m) announce(m[1]);
        }
      } catch {
        // cancelled
      } finally {
        reader.releaseLock();
      }
    })();
    stderr.cancel = () => reader.cancel().catch(() => {});

    const child = process;
    const exited = child.status.then((s) => {
      throw new Error(
        `Chromium exited (code ${s.code}, signal ${s.signal}) before printing its DevTools URL; ` +
          `its stderr:\n${stderr.text}`,
      );
    });
    exited.catch(() => {});
    let cdp: CdpConnection | null = null;
    let wsUrl = "";
    try {
      wsUrl = await withDeadline(
        Promise.race([announced, exited]),
        timeoutMs,
        `Chromium to print "DevTools listening on ws://…" on stderr`,
      );
      cdp = await CdpConnection.connect(wsUrl, timeoutMs);
    } catch (err) {
      await killAndReap(child, stderr);
      await removeDir(profileDir);
      if (err instanceof Error && err.message.startsWith("timed out")) {
        err.message += `; Chromium's stderr so far:\n${stderr.text}`;
      }
      throw err;
    }
    return new Browser(cdp, child, profileDir, wsUrl, stderr);
  }

  /** Opens a new tab on `url` (default about:blank), attached over a flattened session. */
  async newPage(url = "about:blank"): Promise<Page> {
    const { targetId } = await this.cdp.send<{ targetId: string }>("Target.createTarget", { url });
    const { sessionId } = await this.cdp.send<{ sessionId: string }>("Target.attachToTarget", {
      targetId,
      flatten: true,
    });
    const page = new Page(this.cdp, targetId, sessionId);
    await Promise.all([
      page.send("Page.enable"),
      page.send("Runtime.enable"),
      page.send("Log.enable"),
    ]);
    return page;
  }

  /**
   * Closes the browser: `Browser.close` first, SIGKILL if it has not exited within 5 s; then
   * waits for the process and all its children (the end of stderr), and removes the profile.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      try {
        await this.cdp.send("Browser.close", {}, undefined, 2_000);
      } catch {
        // Already gone, or not answering: killed below.
      }
      try {
        await withDeadline(this.process.status, 5_000, "Chromium to exit after Browser.close");
      } catch {
        try {
          this.process.kill("SIGKILL");
        } catch {
          // exited meanwhile
        }
      }
      await this.cdp.close();
      await killAndReap(this.process, this.#stderr);
      await removeDir(this.profileDir);
    })();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** Kills `process` (if still running), awaits its status and the end of its stderr. */
async function killAndReap(
  process: Deno.ChildProcess,
  stderr: { done: Promise<void>; cancel: () => Promise<void> },
): Promise<void> {
  try {
    process.kill("SIGKILL");
  } catch {
    // already exited
  }
  await process.status;
  try {
    // Child processes (renderer, zygote, …) hold stderr open until they have exited too.
    await withDeadline(stderr.done, 5_000, "Chromium's child processes to exit");
  } catch {
    await stderr.cancel();
    await stderr.done;
  }
}

/** Removes `dir` recursively; retries briefly, as late Chromium children may still write. */
async function removeDir(dir: string): Promise<void> {
  for (let attempt = 0;; attempt++) {
    try {
      await Deno.remove(dir, { recursive: true });
      return;
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return;
      if (attempt >= 10) throw err;
      await delay(100);
    }
  }
}
