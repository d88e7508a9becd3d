/**
 * The opening handshake (RFC 6455 §4.1–§4.2), as pure functions: find and parse the request
 * head, validate the upgrade (each failure → an HTTP status and a reason), compute the accept
 * key, and build the 101 or error response bytes.
 *
 * @module
 */

/** The GUID every server appends to the client's key (§1.3). */
export const WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/** A parsed HTTP/1.1 request head. Header names are lower-cased; repeats are joined by ", ". */
export interface RequestHead {
  /** The request method, e.g. "GET". */
  method: string;
  /** The request target as sent, e.g. "/echo?x=1". */
  target: string;
  /** The HTTP version, e.g. "HTTP/1.1". */
  version: string;
  /** Header fields by lower-cased name. */
  headers: Map<string, string>;
}

/** A refused handshake: the status to answer with, why (for logs), and extra headers. */
export interface HandshakeRejection {
  /** The HTTP status code: 400, 401 (a route's authorize), 403, 404, 405, 426, 431 or 503. */
  status: number;
  /** A short sentence for the response body and the log line. */
  reason: string;
  /** Extra response headers (e.g. `Sec-WebSocket-Version: 13` with 426). */
  headers?: Record<string, string>;
}

/** A valid upgrade request. */
export interface UpgradeRequest {
  /** The path of the request target, e.g. "/echo". */
  path: string;
  /** The query string of the request target, with its "?" ("" when none); parse it when needed. */
  search: string;
  /** The client's Sec-WebSocket-Key (24 base64 characters). */
  key: string;
  /** The Origin header, when the client is a browser. */
  origin?: string;
  /** All request headers, lower-cased. */
  headers: Map<string, string>;
}

/** Options of {@linkcode validateUpgrade}. */
export interface UpgradeOptions {
  /** The paths that have a WebSocket endpoint; others get 404. */
  paths: readonly string[];
  /**
   * The browser origins allowed to connect (exact `scheme://host[:port]`), or "*" for any.
   * Requests without an Origin header (non-browser clients) are always allowed.
   */
  allowedOrigins: readonly string[] | "*";
  /**
   * With an empty `allowedOrigins`, the page server's port and scheme: a browser may connect
   * only from a page served there, on the same host name it uses for the WebSocket (the Host
   * header). That is the page's own origin whatever name the server is reached by.
   */
  pageOrigin?: { port: number; secure: boolean };
  /**
   * The names the server answers to (the Host header, DNS rebinding protection); others get
   * 403. Absent: no Host check (the listener always passes one).
   */
  allowedHosts?: HostPolicy;
}

/**
 * The host names a server answers to. A page on an attacker's site can point its own DNS name
 * at the server (DNS rebinding): the browser then sends that name in `Host`, and treats the
 * server as same-origin with the attacker's page. Accepting only the names the server is really
 * reached by defeats it. The port is not compared: a proxy or port mapping may change it, and
 * rebinding is about the name.
 */
export interface HostPolicy {
  /** Accepted host names and addresses: lower case, IPv6 without brackets, no trailing dot. */
  names: ReadonlySet<string>;
  /** Accept `localhost` and every loopback address (bound to loopback or to all interfaces). */
  loopback: boolean;
  /** Accept any IP address literal (bound to all interfaces): an address cannot be rebound. */
  anyAddress: boolean;
}

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;
const HOST_NAME = /^[a-z0-9_-]+(\.[a-z0-9_-]+)*$/;

function isIpv4(host: string): boolean {
  const m = IPV4.exec(host);
  return m !== null && m.slice(1).every((part) => Number(part) <= 255);
}

/** IPv6 (as it appears between brackets, without them): hex groups, colons, maybe dotted IPv4. */
function isIpv6(host: string): boolean {
  return host.includes(":") && /^[0-9a-f:.]+$/.test(host);
}

/** Whether `address` (IPv6 without brackets) is a loopback address or `localhost`. */
export function isLoopbackHost(address: string): boolean {
  const a = address.toLowerCase();
  if (a === "localhost" || a === "::1") return true;
  // IPv4-mapped IPv6, in the dotted form and in the hex form browsers normalise it to.
  const v4 = a.startsWith("::ffff:") ? a.slice(7) : a;
  if (/^7f[0-9a-f]{2}:[0-9a-f]{1,4}$/.test(v4)) return true;
  return isIpv4(v4) && v4.startsWith("127.");
}

/**
 * The host of a `Host` header value (`name`, `name:port`, `[v6]`, `[v6]:port`): lower case,
 * IPv6 without brackets, trailing dot dropped; null when it is not a host name or address.
 */
export function hostName(host: string): string | null {
  let name: string;
  let rest: string;
  if (host.startsWith("[")) {
    const close = host.indexOf("]");
    if (close < 0) return null;
    name = host.slice(1, close).toLowerCase();
    rest = host.slice(close + 1);
    if (!isIpv6(name)) return null;
  } else {
    const colon = host.indexOf(":");
    name = (colon < 0 ? host : host.slice(0, colon)).toLowerCase();
    rest = colon < 0 ? "" : host.slice(colon);
    if (name.endsWith(".")) name = name.slice(0, -1);
    if (!HOST_NAME.test(name)) return null;
  }
  return rest === "" || /^:\d{0,5}$/.test(rest) ? name : null;
}

/**
 * The names a server bound to `bound` answers to: `localhost` and loopback addresses when bound
 * to loopback; when bound to all interfaces (0.0.0.0, ::) those and any IP literal; otherwise
 * the bound address. `publicHosts` (host names, with or without a port) are added in every case.
 */
export function hostPolicy(bound: string, publicHosts: readonly string[] = []): HostPolicy {
  const address = bound.replace(/^\[(.*)\]$/, "$1").toLowerCase();
  const anyAddress = address === "0.0.0.0" || address === "::" || address === "";
  const names = new Set<string>();
  if (!anyAddress) names.add(address);
  for (const host of publicHosts) {
    // An IPv6 address may be listed without brackets (then it has no port): two colons or more.
    const bare = host.toLowerCase();
    const name = bare.split(":").length > 2 && isIpv6(bare) ? bare : hostName(host);
    if (name !== null) names.add(name);
  }
  return { names, loopback: anyAddress || isLoopbackHost(address), anyAddress };
}

/** Whether the `Host` header value `host` names this server under `policy`. */
export function isHostAllowed(host: string, policy: HostPolicy): boolean {
  const name = hostName(host);
  if (name === null) return false;
  if (policy.names.has(name)) return true;
  if (policy.loopback && isLoopbackHost(name)) return true;
  return policy.anyAddress && (isIpv4(name) || isIpv6(name));
}

const HEADER_END = [13, 10, 13, 10];
const latin1 = new TextDecoder("latin1");
const encoder = new TextEncoder();
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const KEY = /^[A-Za-z0-9+/]{21}[AQgw]==$/;

/**
 * Returns the index just past the `\r\n\r\n` that ends the header block in `bytes`, or -1.
 * `from` lets a caller resume a search over a growing buffer (it is moved back 3 bytes so a
 * terminator split across reads is found); `end` is where the bytes read so far end.
 */
export function findHeaderEnd(bytes: Uint8Array, from = 0, end = bytes.length): number {
  for (let i = Math.max(0, from - 3); i + 3 < end; i++) {
    if (
      bytes[i] === HEADER_END[0] && bytes[i + 1] === HEADER_END[1] &&
      bytes[i + 2] === HEADER_END[2] && bytes[i + 3] === HEADER_END[3]
    ) return i + 4;
  }
  return -1;
}

/**
 * Parses a request head (the bytes up to and including `\r\n\r\n`).
 *
 * @example
 * ```ts
 * const head = parseRequestHead(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
 * // { method: "GET", target: "/", version: "HTTP/1.1", headers: Map { "host" => "a" } }
 * ```
 */
export function parseRequestHead(bytes: Uint8Array): RequestHead | HandshakeRejection {
  const lines = latin1.decode(bytes).split("\r\n");
  const requestLine = lines[0].split(" ");
  if (requestLine.length !== 3 || !TOKEN.test(requestLine[0]) || requestLine[1] === "") {
    return { status: 400, reason: "Malformed request line." };
  }
  const [method, target, version] = requestLine;
  if (!/^HTTP\/\d\.\d$/.test(version)) return { status: 400, reason: "Malformed HTTP version." };
  const headers = new Map<string, string>();
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i];
    if (line === "") continue;
    const colon = line.indexOf(":");
    const name = line.slice(0, colon).toLowerCase();
    if (colon <= 0 || !TOKEN.test(name)) {
      return { status: 400, reason: "Malformed header line." };
    }
    const value = line.slice(colon + 1).trim();
    const previous = headers.get(name);
    headers.set(name, previous === undefined ? value : `${previous}, ${value}`);
  }
  return { method, target, version, headers };
}

function hasToken(value: string | undefined, token: string): boolean {
  if (value === undefined) return false;
  return value.split(",").some((part) => part.trim().toLowerCase() === token);
}

/**
 * Validates a parsed request as a WebSocket upgrade (§4.2.1), in a fixed order so each failure
 * has one status: 405 non-GET, 400 not HTTP/1.1 or no Host, 426 no `Upgrade: websocket` (a plain
 * HTTP request), 400 no `Connection: upgrade` or a bad key, 426 a version other than 13,
 * 404 an unknown path, 403 a Host that is not one of the server's names
 * (`allowedHosts`), 403 an Origin that is not allowed.
 */
export function validateUpgrade(
  head: RequestHead,
  options: UpgradeOptions,
): UpgradeRequest | HandshakeRejection {
  const h = head.headers;
  if (head.method !== "GET") {
    return { status: 405, reason: "Only GET can open a WebSocket.", headers: { Allow: "GET" } };
  }
  if (head.version !== "HTTP/1.1") return { status: 400, reason: "HTTP/1.1 is required." };
  if (!h.get("host")) return { status: 400, reason: "The Host header is missing." };
  if (!hasToken(h.get("upgrade"), "websocket")) {
    return {
      status: 426,
      reason: "This port speaks WebSocket only: send an Upgrade: websocket request.",
      headers: { Upgrade: "websocket" },
    };
  }
  if (!hasToken(h.get("connection"), "upgrade")) {
    return { status: 400, reason: "The Connection header must contain the upgrade token." };
  }
  const key = h.get("sec-websocket-key");
  if (key === undefined || !KEY.test(key)) {
    return { status: 400, reason: "Sec-WebSocket-Key must be 16 bytes in base64." };
  }
  if (h.get("sec-websocket-version") !== "13") {
    return {
      status: 426,
      reason: "Only WebSocket version 13 is supported.",
      headers: { "Sec-WebSocket-Version": "13" },
    };
  }
  // The target is split, not parsed as a URL: endpoints are matched exactly (no dot segments or
  // percent-decoding to normalise), and a URL object per handshake is measurable garbage.
  const target = head.target;
  const q = target.indexOf("?");
  const path = q < 0 ? target : target.slice(0, q);
  if (!path.startsWith("/") || !options.paths.includes(path)) {
    return { status: 404, reason: `No WebSocket endpoint at ${path.slice(0, 200)}.` };
  }
  const host = h.get("host")!;
  if (options.allowedHosts && !isHostAllowed(host, options.allowedHosts)) {
    return { status: 403, reason: `Host ${host.slice(0, 200)} is not a name of this server.` };
  }
  const origin = h.get("origin");
  if (origin !== undefined && !isOriginAllowed(origin, h.get("host")!, options)) {
    return { status: 403, reason: `Origin ${origin.slice(0, 200)} is not allowed.` };
  }
  // "?" alone is no query, as in URL.search.
  const search = q < 0 || q === target.length - 1 ? "" : target.slice(q);
  return { path, search, key, origin, headers: h };
}

/**
 * The Origin rule (it stops cross-site WebSocket hijacking): "*" allows any; a non-empty list
 * allows exactly its origins; an empty list allows the page server's own origin on the host
 * the client named in `host`.
 */
export function isOriginAllowed(origin: string, host: string, options: UpgradeOptions): boolean {
  const allowed = options.allowedOrigins;
  if (allowed === "*") return true;
  if (allowed.length > 0) return allowed.includes(origin);
  const page = options.pageOrigin;
  if (!page) return false;
  try {
    const o = new URL(origin);
    const scheme = page.secure ? "https:" : "http:";
    const port = o.port === "" ? (page.secure ? 443 : 80) : Number(o.port);
    return o.protocol === scheme && o.hostname === new URL(`http://${host}`).hostname &&
      port === page.port && o.origin === origin;
  } catch {
    return false;
  }
}

/** Whether `result` is a {@linkcode HandshakeRejection}. */
export function isRejection(result: object): result is HandshakeRejection {
  return "status" in result;
}

/**
 * Computes `Sec-WebSocket-Accept`: base64(SHA-1(key + GUID)) through Web Crypto (§4.2.2).
 *
 * @example
 * ```ts
 * await acceptKey("dGhlIHNhbXBsZSBub25jZQ=="); // "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
 * ```
 */
export async function acceptKey(key: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-1", encoder.encode(key + WEBSOCKET_GUID));
  return new Uint8Array(digest).toBase64();
}

/** Builds the 101 Switching Protocols response; `extensions` is the agreed Sec-WebSocket-Extensions. */
export function buildAcceptResponse(accept: string, extensions?: string): Uint8Array {
  return encoder.encode(
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
      `Sec-WebSocket-Accept: ${accept}\r\n` +
      (extensions === undefined ? "" : `Sec-WebSocket-Extensions: ${extensions}\r\n`) + "\r\n",
  );
}

const STATUS_TEXT: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  426: "Upgrade Required",
  431: "Request Header Fields Too Large",
  503: "Service Unavailable",
};

/** Builds the error response for a refused handshake: a short text body, then the server closes. */
export function buildRejectResponse(rejection: HandshakeRejection): Uint8Array {
  const body = encoder.encode(rejection.reason + "\n");
  let head = `HTTP/1.1 ${rejection.status} ${STATUS_TEXT[rejection.status] ?? "Error"}\r\n` +
    `Content-Type: text/plain; charset=utf-8\r\nContent-Length: ${body.length}\r\n` +
    // RFC 9110 §7.8: whoever sends Upgrade (our 426) also lists "upgrade" in Connection.
    `Connection: ${rejection.headers?.Upgrade ? "Upgrade, close" : "close"}\r\n`;
  for (const [name, value] of Object.entries(rejection.headers ?? {})) {
    head += `${name}: ${value}\r\n`;
  }
  const headBytes = encoder.encode(head + "\r\n");
  const out = new Uint8Array(headBytes.length + body.length);
  out.set(headBytes);
  out.set(body, headBytes.length);
  return out;
}
