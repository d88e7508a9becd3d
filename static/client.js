// The page: wires the connection (connection.js), the channel state (channels.js) and the view
// (view.js), and routes each server message. No framework and no build step; loaded as an ES
// module (deferred), so the DOM is ready when this runs.

import { PushConnection } from "./connection.js";
import { ChannelSet, parseObject } from "./channels.js";
import {
  addLog,
  clearLog,
  countMessage,
  describeBase64,
  describeBytes,
  removeChannel,
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

const channels = new ChannelSet((ch) => renderChannel(ch, unsubscribe), removeChannel);

const connection = new PushConnection(loadConfig, {
  state: (state) => renderState(state, connection.retryAt),
  log: addLog,
  open() {
    // Re-subscribe everything the user asked for; with a known position the server can replay
    // what we missed while disconnected.
    channels.markAllPending();
    for (const ch of channels.values()) connection.send(channels.subscribeCommand(ch));
  },
  close: () => channels.markAllPending(),
  message: onMessage,
});

// ---------------------------------------------------------------------------------------------
// Receiving

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
    addLog("message", `server error: ${obj.error}`, { type: "error" });
  } else if (typeof obj.channel === "string" && "data" in obj) {
    onPublication(obj);
  } else {
    addLog("message", data, { type: "json" });
  }
}

function onPublication(p) {
  channels.received(p);
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
    channels.subscribed(n);
    const how = n.recovered === true ? "recovered" : "not recovered";
    addLog("message", `[${name}] subscribed at ${n.epoch}:${n.id} (${how})`, attrs);
  } else if (n.notice === "lost" && name) {
    channels.lost(n);
    addLog("message", `[${name}] LOST: ${n.reason ?? "no reason given"}`, attrs);
  } else if (n.notice === "unsubscribed" && name) {
    channels.remove(name);
    addLog("message", `[${name}] unsubscribed`, attrs);
  } else {
    addLog("message", raw, attrs);
  }
}

// ---------------------------------------------------------------------------------------------
// Actions

/** Public send: `quit` typed by the user is a disconnect (no reconnect, 3 s fallback). */
function send(text) {
  text = String(text);
  if (!connection.isOpen) {
    addLog("info", "not connected; nothing sent");
    return false;
  }
  if (text.trim() === "quit") {
    connection.disconnect();
    return true;
  }
  return connection.send(text);
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
  ch ??= channels.add(name);
  if (connection.isOpen) return connection.send(channels.subscribeCommand(ch));
  addLog("info", `not connected; will subscribe to ${name} once connected`);
  return false;
}

function unsubscribe(name) {
  name = String(name);
  if (!channels.remove(name)) return false;
  return connection.send(`unsubscribe ${name}`);
}

// ---------------------------------------------------------------------------------------------
// Wiring

ui.connect.addEventListener("click", () => connection.connect());
ui.disconnect.addEventListener("click", () => connection.disconnect());
ui.clear.addEventListener("click", clearLog);

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

// Say goodbye when the page goes away, so the server frees the connection at once instead of
// timing it out. beforeunload does not fire on every way a tab can close (closing a target from
// DevTools, some mobile browsers); pagehide covers those; only one quit is sent.
globalThis.addEventListener("beforeunload", () => connection.goodbye());
globalThis.addEventListener("pagehide", () => connection.goodbye());
globalThis.addEventListener("online", () => connection.retryNow());

setInterval(() => {
  renderRate();
  renderRetry(connection.state, connection.retryAt);
}, 500);

// Test hook. Also: ?autoconnect=0 keeps the page from connecting on load.
globalThis.pushClient = Object.freeze({
  get state() {
    return connection.state;
  },
  get socket() {
    return connection.socket;
  },
  connect: () => connection.connect(),
  disconnect: () => connection.disconnect(),
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

renderState("closed", 0);
if (new URLSearchParams(location.search).get("autoconnect") !== "0") connection.connect();
