// The page's view: the status badge, the message rate, the channel list and the log. Only this
// module touches the DOM.
//
// All text from the server is displayed with textContent (never innerHTML), so it cannot inject
// markup.

const MAX_LOG_ENTRIES = 500; // the log is bounded so a long session does not grow memory
const MAX_TEXT_CHARS = 2000; // and so is each entry: one huge message must not bloat the page
const RATE_WINDOW_S = 5; // messages/s is averaged over this many whole seconds

/** The page's elements by id. */
export const ui = Object.fromEntries(
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
    "token",
    "token-form",
    "auth-notice",
    "log",
    "clear",
  ].map((id) => [id, document.getElementById(id)]),
);

/** Shows the connection state; the retry countdown shows while reconnecting. */
export function renderState(state, retryAt) {
  ui.status.textContent = state;
  ui.status.dataset.state = state;
  ui.status.parentElement.dataset.state = state; // the coloured wrapper, which holds #retry too
  ui.connect.disabled = state === "connecting" || state === "open";
  ui.disconnect.disabled = state === "closed";
  ui.send.disabled = state !== "open";
  ui.retry.hidden = state !== "reconnecting";
  renderRetry(state, retryAt);
}

/** Updates the "in N s" countdown. */
export function renderRetry(state, retryAt) {
  if (state !== "reconnecting") return;
  const secs = Math.max(0, Math.ceil((retryAt - performance.now()) / 1000));
  ui.retry.textContent = `in ${secs} s`;
}

// ---------------------------------------------------------------------------------------------
// Message count and rate

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

/** Counts one message from the server. */
export function countMessage() {
  advanceBuckets();
  buckets[bucketSec % buckets.length]++;
  ui.count.textContent = String(++total);
}

/** Shows messages/s over the last whole seconds. */
export function renderRate() {
  advanceBuckets();
  const current = bucketSec % buckets.length;
  const sum = buckets.reduce((acc, n, i) => (i === current ? acc : acc + n), 0);
  ui.rate.textContent = (sum / RATE_WINDOW_S).toFixed(1);
}

// ---------------------------------------------------------------------------------------------
// Channel list

/**
 * Shows one channel: name, position, status (with the server's refusal, when refused) and an
 * Unsubscribe button.
 * @param {{name: string, epoch: string|null, id: number|null, status: string, error?: string}} ch
 * @param {(name: string) => void} onUnsubscribe
 */
export function renderChannel(ch, onUnsubscribe) {
  let li = ui.channels.querySelector(`li[data-channel="${CSS.escape(ch.name)}"]`);
  if (!li) {
    li = document.createElement("li");
    li.dataset.channel = ch.name;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "unsubscribe secondary small";
    button.dataset.channel = ch.name;
    button.textContent = "Unsubscribe";
    button.addEventListener("click", () => onUnsubscribe(ch.name));
    li.append(
      span("name", ch.name),
      span("pos", ""),
      span("chan-status", ""),
      button,
      span("chan-error", ""),
    );
    ui.channels.append(li);
  }
  li.dataset.status = ch.status;
  li.querySelector(".pos").textContent = ch.epoch === null ? "" : `${ch.epoch}:${ch.id}`;
  li.querySelector(".chan-status").textContent = ch.status;
  // Why the server refused it (a channel the token does not allow, say), while refused.
  li.querySelector(".chan-error").textContent = ch.status === "refused" ? clip(ch.error ?? "") : "";
}

/** Shows `text` in the authentication notice above the buttons; "" hides it. */
export function renderAuthNotice(text) {
  ui["auth-notice"].textContent = text;
  ui["auth-notice"].hidden = text === "";
}

/** Removes a channel from the list. */
export function removeChannel(name) {
  ui.channels.querySelector(`li[data-channel="${CSS.escape(name)}"]`)?.remove();
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

/** Empties the log. */
export function clearLog() {
  ui.log.replaceChildren();
  stickToBottom = true;
}

/**
 * Appends one entry: <div class="entry" data-kind=...><time/> <span class="kind"/> <span class="text"/></div>.
 * `attrs` become data-* attributes (type, channel, id, notice) for styling and tests.
 */
export function addLog(kind, text, attrs = {}) {
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

/** Shows base64 data as text or a hex preview. */
export function describeBase64(data) {
  let bytes;
  try {
    bytes = Uint8Array.from(atob(String(data)), (c) => c.charCodeAt(0));
  } catch {
    return `(invalid base64) ${data}`;
  }
  return `(base64) ${describeBytes(bytes)}`;
}

/** Shows bytes as text when they are valid UTF-8, else as a hex preview. */
export function describeBytes(bytes) {
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
