/**
 * One browser tab for browser tests, driven through its flattened CDP session: navigate,
 * evaluate, click, type, screenshot, close. Every wait has a deadline.
 *
 * @module
 */
import { delay } from "./async.ts";
import {
  type CdpConnection,
  type CdpEvent,
  DEFAULT_TIMEOUT_MS,
  type PendingEvent,
} from "./cdp_connection.ts";

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
