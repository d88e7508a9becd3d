/**
 * A small Chrome DevTools Protocol client for browser tests, built on Deno's own `WebSocket`
 * (no npm or JSR packages): launch headless Chromium with a throw-away profile, talk to it over
 * one flattened CDP connection, drive pages (navigate, evaluate, click, type, screenshot, close)
 * and shut everything down again.
 *
 * Every wait here has a deadline and fails with a message naming what was awaited; every timer
 * is cleared, every socket closed and every child process awaited, so Deno's test sanitizers
 * stay quiet.
 *
 * @module
 */
import { delay, withDeadline } from "./async.ts";

/** The project root (this file is tests/support/cdp.ts). */
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

/** The default deadline of a single wait. */
export const DEFAULT_TIMEOUT_MS = 10_000;

/** One CDP event; `sessionId` is set for events of an attached target. */
export interface CdpEvent {
  method: string;
  // deno-lint-ignore no-explicit-any
  params: any;
  sessionId?: string;
}

/** A CDP error answer to a command. */
export class CdpError extends Error {
  constructor(method: string, readonly code: number, message: string, data?: string) {
    super(`CDP ${method} failed (${code}): ${message}${data ? ` (${data})` : ""}`);
    this.name = "CdpError";
  }
}

interface Pending {
  method: string;
  // deno-lint-ignore no-explicit-any
  resolve: (result: any) => void;
  reject: (err: Error) => void;
  timer: ReturnType<typeof setTimeout>;
}

interface EventWaiter {
  match: (event: CdpEvent) => boolean;
  resolve: (event: CdpEvent) => void;
  reject: (err: Error) => void;
  timer: ReturnType<typeof setTimeout>;
}

/** A waited-for event: await `promise`, or `cancel()` it if it is no longer wanted. */
export interface PendingEvent {
  promise: Promise<CdpEvent>;
  cancel(): void;
}

/** One WebSocket connection to a browser's DevTools endpoint (flattened sessions). */
export class CdpConnection {
  readonly #ws: WebSocket;
  readonly #closed: Promise<void>;
  #nextId = 1;
  #pending = new Map<number, Pending>();
  #waiters = new Set<EventWaiter>();
  #listeners = new Set<(event: CdpEvent) => void>();
  #closeError: Error | null = null;

  private constructor(ws: WebSocket) {
    this.#ws = ws;
    this.#closed = new Promise((resolve) => {
      ws.addEventListener("close", () => {
        this.#fail(new Error("the DevTools connection closed"));
        resolve();
      }, { once: true });
    });
    ws.addEventListener("message", (e) => this.#onMessage(String(e.data)));
  }

  /** Connects to a `ws://…/devtools/browser/…` URL. */
  static async connect(url: string, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<CdpConnection> {
    const ws = new WebSocket(url);
    const opened = new Promise<void>((resolve, reject) => {
      ws.addEventListener("open", () => resolve(), { once: true });
      ws.addEventListener("error", () => reject(new Error(`cannot connect to ${url}`)), {
        once: true,
      });
    });
    const closed = new Promise((resolve) => ws.addEventListener("close", resolve, { once: true }));
    try {
      await withDeadline(opened, timeoutMs, `the DevTools WebSocket ${url} to open`);
    } catch (err) {
      if (ws.readyState !== WebSocket.CLOSED) ws.close();
      await closed;
      throw err;
    }
    return new CdpConnection(ws);
  }

  /** Sends a command and resolves with its result; rejects on a CDP error or after the deadline. */
  // deno-lint-ignore no-explicit-any
  send<T = any>(
    method: string,
    params: Record<string, unknown> = {},
    sessionId?: string,
    timeoutMs = DEFAULT_TIMEOUT_MS,
  ): Promise<T> {
    if (this.#closeError) return Promise.reject(this.#closeError);
    const id = this.#nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for the answer to ${method}`));
      }, timeoutMs);
      this.#pending.set(id, { method, resolve, reject, timer });
      this.#ws.send(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }));
    });
  }

  /** Calls `listener` with every event until the returned function is called. */
  onEvent(listener: (event: CdpEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Starts waiting for the first event named `method` (of `sessionId`, if given) that passes
   * `predicate`. Start waiting *before* sending the command that causes the event.
   */
  waitForEvent(
    method: string,
    options: {
      sessionId?: string;
      predicate?: (params: CdpEvent["params"]) => boolean;
      timeoutMs?: number;
      what?: string;
    } = {},
  ): PendingEvent {
    const { sessionId, predicate, timeoutMs = DEFAULT_TIMEOUT_MS } = options;
    const what = options.what ?? `the CDP event ${method}`;
    let waiter!: EventWaiter;
    const promise = new Promise<CdpEvent>((resolve, reject) => {
      if (this.#closeError) {
        reject(new Error(`${this.#closeError.message} while waiting for ${what}`));
        return;
      }
      waiter = {
        match: (e) =>
          e.method === method && (sessionId === undefined || e.sessionId === sessionId) &&
          (predicate?.(e.params) ?? true),
        resolve,
        reject,
        timer: setTimeout(() => {
          this.#waiters.delete(waiter);
          reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
        }, timeoutMs),
      };
      this.#waiters.add(waiter);
    });
    return {
      promise,
      cancel: () => {
        if (waiter && this.#waiters.delete(waiter)) {
          clearTimeout(waiter.timer);
          promise.catch(() => {});
          waiter.reject(new Error(`stopped waiting for ${what}`));
        }
      },
    };
  }

  /** Closes the connection and waits until it is closed. */
  async close(): Promise<void> {
    if (this.#ws.readyState === WebSocket.CONNECTING || this.#ws.readyState === WebSocket.OPEN) {
      this.#ws.close();
    }
    await this.#closed;
  }

  /** Resolves when the connection has closed (e.g. the browser went away). */
  get closed(): Promise<void> {
    return this.#closed;
  }

  #onMessage(data: string) {
    const msg = JSON.parse(data);
    if (typeof msg.id === "number") {
      const pending = this.#pending.get(msg.id);
      if (!pending) return; // timed out already
      this.#pending.delete(msg.id);
      clearTimeout(pending.timer);
      if (msg.error) {
        pending.reject(
          new CdpError(pending.method, msg.error.code, msg.error.message, msg.error.data),
        );
      } else {
        pending.resolve(msg.result);
      }
      return;
    }
    const event: CdpEvent = { method: msg.method, params: msg.params, sessionId: msg.sessionId };
    for (const listener of this.#listeners) listener(event);
    for (const waiter of this.#waiters) {
      if (waiter.match(event)) {
        this.#waiters.delete(waiter);
        clearTimeout(waiter.timer);
        waiter.resolve(event);
      }
    }
  }

  #fail(err: Error) {
    this.#closeError = err;
    for (const [id, pending] of this.#pending) {
      this.#pending.delete(id);
      clearTimeout(pending.timer);
      pending.reject(new Error(`${err.message} before ${pending.method} was answered`));
    }
    for (const waiter of this.#waiters) {
      this.#waiters.delete(waiter);
      clearTimeout(waiter.timer);
      waiter.reject(new Error(`${err.message} while waiting for an event`));
    }
  }
}

/** Options of {@linkcode launchBrowser}. */
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

/** The result of `Runtime.evaluate`. */
interface EvaluateResult {
  result: { type: string; value?: unknown; description?: string };
  exceptionDetails?: {
    text: string;
    exception?: { description?: string; value?: unknown };
  };
}

/** One tab, driven through its flattened CDP session. */
export class Page {
  /** Console errors and uncaught exceptions the page reported, as readable lines. */
  readonly errors: string[] = [];
  /** Every console message the page logged (any level), as readable lines. */
  readonly console: string[] = [];
  readonly #unlisten: () => void;
  #closed = false;

  constructor(readonly cdp: CdpConnection, readonly targetId: string, readonly sessionId: string) {
    this.#unlisten = cdp.onEvent((e) => {
      if (e.sessionId !== sessionId) return;
      if (e.method === "Runtime.consoleAPICalled") {
        const text = (e.params.args ?? [])
          .map((a: { value?: unknown; description?: string }) =>
            a.value !== undefined ? String(a.value) : a.description ?? ""
          )
          .join(" ");
        this.console.push(`console.${e.params.type}: ${text}`);
        if (e.params.type === "error" || e.params.type === "assert") {
          this.errors.push(`console.${e.params.type}: ${text}`);
        }
      } else if (e.method === "Runtime.exceptionThrown") {
        const d = e.params.exceptionDetails;
        this.errors.push(
          `uncaught exception: ${d.exception?.description ?? d.text} (${d.url ?? ""}:${
            d.lineNumber + 1
          })`,
        );
      } else if (e.method === "Log.entryAdded" && e.params.entry.level === "error") {
        const entry = e.params.entry;
        this.errors.push(`browser log (${entry.source}): ${entry.text} ${entry.url ?? ""}`);
      }
    });
  }

  /** Sends a command to this page's session. */
  // deno-lint-ignore no-explicit-any
  send<T = any>(method: string, params: Record<string, unknown> = {}): Promise<T> {
    return this.cdp.send<T>(method, params, this.sessionId);
  }

  /** Starts waiting for an event of this page (see {@linkcode CdpConnection.waitForEvent}). */
  waitForEvent(
    method: string,
    options: {
      predicate?: (params: CdpEvent["params"]) => boolean;
      timeoutMs?: number;
      what?: string;
    } = {},
  ): PendingEvent {
    return this.cdp.waitForEvent(method, { ...options, sessionId: this.sessionId });
  }

  /**
   * Evaluates `expression` in the page and returns its value (by value; promises awaited).
   * Throws with the page's exception if it throws.
   */
  async evaluate<T = unknown>(expression: string): Promise<T> {
    const r = await this.send<EvaluateResult>("Runtime.evaluate", {
      expression,
      awaitPromise: true,
      returnByValue: true,
    });
    if (r.exceptionDetails) {
      const d = r.exceptionDetails;
      throw new Error(
        `evaluating in the page failed: ${d.exception?.description ?? d.text}\n  ${expression}`,
      );
    }
    return r.result.value as T;
  }

  /**
   * Polls `expression` every 50 ms until it returns a truthy value and returns that value;
   * fails after `timeoutMs` with `what` and the last value seen.
   */
  async waitFor<T = unknown>(
    expression: string,
    what: string,
    timeoutMs = DEFAULT_TIMEOUT_MS,
  ): Promise<T> {
    const deadline = performance.now() + timeoutMs;
    let last: unknown;
    while (true) {
      last = await this.evaluate<T>(expression);
      if (last) return last as T;
      if (performance.now() >= deadline) {
        throw new Error(
          `timed out after ${timeoutMs} ms waiting for ${what} (last value: ${
            JSON.stringify(last)
          })`,
        );
      }
      await delay(50);
    }
  }

  /** Navigates to `url` and waits for its load event. */
  async navigate(url: string, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<void> {
    const loaded = this.waitForEvent("Page.loadEventFired", {
      timeoutMs,
      what: `the load event of ${url}`,
    });
    try {
      const r = await this.send<{ errorText?: string }>("Page.navigate", { url });
      if (r.errorText) throw new Error(`navigating to ${url} failed: ${r.errorText}`);
    } catch (err) {
      loaded.cancel();
      throw err;
    }
    await loaded.promise;
  }

  /** Sets the viewport size in CSS pixels. */
  async setViewport(width: number, height: number): Promise<void> {
    await this.send("Emulation.setDeviceMetricsOverride", {
      width,
      height,
      deviceScaleFactor: 1,
      mobile: false,
    });
  }

  /** A PNG screenshot of the viewport. */
  async screenshot(): Promise<Uint8Array> {
    const { data } = await this.send<{ data: string }>("Page.captureScreenshot", {
      format: "png",
    });
    return Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
  }

  /**
   * Clicks the element matching `selector` like a user: scrolls it into view, checks it is
   * enabled, and presses and releases the left mouse button at its centre.
   */
  async click(selector: string): Promise<void> {
    const box = await this.evaluate<
      { x: number; y: number; disabled: boolean } | null
    >(`(() => {
      const el = document.querySelector(${JSON.stringify(selector)});
      if (!el) return null;
      el.scrollIntoView({ block: "center", inline: "center" });
      const r = el.getBoundingClientRect();
      return { x: r.left + r.width / 2, y: r.top + r.height / 2, disabled: !!el.disabled };
    })()`);
    if (!box) throw new Error(`cannot click ${selector}: no such element`);
    if (box.disabled) throw new Error(`cannot click ${selector}: it is disabled`);
    const at = { x: box.x, y: box.y };
    await this.send("Input.dispatchMouseEvent", { type: "mouseMoved", ...at });
    await this.send("Input.dispatchMouseEvent", {
      type: "mousePressed",
      ...at,
      button: "left",
      buttons: 1,
      clickCount: 1,
    });
    await this.send("Input.dispatchMouseEvent", {
      type: "mouseReleased",
      ...at,
      button: "left",
      buttons: 0,
      clickCount: 1,
    });
  }

  /** Types `text` into the focused element (as an IME commit: one `input` event). */
  async insertText(text: string): Promise<void> {
    await this.send("Input.insertText", { text });
  }

  /** Presses and releases Enter in the focused element. */
  async pressEnter(): Promise<void> {
    const key = { key: "Enter", code: "Enter", windowsVirtualKeyCode: 13 };
    await this.send("Input.dispatchKeyEvent", { type: "keyDown", ...key, text: "\r" });
    await this.send("Input.dispatchKeyEvent", { type: "keyUp", ...key });
  }

  /**
   * Closes the tab the way a user does: `Page.close` runs the page's beforeunload handlers (no
   * dialog unless one cancels the unload), then its pagehide/unload handlers; waits until the
   * browser has detached the tab's session.
   */
  close(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<void> {
    return this.#closeWith("Page.close", {}, this.sessionId, timeoutMs);
  }

  /**
   * Closes the tab with `Target.closeTarget`. Note: in Chromium 156 this runs pagehide/unload
   * but *not* beforeunload handlers (unlike {@linkcode Page.close}).
   */
  closeTarget(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<void> {
    return this.#closeWith("Target.closeTarget", { targetId: this.targetId }, undefined, timeoutMs);
  }

  async #closeWith(
    method: string,
    params: Record<string, unknown>,
    sessionId: string | undefined,
    timeoutMs: number,
  ): Promise<void> {
    if (this.#closed) return;
    const detached = this.cdp.waitForEvent("Target.detachedFromTarget", {
      predicate: (p) => p.sessionId === this.sessionId,
      timeoutMs,
      what: `the tab ${this.targetId} to close (${method})`,
    });
    try {
      const r = await this.cdp.send<{ success?: boolean }>(method, params, sessionId);
      if (r?.success === false) throw new Error(`${method} refused to close the tab`);
    } catch (err) {
      detached.cancel();
      throw err;
    }
    await detached.promise;
    this.#closed = true;
    this.#unlisten();
  }
}
