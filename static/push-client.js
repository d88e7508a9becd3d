/* @ts-self-types="./push-client.d.ts" */
// push-client.js: the client library of the push server, one ES module with no dependency that
// runs unchanged in browsers and in Deno (types in push-client.d.ts).
//
//   import { PushClient } from "/push-client.js";
//   const client = new PushClient("wss://push.example/", { token: () => fetchToken() });
//   const sub = client.subscribe("news", (p) => console.log(p.channel, p.id, p.data));
//   client.on("state", (state) => console.log(state)); // "connecting" | "open" | "closed"
//   client.on("notice", (n) => { if (n.notice === "lost") reloadFromBackend(n.channel); });
//   sub.unsubscribe();
//   client.close(); // says `quit`: the server closes with 1000
//
// It reconnects by itself with exponential backoff (capped, then jittered) and resubscribes every
// channel from the last publication it delivered, so the application sees no gap and no
// duplicate across drops and server restarts (when Redis keeps the epoch); when the server cannot
// replay what was missed, the application gets the `lost` notice.

const DEFAULTS = {
  backoffBaseMs: 500,
  backoffCapMs: 30_000,
  stableAfterMs: 10_000, // a connection open this long resets the backoff
  quitTimeoutMs: 3000, // after `quit`, how long the server gets to close before we do
};

/** Returns the parsed value if `text` is a JSON object, else null (plain text). */
export function parseObject(text) {
  if (!text.trimStart().startsWith("{")) return null; // cheap pre-check: most lines are plain
  try {
    const value = JSON.parse(text);
    return value && typeof value === "object" && !Array.isArray(value) ? value : null;
  } catch {
    return null;
  }
}

/** One channel the application subscribed to, with its resume position. */
class Subscription {
  #client;
  #onPublication;
  #onLost;

  constructor(client, channel, onPublication, options) {
    this.#client = client;
    this.channel = channel;
    this.#onPublication = onPublication;
    this.#onLost = options?.onLost;
    /** @type {"pending" | "subscribed" | "lost" | "refused" | "closed"} */
    this.status = "pending";
    /** The epoch of the last publication delivered (or subscribed at). */
    this.epoch = options?.since?.epoch ?? null;
    /** The id of the last publication delivered (or subscribed at). */
    this.id = options?.since?.id ?? null;
  }

  /** Leaves the channel; no more publications are delivered. */
  unsubscribe() {
    if (this.status === "closed") return;
    this.status = "closed";
    this.#client._forget(this);
  }

  /** The command that (re)joins the channel, resuming after the last position known. */
  _command() {
    return this.epoch === null
      ? `subscribe ${this.channel}`
      : `subscribe ${this.channel} ${this.epoch}:${this.id}`;
  }

  _subscribed(n) {
    // A `lost` notice of this same join (whichever of the two came first) stays visible.
    if (this.status !== "lost") this.status = "subscribed";
    // Keep our own position while the server replays what we missed (same epoch, recovered);
    // otherwise start from the server's position.
    const resumed = n.recovered === true && this.epoch === n.epoch && this.id !== null;
    if (typeof n.epoch === "string" && typeof n.id === "number" && !resumed) {
      this.epoch = n.epoch;
      this.id = n.id;
    }
  }

  _publication(p) {
    if (typeof p.epoch !== "string" || typeof p.id !== "number") return;
    // Exactly once: a replay never repeats what was delivered in this epoch.
    if (p.epoch === this.epoch && this.id !== null && p.id <= this.id) return;
    this.epoch = p.epoch;
    this.id = p.id;
    this.#onPublication({
      channel: p.channel,
      epoch: p.epoch,
      id: p.id,
      data: p.data,
      ...extra(p),
    });
  }

  _lost(n) {
    this.status = "lost";
    if (typeof n.epoch === "string" && typeof n.id === "number") {
      this.epoch = n.epoch;
      this.id = n.id;
    }
    this.#onLost?.(n);
  }
}

function extra(p) {
  return p.encoding === undefined ? {} : { encoding: p.encoding };
}

/** A connection to the push server that survives drops until `close()`. */
export class PushClient {
  /** @type {"connecting" | "open" | "closed"} */
  state = "closed";
  /** The socket, while there is one. */
  socket = null;
  /** When the next attempt starts (`performance.now()` time) while waiting out the backoff; else 0. */
  retryAt = 0;

  #url;
  #token;
  #options;
  #WebSocket;
  /** @type {Map<string, Subscription>} */
  #subscriptions = new Map();
  #listeners = new Map();
  #closing = false;
  #seq = 0;
  #attempts = 0;
  #retryTimer = 0;
  #quitTimer = 0;
  #quitSent = false; // per socket: `quit` goes out once
  #openedAt = 0;

  /**
   * @param {string | (() => string | Promise<string>)} url the `ws://`/`wss://` URL, or a function
   *   asked on every attempt
   * @param {object} [options] `token` (a string, or a function returning one, asked at connect and
   *   when the server says `expiring`), `connect` (false: wait for `connect()`), backoff timings,
   *   `WebSocket` (another implementation)
   */
  constructor(url, options = {}) {
    this.#url = url;
    this.#token = options.token;
    this.#options = { ...DEFAULTS, ...options };
    this.#WebSocket = options.WebSocket ?? globalThis.WebSocket;
    // Connect once the caller's synchronous code has run, so listeners it adds right after
    // `new PushClient(…)` see the first "connecting"; close() before then cancels it.
    if (options.connect !== false) {
      queueMicrotask(() => !this.#closing && this.connect());
    }
  }

  /**
   * Listens to `state`, `open` (the URL), `close` ({code, reason, wasClean}), `notice`,
   * `message` (every message, raw), `error` or `retry`; returns a function that stops it.
   */
  on(event, listener) {
    let set = this.#listeners.get(event);
    if (!set) this.#listeners.set(event, set = new Set());
    set.add(listener);
    return () => set.delete(listener);
  }

  /**
   * Subscribes to `channel`; `onPublication` gets `{channel, epoch, id, data}` for each
   * publication, once and in order. `options.since` ({epoch, id}) resumes from a stored
   * position; `options.onLost` is told when the server cannot replay what was missed.
   */
  subscribe(channel, onPublication, options) {
    if (this.#subscriptions.has(channel)) throw new Error(`already subscribed to ${channel}`);
    const sub = new Subscription(this, channel, onPublication, options);
    this.#subscriptions.set(channel, sub);
    if (this.state === "open") this.#send(sub._command());
    return sub;
  }

  /** The subscriptions, by channel. */
  get subscriptions() {
    return this.#subscriptions;
  }

  /** Sends a text message when open; false otherwise. */
  send(text) {
    return this.#send(String(text));
  }

  /** Connects (again) after `close()`, or when constructed with `connect: false`. */
  connect() {
    if (this.state !== "closed") return;
    this.#closing = false;
    this.#attempts = 0;
    this.#start();
  }

  /** Says `quit` and lets the server close; no reconnection. */
  close() {
    this.#closing = true;
    this.#seq++; // drops a URL or token lookup in flight
    clearTimeout(this.#retryTimer);
    this.retryAt = 0;
    const ws = this.socket;
    if (!ws) return this.#setState("closed");
    if (ws.readyState === 1) this.#quit(ws);
    else this.#armQuitTimer(ws); // still connecting: the open handler says quit
  }

  _forget(sub) {
    if (this.#subscriptions.get(sub.channel) !== sub) return;
    this.#subscriptions.delete(sub.channel);
    this.#send(`unsubscribe ${sub.channel}`);
  }

  #emit(event, ...args) {
    for (const listener of this.#listeners.get(event) ?? []) {
      try {
        listener(...args);
      } catch (err) {
        // One listener's bug must not stop the client; report it where developers look.
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  }

  #setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.#emit("state", state);
  }

  #send(text) {
    if (this.socket?.readyState !== 1) return false;
    this.socket.send(text);
    return true;
  }

  async #currentToken() {
    const token = this.#token;
    return typeof token === "function" ? await token() : token;
  }

  async #start() {
    this.retryAt = 0;
    const seq = ++this.#seq;
    this.#setState("connecting");
    let url;
    try {
      url = typeof this.#url === "function" ? await this.#url() : this.#url;
      const token = await this.#currentToken();
      if (token) {
        const u = new URL(url);
        u.searchParams.set("token", token);
        url = u.href;
      }
    } catch (err) {
      if (seq !== this.#seq) return;
      this.#emit("error", { error: `cannot connect: ${err?.message ?? err}` });
      return this.#retry();
    }
    if (seq !== this.#seq) return;
    let ws;
    try {
      ws = new this.#WebSocket(url);
    } catch (err) {
      this.#emit("error", { error: `cannot open the WebSocket: ${err?.message ?? err}` });
      return this.#retry();
    }
    ws.binaryType = "arraybuffer";
    this.socket = ws;
    this.#quitSent = false;
    ws.onopen = () => this.#onOpen(ws);
    ws.onmessage = (ev) => ws === this.socket && this.#onMessage(ev.data);
    // The event carries no detail on purpose (browsers hide network errors from pages).
    ws.onerror = () => ws === this.socket && this.#emit("error", { error: "WebSocket error" });
    ws.onclose = (ev) => this.#onClose(ws, ev);
  }

  #onOpen(ws) {
    if (ws !== this.socket) return;
    this.#openedAt = performance.now();
    this.#setState("open");
    this.#emit("open", ws.url);
    if (this.#closing) return this.#quit(ws);
    for (const sub of this.#subscriptions.values()) {
      sub.status = "pending";
      this.#send(sub._command());
    }
  }

  #onMessage(data) {
    this.#emit("message", data);
    if (typeof data !== "string") return;
    const obj = parseObject(data);
    if (!obj) return;
    const sub = typeof obj.channel === "string" ? this.#subscriptions.get(obj.channel) : undefined;
    if (typeof obj.notice === "string") {
      if (sub && obj.notice === "subscribed") sub._subscribed(obj);
      else if (sub && obj.notice === "lost") sub._lost(obj);
      else if (sub && obj.notice === "unsubscribed") {
        sub.status = "closed";
        this.#subscriptions.delete(sub.channel);
      } else if (obj.notice === "expiring") this.#refreshToken();
      this.#emit("notice", obj);
    } else if (typeof obj.error === "string") {
      if (sub && sub.status === "pending") sub.status = "refused";
      this.#emit("error", obj);
    } else if (sub && "data" in obj) {
      sub._publication(obj);
    }
  }

  async #refreshToken() {
    if (typeof this.#token !== "function") return;
    try {
      const token = await this.#token();
      if (token) this.#send(`auth ${token}`);
    } catch (err) {
      this.#emit("error", { error: `token refresh failed: ${err?.message ?? err}` });
    }
  }

  #onClose(ws, ev) {
    if (ws !== this.socket) return;
    this.socket = null;
    clearTimeout(this.#quitTimer);
    for (const sub of this.#subscriptions.values()) sub.status = "pending";
    this.#emit("close", { code: ev.code, reason: ev.reason, wasClean: ev.wasClean });
    if (this.#openedAt && performance.now() - this.#openedAt >= this.#options.stableAfterMs) {
      this.#attempts = 0;
    }
    this.#openedAt = 0;
    // 4001 token expired, 4003 disconnected by the server: reconnecting would only repeat it,
    // unless a token function can give a fresh token.
    const final = this.#closing || ev.code === 4003 ||
      (ev.code === 4001 && typeof this.#token !== "function");
    if (final) return this.#setState("closed");
    this.#retry(ev);
  }

  #retry(ev) {
    if (this.#closing) return this.#setState("closed");
    // Exponential backoff, capped, then ±25% jitter so clients dropped together do not return
    // together.
    const o = this.#options;
    const nominal = Math.min(o.backoffCapMs, o.backoffBaseMs * 2 ** Math.min(this.#attempts, 16));
    const delay = nominal * (0.75 + Math.random() * 0.5);
    this.#attempts++;
    this.retryAt = performance.now() + delay;
    this.#setState("connecting");
    this.#emit("retry", { attempt: this.#attempts, delay, code: ev?.code, reason: ev?.reason });
    this.#retryTimer = setTimeout(() => this.#start(), delay);
  }

  /** Tries at once instead of waiting out the backoff (e.g. when the browser is back online). */
  retryNow() {
    if (this.state !== "connecting" || this.socket) return;
    clearTimeout(this.#retryTimer);
    this.#start();
  }

  #quit(ws) {
    if (ws.readyState !== 1 || this.#quitSent) return;
    this.#quitSent = true;
    ws.send("quit");
    this.#armQuitTimer(ws);
  }

  #armQuitTimer(ws) {
    clearTimeout(this.#quitTimer);
    this.#quitTimer = setTimeout(() => {
      if (ws === this.socket && ws.readyState < 2) ws.close(1000, "client quit");
    }, this.#options.quitTimeoutMs);
  }
}
