// Browser client for the push server: connect, log everything, subscribe to channels and resume
// them after a reconnect. No framework and no build step; loaded as an ES module (deferred), so
// the DOM is ready when this runs.
//
// All text from the server is displayed with textContent (never innerHTML), so it cannot inject
// markup.

const MAX_LOG_ENTRIES = 500; // the log is bounded so a long session does not grow memory
const MAX_TEXT_CHARS = 2000; // and so is each entry: one huge message must not bloat the page
const QUIT_TIMEOUT_MS = 3000; // after `quit`, how long the server gets to close before we do
const BACKOFF_BASE_MS = 500;
const BACKOFF_CAP_MS = 30_000;
const STABLE_AFTER_MS = 10_000; // a connection open this long resets the backoff
const CONFIG_TIMEOUT_MS = 10_000;
const RATE_WINDOW_S = 5; // messages/s is averaged over this many whole seconds

const ui = Object.fromEntries(
  [
    "status",
    "retry",
    "ws-url",
    "rate",
    "count",
    "connect",
    "disconnect",
    "send-form",
    "message",
    "send",
    "channel-form",
    "channel",
    "channels",
    "log",
    "clear",
  ].map((id) => [id, document.getElementById(id)]),
);

// ---------------------------------------------------------------------------------------------
// Connection state

/** @type {"connecting" | "open" | "closed" | "reconnecting"} */
let state = "closed";
/** @type {WebSocket | null} */
let socket = null;
let userClosing = false; // the user asked to close (Disconnect, `quit`, leaving the page): no reconnect
let connectSeq = 0; // bumped by connect/disconnect so a late config.json answer is ignored
let attempts = 0; // consecutive failed connections, drives the backoff
let retryTimer = 0;
let retryAt = 0;
let quitTimer = 0;
let quitSent = false; // per socket: `quit` goes out once
let openedAt = 0;
let lastDemo = null;

function setState(next) {
  state = next;
  ui.status.textContent = next;
  ui.status.dataset.state = next;
  ui.status.parentElement.dataset.state = next; // the coloured wrapper, which holds #retry too
  ui.connect.disabled = next === "connecting" || next === "open";
  ui.disconnect.disabled = next === "closed";
  ui.send.disabled = next !== "open";
  ui.retry.hidden = next !== "reconnecting";
  renderRetry();
}

/** Public connect (button, test hook): a deliberate attempt, so start the backoff afresh. */
function connect() {
  if (state === "connecting" || state === "open") return;
  attempts = 0;
  return start();
}

async function start() {
  cancelRetry();
  userClosing = false;
  const seq = ++connectSeq;
  setState("connecting");

  let url;
  try {
    // Fetched on every attempt: the WebSocket port is not ours to guess and may change
    // when the server restarts.
    url = await loadConfig();
  } catch (err) {
    if (seq !== connectSeq) return; // Disconnect was pressed meanwhile
    addLog("error", `cannot load config.json: ${err.message}`);
    scheduleReconnect();
    return;
  }
  if (seq !== connectSeq) return;

  let ws;
  try {
    ws = new WebSocket(url);
  } catch (err) {
    // e.g. a ws:// URL on an https:// page (mixed content).
    addLog("error", `cannot open ${url}: ${err.message}`);
    scheduleReconnect();
    return;
  }
  ws.binaryType = "arraybuffer";
  socket = ws;
  quitSent = false;
  ws.addEventListener("open", () => onOpen(ws, url));
  ws.addEventListener("message", (ev) => {
    if (ws === socket) onMessage(ev);
  });
  ws.addEventListener("error", () => {
    // The event carries no detail on purpose (browsers hide network errors from pages).
    if (ws === socket) addLog("error", `WebSocket error (readyState=${ws.readyState})`);
  });
  ws.addEventListener("close", (ev) => onClose(ws, ev));
}

async function loadConfig() {
  const res = await fetch("config.json", {
    cache: "no-store",
    signal: AbortSignal.timeout(CONFIG_TIMEOUT_MS),
  });
  if (!res.ok) throw new Error(`HTTP ${res.status}`);
  const cfg = await res.json();
  if (typeof cfg?.wsUrl !== "string") throw new Error("no wsUrl in it");
  const url = new URL(cfg.wsUrl);
  if (url.protocol !== "ws:" && url.protocol !== "wss:") {
    throw new Error(`wsUrl must be ws:// or wss://, got ${url.protocol}`);
  }
  ui["ws-url"].textContent = url.href;
  const demo = cfg.demo === true;
  if (demo !== lastDemo) addLog("info", `server demo feed: ${demo ? "on" : "off"}`);
  lastDemo = demo;
  return url.href;
}

function onOpen(ws, url) {
  if (ws !== socket) return;
  openedAt = performance.now();
  setState("open");
  addLog("open", `connected to ${url}`);
  if (userClosing) {
    // Disconnect was pressed while the socket was still connecting.
    sendQuit();
    return;
  }
  // Re-subscribe everything the user asked for; with a known position the server can replay
  // what we missed while disconnected.
  for (const ch of channels.values()) {
    ch.status = "pending";
    renderChannel(ch);
    sendRaw(subscribeCommand(ch));
  }
}

function onClose(ws, ev) {
  if (ws !== socket) return;
  socket = null;
  clearTimeout(quitTimer);
  quitTimer = 0;
  addLog(
    "close",
    `readyState=${ws.readyState} code=${ev.code} reason=${ev.reason || "(none)"}` +
      (ev.wasClean ? "" : " (not clean)"),
  );
  for (const ch of channels.values()) {
    ch.status = "pending";
    renderChannel(ch);
  }
  if (openedAt && performance.now() - openedAt >= STABLE_AFTER_MS) attempts = 0;
  openedAt = 0;
  if (userClosing) setState("closed");
  else scheduleReconnect();
}

/** Disconnect the way the protocol intends: send `quit` and let the server close. */
function disconnect() {
  userClosing = true;
  connectSeq++; // drops a config.json fetch in flight
  cancelRetry();
  if (!socket) {
    setState("closed");
    return;
  }
  if (socket.readyState === WebSocket.OPEN) sendQuit();
  // Still connecting: onOpen sends quit; this timer gives up if the socket never opens.
  else if (!quitTimer) armQuitTimer();
}

function sendQuit() {
  if (quitSent) return; // pressed twice: keep the first deadline
  quitSent = true;
  sendRaw("quit");
  armQuitTimer();
}

function armQuitTimer() {
  clearTimeout(quitTimer);
  const ws = socket;
  quitTimer = setTimeout(() => {
    quitTimer = 0;
    if (ws !== socket || ws.readyState >= WebSocket.CLOSING) return;
    addLog("info", `server did not close within ${QUIT_TIMEOUT_MS / 1000} s; closing from here`);
    ws.close(1000, "client quit");
  }, QUIT_TIMEOUT_MS);
}

function scheduleReconnect() {
  if (userClosing) {
    setState("closed");
    return;
  }
  // Exponential backoff with +-25% jitter so clients dropped together do not return together.
  const nominal = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** Math.min(attempts, 16));
  const delay = Math.min(BACKOFF_CAP_MS, nominal * (0.75 + Math.random() * 0.5));
  attempts++;
  retryAt = performance.now() + delay;
  retryTimer = setTimeout(() => {
    retryTimer = 0;
    start();
  }, delay);
  setState("reconnecting");
  addLog("info", `reconnecting in ${(delay / 1000).toFixed(1)} s (attempt ${attempts})`);
}

function cancelRetry() {
  clearTimeout(retryTimer);
  retryTimer = 0;
}

function renderRetry() {
  if (state !== "reconnecting") return;
  const secs = Math.max(0, Math.ceil((retryAt - performance.now()) / 1000));
  ui.retry.textContent = `in ${secs} s`;
}

// ---------------------------------------------------------------------------------------------
// Sending

function isOpen() {
  return socket?.readyState === WebSocket.OPEN;
}

function sendRaw(text) {
  if (!isOpen()) return false;
  socket.send(text);
  addLog("sent", text);
  return true;
}

/** Public send: `quit` typed by the user is a disconnect (no reconnect, 3 s fallback). */
function send(text) {
  text = String(text);
  if (!isOpen()) {
    addLog("info", "not connected; nothing sent");
    return false;
  }
  if (text.trim() === "quit") {
    disconnect();
    return true;
  }
  return sendRaw(text);
}

// ---------------------------------------------------------------------------------------------
// Receiving

let total = 0;
// Per-second counters in a ring; one slot more than the window for the current partial second.
const buckets = new Array(RATE_WINDOW_S + 1).fill(0);
let bucketSec = Math.floor(performance.now() / 1000);

function advanceBuckets() {
  const sec = Math.floor(performance.now() / 1000);
  const steps = Math.min(sec - bucketSec, buckets.length);
  for (let i = 1; i <= steps; i++) buckets[(bucketSec + i) % buckets.length] = 0;
  bucketSec = Math.max(bucketSec, sec);
}

function countMessage() {
  advanceBuckets();
  buckets[bucketSec % buckets.length]++;
  ui.count.textContent = String(++total);
}

function renderRate() {
  advanceBuckets();
  const current = bucketSec % buckets.length;
  const sum = buckets.reduce((acc, n, i) => (i === current ? acc : acc + n), 0);
  ui.rate.textContent = (sum / RATE_WINDOW_S).toFixed(1);
}

function onMessage(ev) {
  countMessage();
  if (typeof ev.data !== "string") {
    const bytes = new Uint8Array(ev.data);
    addLog("message", `(binary frame) ${describeBytes(bytes)}`, { type: "binary" });
    return;
  }
  const text = ev.data;
  const obj = parseObject(text);
  if (!obj) {
    const type = text.startsWith("Server received: ") ? "ack" : "text";
    addLog("message", text, { type });
  } else if (typeof obj.notice === "string") {
    onNotice(obj, text);
  } else if (typeof obj.error === "string") {
    addLog("message", `server error: ${obj.error}`, { type: "error" });
  } else if (typeof obj.channel === "string" && "data" in obj) {
    onPublication(obj);
  } else {
    addLog("message", text, { type: "json" });
  }
}

/** Returns the parsed value if `text` is a JSON object, else null (shown as plain text). */
function parseObject(text) {
  if (!text.trimStart().startsWith("{")) return null; // cheap pre-check: most lines are plain
  try {
    const value = JSON.parse(text);
    return value && typeof value === "object" && !Array.isArray(value) ? value : null;
  } catch {
    return null;
  }
}

function onPublication(p) {
  const ch = channels.get(p.channel);
  if (ch && typeof p.epoch === "string" && typeof p.id === "number") {
    // The resume point is the last publication actually received.
    ch.epoch = p.epoch;
    ch.id = p.id;
    renderChannel(ch);
  }
  let body;
  if (p.encoding === "base64") body = describeBase64(p.data);
  else body = typeof p.data === "string" ? p.data : JSON.stringify(p.data);
  addLog("message", `[${p.channel} #${p.id}] ${body}`, {
    type: "publication",
    channel: p.channel,
    id: String(p.id),
  });
}

function onNotice(n, raw) {
  const name = typeof n.channel === "string" ? n.channel : "";
  const attrs = { type: "notice", notice: n.notice, channel: name };
  if (n.notice === "subscribed" && name) {
    // Also covers `subscribe NAME` typed into the message box.
    const ch = channels.get(name) ?? addChannel(name);
    ch.status = "subscribed";
    // Take the server's position unless it is resuming ours (same epoch, recovered): then our
    // own last-seen id stays the truth while the replayed publications arrive.
    const resumed = n.recovered === true && ch.epoch === n.epoch && ch.id !== null;
    if (typeof n.epoch === "string" && typeof n.id === "number" && !resumed) {
      ch.epoch = n.epoch;
      ch.id = n.id;
    }
    renderChannel(ch);
    const how = n.recovered === true ? "recovered" : "not recovered";
    addLog("message", `[${name}] subscribed at ${n.epoch}:${n.id} (${how})`, attrs);
  } else if (n.notice === "lost" && name) {
    const ch = channels.get(name);
    if (ch) {
      ch.status = "lost";
      renderChannel(ch);
    }
    addLog("message", `[${name}] LOST: ${n.reason ?? "no reason given"}`, attrs);
  } else if (n.notice === "unsubscribed" && name) {
    removeChannel(name);
    addLog("message", `[${name}] unsubscribed`, attrs);
  } else {
    addLog("message", raw, attrs);
  }
}

function describeBase64(data) {
  let bytes;
  try {
    bytes = Uint8Array.from(atob(String(data)), (c) => c.charCodeAt(0));
  } catch {
    return `(invalid base64) ${data}`;
  }
  return `(base64) ${describeBytes(bytes)}`;
}

/** Shows bytes as text when they are valid UTF-8, else as a hex preview. */
function describeBytes(bytes) {
  const size = `${bytes.length} bytes`;
  try {
    const text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    // Control characters (other than tab/newline/CR) mean "not really text".
    // deno-lint-ignore no-control-regex
    if (!/[\u0000-\u0008\u000e-\u001f]/.test(text)) return `${size}: ${text}`;
  } catch {
    // not UTF-8: fall through to hex
  }
  const shown = bytes.subarray(0, 32);
  const hex = Array.from(shown, (b) => b.toString(16).padStart(2, "0")).join(" ");
  return `${size}: ${hex}${bytes.length > shown.length ? " …" : ""}`;
}

// ---------------------------------------------------------------------------------------------
// Channels: the list is the user's intent; it survives disconnects and is re-sent on open.

/** @type {Map<string, {name: string, epoch: string|null, id: number|null, status: string, li?: HTMLElement}>} */
const channels = new Map();

function subscribeCommand(ch) {
  return ch.epoch === null ? `subscribe ${ch.name}` : `subscribe ${ch.name} ${ch.epoch}:${ch.id}`;
}

function subscribe(name) {
  name = String(name).trim();
  // The protocol is space-separated, so a name with whitespace cannot be sent.
  if (!/^\S+$/.test(name)) {
    addLog("info", "a channel name must be non-empty and have no spaces");
    return false;
  }
  let ch = channels.get(name);
  if (ch?.status === "subscribed") {
    addLog("info", `already subscribed to ${name}`);
    return false;
  }
  ch ??= addChannel(name);
  if (isOpen()) return sendRaw(subscribeCommand(ch));
  addLog("info", `not connected; will subscribe to ${name} once connected`);
  return false;
}

function unsubscribe(name) {
  name = String(name);
  if (!channels.has(name)) return false;
  removeChannel(name);
  return sendRaw(`unsubscribe ${name}`);
}

function addChannel(name) {
  const ch = { name, epoch: null, id: null, status: "pending" };
  channels.set(name, ch);
  renderChannel(ch);
  return ch;
}

function removeChannel(name) {
  channels.get(name)?.li?.remove();
  channels.delete(name);
}

function renderChannel(ch) {
  if (!ch.li) {
    ch.li = document.createElement("li");
    ch.li.dataset.channel = ch.name;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "unsubscribe secondary small";
    button.dataset.channel = ch.name;
    button.textContent = "Unsubscribe";
    button.addEventListener("click", () => unsubscribe(ch.name));
    ch.li.append(span("name", ch.name), span("pos", ""), span("chan-status", ""), button);
    ui.channels.append(ch.li);
  }
  ch.li.dataset.status = ch.status;
  ch.li.querySelector(".pos").textContent = ch.epoch === null ? "" : `${ch.epoch}:${ch.id}`;
  ch.li.querySelector(".chan-status").textContent = ch.status;
}

// ---------------------------------------------------------------------------------------------
// Log

let stickToBottom = true; // false while the user has scrolled up to read
let firstPending = null; // first entry appended since the last frame (not painted yet)

function pinToBottom() {
  ui.log.scrollTop = ui.log.scrollHeight;
}

ui.log.addEventListener("scroll", () => {
  // Scroll events arrive a frame late, after a fast feed may have appended entries the user has
  // not seen yet. Judge "at the bottom" against the bottom as it was before those entries, or our
  // own scroll to the bottom (or the user's) would look like a scroll up.
  const { scrollTop, clientHeight, scrollHeight } = ui.log;
  const bottom = firstPending?.isConnected ? firstPending.offsetTop : scrollHeight;
  stickToBottom = bottom - scrollTop - clientHeight < 24;
}, { passive: true });

// The log's box changes size on rotation or window resize; stay pinned to the newest entry.
new ResizeObserver(() => {
  if (stickToBottom) pinToBottom();
}).observe(ui.log);

/**
 * Appends one entry: <div class="entry" data-kind=...><time/> <span class="kind"/> <span class="text"/></div>.
 * `attrs` become data-* attributes (type, channel, id, notice) for styling and tests.
 */
function addLog(kind, text, attrs = {}) {
  const now = new Date();
  const entry = document.createElement("div");
  entry.className = "entry";
  entry.dataset.kind = kind;
  for (const [key, value] of Object.entries(attrs)) entry.dataset[key] = value;
  const time = document.createElement("time");
  time.dateTime = now.toISOString();
  time.textContent = formatTime(now);
  entry.append(time, " ", span("kind", `${kind}:`), " ", span("text", clip(text)));
  ui.log.append(entry);
  while (ui.log.childElementCount > MAX_LOG_ENTRIES) ui.log.firstElementChild.remove();
  // Scroll at most once per frame: reading layout on every message of a fast feed is costly.
  if (!firstPending) {
    firstPending = entry;
    requestAnimationFrame(() => {
      firstPending = null;
      if (stickToBottom) pinToBottom();
    });
  }
}

function span(className, text) {
  const el = document.createElement("span");
  el.className = className;
  el.textContent = text;
  return el;
}

function clip(text) {
  text = String(text);
  if (text.length <= MAX_TEXT_CHARS) return text;
  return `${text.slice(0, MAX_TEXT_CHARS)}… (${text.length} chars)`;
}

function formatTime(d) {
  const p = (n, w = 2) => String(n).padStart(w, "0");
  const ms = p(d.getMilliseconds(), 3);
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${ms}`;
}

// ---------------------------------------------------------------------------------------------
// Wiring

ui.connect.addEventListener("click", () => connect());
ui.disconnect.addEventListener("click", () => disconnect());
ui.clear.addEventListener("click", () => {
  ui.log.replaceChildren();
  stickToBottom = true;
});

ui["send-form"].addEventListener("submit", (ev) => {
  ev.preventDefault(); // Enter in the input submits the form; stay on the page
  const text = ui.message.value;
  if (text === "") return;
  if (send(text)) ui.message.value = "";
});

ui["channel-form"].addEventListener("submit", (ev) => {
  ev.preventDefault();
  const name = ui.channel.value.trim();
  if (name === "") return;
  subscribe(name);
  ui.channel.value = "";
});

// Say goodbye properly so the server frees the connection at once instead of timing it out.
// Say goodbye when the page goes away. beforeunload does not fire on every way a tab can close
// (closing a target from DevTools, some mobile browsers), pagehide covers those; quitSent makes
// sure only one quit is sent.
function sayGoodbye() {
  if (!isOpen() || quitSent) return;
  userClosing = true;
  quitSent = true;
  socket.send("quit");
}
globalThis.addEventListener("beforeunload", sayGoodbye);
globalThis.addEventListener("pagehide", sayGoodbye);

// Back online: no point waiting out the backoff.
globalThis.addEventListener("online", () => {
  if (state === "reconnecting") start();
});

setInterval(() => {
  renderRate();
  renderRetry();
}, 500);

// Test hook. Also: ?autoconnect=0 keeps the page from connecting on load.
globalThis.pushClient = Object.freeze({
  get state() {
    return state;
  },
  get socket() {
    return socket;
  },
  connect,
  disconnect,
  send,
  subscribe,
  unsubscribe,
  get channels() {
    return [...channels.values()].map(({ name, epoch, id, status }) => ({
      name,
      epoch,
      id,
      status,
    }));
  },
});

setState("closed");
if (new URLSearchParams(location.search).get("autoconnect") !== "0") connect();
