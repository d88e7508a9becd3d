/**
 * A small Chrome DevTools Protocol connection for browser tests, built on Deno's own `WebSocket`
 * (no npm or JSR packages): one flattened CDP connection, commands with deadlines, and events
 * to wait for or listen to. {@linkcode Browser} (browser.ts) launches Chromium over it and
 * {@linkcode Page} (page.ts) drives one tab.
 *
 * Every wait here has a deadline and fails with a message naming what was awaited; every timer
 * is cleared and every socket closed, so Deno's test sanitizers stay quiet.
 *
 * @module
 */
import { withDeadline } from "./async.ts";

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
