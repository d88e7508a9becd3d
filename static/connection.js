// The connection to the push server, with no DOM: one WebSocket at a time, reconnection with
// capped exponential backoff and jitter, and the `quit` goodbye the protocol asks for. The page
// wires it to its view (client.js); the same module runs in Deno, and is the core the client
// library grows from.

const BACKOFF_BASE_MS = 500;
const BACKOFF_CAP_MS = 30_000;
const STABLE_AFTER_MS = 10_000; // a connection open this long resets the backoff
const QUIT_TIMEOUT_MS = 3000; // after `quit`, how long the server gets to close before we do

/**
 * @typedef {"connecting" | "open" | "closed" | "reconnecting"} ConnectionState
 *
 * @typedef {object} ConnectionEvents
 * @property {(state: ConnectionState) => void} [state] the state changed
 * @property {(data: string | ArrayBuffer) => void} [message] a message from the server
 * @property {(kind: string, text: string) => void} [log] something worth telling the user
 * @property {() => void} [open] the socket opened (subscribe here)
 * @property {(event: CloseEvent) => void} [close] the socket closed
 */

/** One logical connection that survives socket drops until `disconnect()`. */
export class PushConnection {
  /** @type {ConnectionState} */
  state = "closed";
  /** @type {WebSocket | null} */
  socket = null;
  /** When the next attempt starts (performance.now() time), while reconnecting. */
  retryAt = 0;

  #resolveUrl;
  #on;
  #userClosing = false; // Disconnect, `quit` or leaving the page: no reconnect
  #seq = 0; // bumped by connect/disconnect so a late URL answer is ignored
  #attempts = 0; // consecutive failed connections, drives the backoff
  #retryTimer = 0;
  #quitTimer = 0;
  #quitSent = false; // per socket: `quit` goes out once
  #openedAt = 0;

  /**
   * @param {() => Promise<string>} resolveUrl asked on every attempt: the server's address may
   *   change when it restarts
   * @param {ConnectionEvents} on
   */
  constructor(resolveUrl, on) {
    this.#resolveUrl = resolveUrl;
    this.#on = on;
  }

  /** Whether the socket is open. */
  get isOpen() {
    return this.socket?.readyState === WebSocket.OPEN;
  }

  /** A deliberate attempt (button, test hook): start the backoff afresh. */
  connect() {
    if (this.state === "connecting" || this.state === "open") return;
    this.#attempts = 0;
    return this.#start();
  }

  /** Disconnect the way the protocol intends: send `quit` and let the server close. */
  disconnect() {
    this.#userClosing = true;
    this.#seq++; // drops a URL lookup in flight
    this.#cancelRetry();
    if (!this.socket) {
      this.#setState("closed");
      return;
    }
    if (this.socket.readyState === WebSocket.OPEN) this.#sendQuit();
    // Still connecting: the open handler sends quit; this timer gives up if it never opens.
    else if (!this.#quitTimer) this.#armQuitTimer();
  }

  /** Sends `text` if open; false otherwise. */
  send(text) {
    if (!this.isOpen) return false;
    this.socket.send(text);
    this.#on.log?.("sent", text);
    return true;
  }

  /** The page is going away: say `quit` at once, without waiting for an answer. */
  goodbye() {
    if (!this.isOpen || this.#quitSent) return;
    this.#userClosing = true;
    this.#quitSent = true;
    this.socket.send("quit");
  }

  /** Back online: no point waiting out the backoff. */
  retryNow() {
    if (this.state === "reconnecting") this.#start();
  }

  #setState(next) {
    this.state = next;
    this.#on.state?.(next);
  }

  async #start() {
    this.#cancelRetry();
    this.#userClosing = false;
    const seq = ++this.#seq;
    this.#setState("connecting");
    let url;
    try {
      url = await this.#resolveUrl();
    } catch (err) {
      if (seq !== this.#seq) return; // Disconnect was pressed meanwhile
      this.#on.log?.("error", `cannot load config.json: ${err.message}`);
      this.#scheduleReconnect();
      return;
    }
    if (seq !== this.#seq) return;
    let ws;
    try {
      ws = new WebSocket(url);
    } catch (err) {
      // e.g. a ws:// URL on an https:// page (mixed content).
      this.#on.log?.("error", `cannot open ${url}: ${err.message}`);
      this.#scheduleReconnect();
      return;
    }
    ws.binaryType = "arraybuffer";
    this.socket = ws;
    this.#quitSent = false;
    ws.addEventListener("open", () => this.#onOpen(ws, url));
    ws.addEventListener("message", (ev) => {
      if (ws === this.socket) this.#on.message?.(ev.data);
    });
    ws.addEventListener("error", () => {
      // The event carries no detail on purpose (browsers hide network errors from pages).
      if (ws === this.socket) {
        this.#on.log?.("error", `WebSocket error (readyState=${ws.readyState})`);
      }
    });
    ws.addEventListener("close", (ev) => this.#onClose(ws, ev));
  }

  #onOpen(ws, url) {
    if (ws !== this.socket) return;
    this.#openedAt = performance.now();
    this.#setState("open");
    this.#on.log?.("open", `connected to ${url}`);
    if (this.#userClosing) {
      // Disconnect was pressed while the socket was still connecting.
      this.#sendQuit();
      return;
    }
    this.#on.open?.();
  }

  #onClose(ws, ev) {
    if (ws !== this.socket) return;
    this.socket = null;
    clearTimeout(this.#quitTimer);
    this.#quitTimer = 0;
    this.#on.log?.(
      "close",
      `readyState=${ws.readyState} code=${ev.code} reason=${ev.reason || "(none)"}` +
        (ev.wasClean ? "" : " (not clean)"),
    );
    this.#on.close?.(ev);
    if (this.#openedAt && performance.now() - this.#openedAt >= STABLE_AFTER_MS) {
      this.#attempts = 0;
    }
    this.#openedAt = 0;
    if (this.#userClosing) this.#setState("closed");
    else this.#scheduleReconnect();
  }

  #sendQuit() {
    if (this.#quitSent) return; // pressed twice: keep the first deadline
    this.#quitSent = true;
    this.send("quit");
    this.#armQuitTimer();
  }

  #armQuitTimer() {
    clearTimeout(this.#quitTimer);
    const ws = this.socket;
    this.#quitTimer = setTimeout(() => {
      this.#quitTimer = 0;
      if (ws !== this.socket || ws.readyState >= WebSocket.CLOSING) return;
      this.#on.log?.(
        "info",
        `server did not close within ${QUIT_TIMEOUT_MS / 1000} s; closing from here`,
      );
      ws.close(1000, "client quit");
    }, QUIT_TIMEOUT_MS);
  }

  #scheduleReconnect() {
    if (this.#userClosing) {
      this.#setState("closed");
      return;
    }
    // Exponential backoff with +-25% jitter so clients dropped together do not return together.
    const nominal = Math.min(
      BACKOFF_CAP_MS,
      BACKOFF_BASE_MS * 2 ** Math.min(this.#attempts, 16),
    );
    const delay = Math.min(BACKOFF_CAP_MS, nominal * (0.75 + Math.random() * 0.5));
    this.#attempts++;
    this.retryAt = performance.now() + delay;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = 0;
      this.#start();
    }, delay);
    this.#setState("reconnecting");
    this.#on.log?.(
      "info",
      `reconnecting in ${(delay / 1000).toFixed(1)} s (attempt ${this.#attempts})`,
    );
  }

  #cancelRetry() {
    clearTimeout(this.#retryTimer);
    this.#retryTimer = 0;
  }
}
