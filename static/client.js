// The page: the client library (push-client.js) does the connection, reconnection and channel
// positions; the view (view.js) shows them. This module wires the two and logs every message.
// No framework and no build step; loaded as an ES module (deferred), so the DOM is ready.

import { parseObject, PushClient } from "./push-client.js";
import {
  addLog,
  clearLog,
  countMessage,
  describeBase64,
  describeBytes,
  removeChannel,
  renderAuthNotice,
  renderChannel,
  renderRate,
  renderRetry,
  renderState,
  ui,
} from "./view.js";

const CONFIG_TIMEOUT_MS = 10_000;

let lastDemo = null;

/** Asks the page server where the WebSocket server is (on every attempt: it may move). */
async function loadConfig() {
  const res = await fetch("config.json", {
    cache: "no-store",
    signal: AbortSignal.timeout(CONFIG_TIMEOUT_MS),
  });
  if (!res.ok) throw new Error(`config.json: HTTP ${res.status}`);
  const cfg = await res.json();
  if (typeof cfg?.wsUrl !== "string") throw new Error("config.json has no wsUrl");
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

// ---------------------------------------------------------------------------------------------
// The token: the field's value, taken from the page's own ?token= at load (then removed from
// the address bar, so it does not stay in history or get shared with a link to the page).

const pageParams = new URLSearchParams(location.search);
if (pageParams.has("token")) {
  ui.token.value = pageParams.get("token");
  pageParams.delete("token");
  const rest = pageParams.toString();
  history.replaceState(null, "", location.pathname + (rest ? `?${rest}` : "") + location.hash);
}

/** The token the current connection was opened (or last refreshed) with. */
let tokenInUse = "";
/** The server said `expiring` and no fresh token has been sent since. */
let refreshWanted = false;

/**
 * Asked by the library at every connection attempt and when the server says `expiring`. At
 * connect: the field's value. On `expiring`: a token not sent yet, if the user has pasted one;
 * otherwise nothing (the library then sends nothing) and a notice asks for a fresh one, which is
 * sent as soon as it is pasted.
 */
function currentToken() {
  const value = ui.token.value.trim();
  if (client.state === "open") {
    if (value === "" || value === tokenInUse) {
      refreshWanted = true;
      renderAuthNotice(
        "The server says the token expires soon: paste a fresh token into the Token field " +
          "(it is sent at once), or the server closes the connection with 4001 when it expires.",
      );
      return "";
    }
    refreshWanted = false;
    renderAuthNotice("");
    addLog("sent", `auth (a fresh token, ${value.length} chars)`);
  }
  tokenInUse = value;
  return value;
}

/** Hides the token in URLs shown in the log. */
function redact(url) {
  try {
    const u = new URL(url);
    if (u.searchParams.has("token")) u.searchParams.set("token", "…");
    return u.href;
  } catch {
    return url;
  }
}

const client = new PushClient(loadConfig, { connect: false, token: currentToken });

/** The page's state: the library's, and "reconnecting" while a retry waits out its backoff. */
function pageState() {
  return client.state === "connecting" && client.retryAt > 0 ? "reconnecting" : client.state;
}

const render = () => renderState(pageState(), client.retryAt);

client.on("state", render);
let opened = false; // whether the current attempt reached "open" (a refused handshake never does)
client.on("open", (url) => {
  opened = true;
  // Accepted: an earlier refusal or expiry warning was about another connection.
  refreshWanted = false;
  renderAuthNotice("");
  addLog("open", `connected to ${redact(url)}`);
});
client.on("close", (ev) => {
  const readyState = client.socket?.readyState ?? WebSocket.CLOSED;
  addLog(
    "close",
    `readyState=${readyState} code=${ev.code} reason=${ev.reason || "(none)"}` +
      (ev.wasClean ? "" : " (not clean)"),
  );
  explainClose(ev);
  opened = false;
  for (const sub of client.subscriptions.values()) renderChannel(channelView(sub), unsubscribe);
});
client.on("retry", ({ attempt, delay }) => {
  render();
  addLog("info", `reconnecting in ${(delay / 1000).toFixed(1)} s (attempt ${attempt})`);
});
client.on("error", (e) => {
  const sub = typeof e.channel === "string" ? client.subscriptions.get(e.channel) : undefined;
  if (sub) {
    refusals.set(sub.channel, e.error);
    renderChannel(channelView(sub), unsubscribe);
  }
  if (e.error === "WebSocket error") addLog("error", "WebSocket error");
  else if (e.error.startsWith("cannot connect")) addLog("error", e.error);
  else addLog("message", `server error: ${e.error}`, { type: "error" });
});
client.on("message", onMessage);
// The library has applied a notice or a publication by the time these run: show where it stands.
client.on("notice", (n) => {
  const sub = typeof n.channel === "string" ? client.subscriptions.get(n.channel) : undefined;
  if (sub) renderChannel(channelView(sub), unsubscribe);
  else if (n.notice === "unsubscribed") removeChannel(n.channel);
});

// ---------------------------------------------------------------------------------------------
// Receiving: everything is logged; publications and notices also update the channel list.

/** The server's last `{"error":…,"channel":…}` per channel, shown while it is refused. */
const refusals = new Map();

function channelView(sub) {
  return {
    name: sub.channel,
    epoch: sub.epoch,
    id: sub.id,
    status: sub.status,
    error: refusals.get(sub.channel),
  };
}

/** Says what a refusal or an authentication close means and what to do about it. */
function explainClose(ev) {
  if (ev.code === 4001) {
    const what = "the token expired (4001): paste a fresh token into the Token field; " +
      "the page reconnects with it";
    addLog("error", what);
    renderAuthNotice(`Disconnected: ${what}.`);
  } else if (ev.code === 4003) {
    const what = "disconnected by the server (4003): this user's connections were closed on " +
      "purpose; the page does not reconnect by itself — press Connect (with a new token if " +
      "needed) to try again";
    addLog("error", what);
    renderAuthNotice(`Disconnected: ${what}.`);
  } else if (!opened && ev.code === 1006 && tokenInUse) {
    // Browsers hide the handshake's status from pages: a 401 (a bad or expired token) looks
    // like any failed connection. Without a token, a failure is most likely the server being
    // away, and is only logged as the close above.
    const hint = "connection refused (401?): the server did not accept the handshake; check " +
      "the token (expired, or signed with another key) and paste a fresh one if needed";
    addLog("error", hint);
    renderAuthNotice(hint.charAt(0).toUpperCase() + hint.slice(1) + ".");
  }
}

function onMessage(data) {
  countMessage();
  if (typeof data !== "string") {
    addLog("message", `(binary frame) ${describeBytes(new Uint8Array(data))}`, {
      type: "binary",
    });
    return;
  }
  const obj = parseObject(data);
  if (!obj) {
    const type = data.startsWith("Server received: ") ? "ack" : "text";
    addLog("message", data, { type });
  } else if (typeof obj.notice === "string") {
    onNotice(obj, data);
  } else if (typeof obj.error === "string") {
    // Logged by the "error" listener.
  } else if (typeof obj.channel === "string" && "data" in obj) {
    onPublication(obj);
  } else {
    addLog("message", data, { type: "json" });
  }
}

function onPublication(p) {
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
    const how = n.recovered === true ? "recovered" : "not recovered";
    addLog("message", `[${name}] subscribed at ${n.epoch}:${n.id} (${how})`, attrs);
  } else if (n.notice === "lost" && name) {
    addLog("message", `[${name}] LOST: ${n.reason ?? "no reason given"}`, attrs);
  } else if (n.notice === "unsubscribed" && name) {
    addLog("message", `[${name}] unsubscribed`, attrs);
  } else {
    addLog("message", raw, attrs);
  }
}

// ---------------------------------------------------------------------------------------------
// Actions

function sendLogged(text) {
  if (!client.send(text)) return false;
  addLog("sent", text);
  return true;
}

/**
 * Public send: `quit` typed by the user is a disconnect (no reconnect, 3 s fallback); `subscribe
 * NAME [EPOCH:ID]` and `unsubscribe NAME` go through the library, which keeps the position.
 */
function send(text) {
  text = String(text);
  if (client.state !== "open") {
    addLog("info", "not connected; nothing sent");
    return false;
  }
  if (text.trim() === "quit") {
    disconnect();
    return true;
  }
  const m = /^(un)?subscribe (\S+)$/.exec(text.trim());
  if (m) return m[1] ? unsubscribe(m[2]) : subscribe(m[2]);
  return sendLogged(text);
}

function subscribe(name) {
  name = String(name).trim();
  // The protocol is space-separated, so a name with whitespace cannot be sent.
  if (!/^\S+$/.test(name)) {
    addLog("info", "a channel name must be non-empty and have no spaces");
    return false;
  }
  const existing = client.subscriptions.get(name);
  if (existing?.status === "subscribed") {
    addLog("info", `already subscribed to ${name}`);
    return false;
  }
  if (existing) existing.unsubscribe(); // refused or lost: ask again
  const sub = client.subscribe(name, () => renderChannel(channelView(sub), unsubscribe));
  renderChannel(channelView(sub), unsubscribe);
  if (client.state === "open") {
    addLog("sent", `subscribe ${name}`);
    return true;
  }
  addLog("info", `not connected; will subscribe to ${name} once connected`);
  return false;
}

function unsubscribe(name) {
  const sub = client.subscriptions.get(String(name));
  if (!sub) return false;
  sub.unsubscribe();
  refusals.delete(sub.channel);
  removeChannel(sub.channel);
  addLog("sent", `unsubscribe ${sub.channel}`);
  return true;
}

function connect() {
  if (client.state !== "closed") return;
  renderAuthNotice("");
  client.connect();
}

function disconnect() {
  if (client.state === "open") addLog("sent", "quit");
  client.close();
}

// ---------------------------------------------------------------------------------------------
// Wiring

ui.connect.addEventListener("click", connect);
ui.disconnect.addEventListener("click", disconnect);
ui.clear.addEventListener("click", clearLog);

ui["send-form"].addEventListener("submit", (ev) => {
  ev.preventDefault(); // Enter in the input submits the form; stay on the page
  const text = ui.message.value;
  if (text === "") return;
  if (send(text)) ui.message.value = "";
});

// A token pasted while the server waits for a fresh one goes out at once (`auth TOKEN`);
// otherwise it is used from the next connection on.
function onTokenChange() {
  const value = ui.token.value.trim();
  if (value === "" || value === tokenInUse) return;
  if (refreshWanted && client.state === "open") {
    refreshWanted = false;
    tokenInUse = value;
    if (client.send(`auth ${value}`)) addLog("sent", `auth (a fresh token, ${value.length} chars)`);
    renderAuthNotice("");
  } else if (client.state !== "closed") {
    addLog("info", "the new token is used from the next connection on");
  }
}
ui.token.addEventListener("change", onTokenChange);
ui["token-form"].addEventListener("submit", (ev) => {
  ev.preventDefault(); // Enter in the field: take the token, stay on the page
  onTokenChange();
  if (client.state === "closed") connect();
});

ui["channel-form"].addEventListener("submit", (ev) => {
  ev.preventDefault();
  const name = ui.channel.value.trim();
  if (name === "") return;
  subscribe(name);
  ui.channel.value = "";
});

// Say goodbye when the page goes away, so the server frees the connection at once instead of
// timing it out. beforeunload does not fire on every way a tab can close (closing a target from
// DevTools, some mobile browsers); pagehide covers those; the library sends quit only once.
globalThis.addEventListener("beforeunload", () => client.close());
globalThis.addEventListener("pagehide", () => client.close());
globalThis.addEventListener("online", () => client.retryNow());

setInterval(() => {
  renderRate();
  renderRetry(pageState(), client.retryAt);
  if (pageState() !== ui.status.dataset.state) render(); // the backoff ran out
}, 500);

// Test hook. Also: ?autoconnect=0 keeps the page from connecting on load.
globalThis.pushClient = Object.freeze({
  get state() {
    return pageState();
  },
  get socket() {
    return client.socket;
  },
  connect,
  disconnect,
  send,
  subscribe,
  unsubscribe,
  get channels() {
    return [...client.subscriptions.values()].map(channelView);
  },
});

render();
if (new URLSearchParams(location.search).get("autoconnect") !== "0") connect();
