/**
 * The reference ("built-in") push server for the benchmark: the same API as ours, built the
 * obvious way on `Deno.serve` + `Deno.upgradeWebSocket`, so one load client drives both and the
 * comparison measures our raw-TCP design against Deno's own WebSocket stack.
 *
 * - `GET ws://HOST:PORT/?channels=a,b` upgrades and subscribes the socket to those channels.
 * - `GET ws://HOST:PORT/echo` upgrades to an echo peer: every message comes back unchanged.
 * - `POST /publish?channel=a` broadcasts the body: `application/json` is embedded as a JSON
 *   value, `text/*` as a JSON string, anything else as base64 with `"encoding":"base64"`.
 *   The frame is `{"channel":"a","epoch":"E","id":N,"data":DATA}`; the answer is
 *   `{"channel":"a","epoch":"E","id":N,"delivered":SUBSCRIBERS}`.
 *
 * It takes our server's flags (unknown ones are ignored) and logs `ws.listening` and
 * `http.listening` like ours. With `--ws-port` and `--http-port` equal (or one of them 0 and
 * the other not given) it serves both on one port; with two different ports it serves the same
 * handler on both, so the runner can pass the same flags to both servers.
 *
 * ```sh
 * deno run --allow-net=127.0.0.1 --allow-env=PUSH_* bench/reference_server.ts --ws-port 9000 --http-port 8080
 * ```
 *
 * @module
 */

/** What the reference server needs from our flag set. */
export interface ReferenceOptions {
  /** Address to bind. */
  hostname: string;
  /** WebSocket port (0 = any). */
  wsPort: number;
  /** HTTP (publish API) port (0 = any; the same port as the WebSocket one when both are 0). */
  httpPort: number;
  /** Most WebSocket clients at once; one more gets 503. */
  maxClients: number;
  /** Whether `info` lines (the listening addresses) are printed. */
  logInfo: boolean;
}

/** A running reference server. */
export interface ReferenceServer {
  /** The port WebSocket clients connect to. */
  wsPort: number;
  /** The port the publish API listens on. */
  httpPort: number;
  /** Stops accepting and closes every socket. */
  shutdown(): Promise<void>;
}

/** Parses our server's flags (`--name value` or `--name=value`), ignoring the ones it lacks. */
export function parseReferenceArgs(
  args: string[],
  env: (name: string) => string | undefined = () => undefined,
): ReferenceOptions {
  const flags = new Map<string, string>();
  for (let i = 0; i < args.length; i++) {
    const m = /^--([^=]+)(?:=(.*))?$/.exec(args[i]);
    if (!m) continue;
    if (m[2] !== undefined) flags.set(m[1], m[2]);
    else if (i + 1 < args.length && !args[i + 1].startsWith("--")) flags.set(m[1], args[++i]);
    else flags.set(m[1], "true");
  }
  const get = (flag: string, envName: string, fallback: string) =>
    flags.get(flag) ?? env(envName) ?? fallback;
  const level = get("log-level", "PUSH_LOG_LEVEL", "info");
  return {
    hostname: get("hostname", "PUSH_HOSTNAME", "127.0.0.1"),
    wsPort: Number(get("ws-port", "PUSH_WS_PORT", "0")),
    httpPort: Number(get("http-port", "PUSH_HTTP_PORT", "0")),
    maxClients: Number(get("max-clients", "PUSH_MAX_CLIENTS", "10000")),
    logInfo: level === "info" || level === "debug",
  };
}

function log(level: string, event: string, fields: Record<string, string | number>): void {
  let line = `${new Date().toISOString()} ${level} ${event}`;
  for (const [key, value] of Object.entries(fields)) line += ` ${key}=${value}`;
  console.error(line);
}

function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json; charset=utf-8" },
  });
}

/**
 * Turns a request body into the `data` member of the broadcast frame (and, for bytes, the
 * `"encoding":"base64"` member after it, as ours). Returns null for invalid JSON.
 */
async function bodyToData(request: Request): Promise<string | null> {
  const type = (request.headers.get("content-type") ?? "").toLowerCase();
  if (type.startsWith("application/json")) {
    try {
      // Re-serialized compactly, as our server does.
      return `"data":${JSON.stringify(JSON.parse(await request.text()))}`;
    } catch {
      return null;
    }
  }
  if (type.startsWith("text/")) return `"data":${JSON.stringify(await request.text())}`;
  const bytes = new Uint8Array(await request.arrayBuffer());
  return `"data":"${bytes.toBase64()}","encoding":"base64"`;
}

/** Starts the reference server. */
export function startReferenceServer(options: ReferenceOptions): ReferenceServer {
  const epoch = crypto.getRandomValues(new Uint8Array(6)).toBase64({ alphabet: "base64url" });
  const channels = new Map<string, { id: number; subscribers: Set<WebSocket> }>();
  const sockets = new Set<WebSocket>();
  let clients = 0;

  const channel = (name: string) => {
    let c = channels.get(name);
    if (!c) channels.set(name, c = { id: 0, subscribers: new Set() });
    return c;
  };

  const echo = (request: Request): Response => {
    const { socket, response } = Deno.upgradeWebSocket(request);
    socket.onmessage = (event) => socket.send(event.data);
    socket.onerror = () => {};
    return response;
  };

  const upgrade = (request: Request, url: URL): Response => {
    if (clients >= options.maxClients) return json({ error: "The server is full." }, 503);
    const names = (url.searchParams.get("channels") ?? "").split(",").filter((n) => n !== "");
    const { socket, response } = Deno.upgradeWebSocket(request);
    clients++;
    sockets.add(socket);
    // Subscribe on open: send() on a socket that is still CONNECTING throws.
    socket.onopen = () => {
      for (const name of names) channel(name).subscribers.add(socket);
    };
    socket.onmessage = (event) => {
      if (event.data === "quit") socket.close(1000, "quit");
    };
    socket.onclose = () => {
      clients--;
      sockets.delete(socket);
      for (const name of names) channels.get(name)?.subscribers.delete(socket);
    };
    socket.onerror = () => {};
    return response;
  };

  const publish = async (request: Request, url: URL): Promise<Response> => {
    const name = url.searchParams.get("channel");
    if (!name) return json({ error: "The channel query parameter is required." }, 400);
    const data = await bodyToData(request);
    if (data === null) return json({ error: "The body is not valid JSON." }, 400);
    const c = channel(name);
    const id = ++c.id;
    const text = `{"channel":${JSON.stringify(name)},"epoch":"${epoch}","id":${id},${data}}`;
    // The straightforward broadcast: one send per subscriber, Deno frames and buffers each.
    let delivered = 0;
    for (const socket of c.subscribers) {
      if (socket.readyState !== WebSocket.OPEN) continue;
      socket.send(text);
      delivered++;
    }
    return json({ channel: name, epoch, id, delivered });
  };

  const handler = (request: Request): Response | Promise<Response> => {
    const url = new URL(request.url);
    if (request.headers.get("upgrade")?.toLowerCase() === "websocket") {
      if (url.pathname === "/echo") return echo(request);
      return url.pathname === "/" ? upgrade(request, url) : json({ error: "Not found." }, 404);
    }
    if (url.pathname === "/publish") {
      return request.method === "POST" ? publish(request, url) : json({ error: "Use POST." }, 405);
    }
    if (url.pathname === "/healthz") return json({ status: "ok" });
    return json({ error: `Nothing at ${url.pathname}.` }, 404);
  };

  const serve = (port: number) =>
    Deno.serve({ hostname: options.hostname, port, onListen: () => {} }, handler);
  const { wsPort, httpPort } = options;
  const http = serve(httpPort);
  const httpAddr = http.addr as Deno.NetAddr;
  const second = wsPort !== 0 && wsPort !== httpPort ? serve(wsPort) : null;
  const wsAddr = (second?.addr ?? httpAddr) as Deno.NetAddr;
  if (options.logInfo) {
    log("info", "ws.listening", { address: `${wsAddr.hostname}:${wsAddr.port}` });
    log("info", "http.listening", { address: `${httpAddr.hostname}:${httpAddr.port}` });
  }
  return {
    wsPort: wsAddr.port,
    httpPort: httpAddr.port,
    async shutdown() {
      for (const socket of sockets) socket.close(1001, "going away");
      await Promise.all([http.shutdown(), second?.shutdown()]);
    },
  };
}

if (import.meta.main) {
  const env = (name: string) => {
    try {
      return Deno.env.get(name);
    } catch {
      return undefined; // no --allow-env: flags only
    }
  };
  const server = startReferenceServer(parseReferenceArgs(Deno.args, env));
  const stop = () => {
    // The benchmark only needs a prompt exit; clients are closed by the load client first.
    server.shutdown().finally(() => Deno.exit(0));
    setTimeout(() => Deno.exit(0), 2000);
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
}
