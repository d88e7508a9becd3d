/**
 * The Bun reference server for the benchmark: the same API as `bench/reference_server.ts`
 * (and ours), built the way Bun's documentation suggests — `Bun.serve` with a `websocket`
 * handler, subscriptions as Bun topics, and a broadcast as one `server.publish(topic, text)`,
 * which frames the message once in native code and writes it to every subscriber.
 *
 * - `GET ws://HOST:PORT/?channels=a,b` upgrades and subscribes the socket to those channels.
 * - `GET ws://HOST:PORT/echo` upgrades to an echo peer: every message comes back unchanged.
 * - `POST /publish?channel=a` broadcasts the body: `application/json` is embedded as a JSON
 *   value, `text/*` as a JSON string, anything else as base64 with `"encoding":"base64"`.
 *   The frame is `{"channel":"a","epoch":"E","id":N,"data":DATA}`; the answer is
 *   `{"channel":"a","epoch":"E","id":N,"delivered":SUBSCRIBERS}`.
 *
 * It takes our server's flags (`--ws-port`, `--http-port`, `--hostname`, `--log-level`; others
 * are ignored). With two different ports it listens on both; a publish on either reaches the
 * WebSocket port's subscribers. Bench tooling only, run with Bun (not part of the product):
 *
 * ```sh
 * bun run bench/bun_server.ts --ws-port 9000 --http-port 8080
 * ```
 *
 * @module
 */

/** The few Bun APIs this file uses (declared here so `deno check bench/` passes). */
interface BunWebSocket {
  data: { channels: string[]; echo: boolean };
  subscribe(topic: string): void;
  send(data: string | Uint8Array): number;
  close(code?: number, reason?: string): void;
}
interface BunServer {
  port: number;
  upgrade(request: Request, options: { data: BunWebSocket["data"] }): boolean;
  publish(topic: string, data: string): number;
  subscriberCount(topic: string): number;
}
interface BunServeOptions {
  hostname: string;
  port: number;
  fetch(request: Request, server: BunServer): Response | Promise<Response> | undefined;
  websocket: {
    open(ws: BunWebSocket): void;
    message(ws: BunWebSocket, message: string | Uint8Array): void;
    close(ws: BunWebSocket): void;
  };
}
declare const Bun: { argv: string[]; serve(options: BunServeOptions): BunServer };

function flags(args: string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < args.length; i++) {
    const m = /^--([^=]+)(?:=(.*))?$/.exec(args[i]);
    if (!m) continue;
    if (m[2] !== undefined) out.set(m[1], m[2]);
    else if (i + 1 < args.length && !args[i + 1].startsWith("--")) out.set(m[1], args[++i]);
    else out.set(m[1], "true");
  }
  return out;
}

function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json; charset=utf-8" },
  });
}

/** The `data` member of the broadcast (see the module doc); null for invalid JSON. */
async function bodyToData(request: Request): Promise<string | null> {
  const type = (request.headers.get("content-type") ?? "").toLowerCase();
  if (type.startsWith("application/json")) {
    try {
      return `"data":${JSON.stringify(JSON.parse(await request.text()))}`;
    } catch {
      return null;
    }
  }
  if (type.startsWith("text/")) return `"data":${JSON.stringify(await request.text())}`;
  const bytes = new Uint8Array(await request.arrayBuffer());
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return `"data":"${btoa(binary)}","encoding":"base64"`;
}

function main(): void {
  const options = flags(Bun.argv.slice(2));
  const hostname = options.get("hostname") ?? "127.0.0.1";
  const wsPort = Number(options.get("ws-port") ?? 0);
  const httpPort = Number(options.get("http-port") ?? 0);
  const level = options.get("log-level") ?? "info";
  const epoch = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(6))))
    .replaceAll("+", "-").replaceAll("/", "_");
  const ids = new Map<string, number>();
  let wsServer: BunServer | null = null;

  const publish = async (request: Request, url: URL): Promise<Response> => {
    const name = url.searchParams.get("channel");
    if (!name) return json({ error: "The channel query parameter is required." }, 400);
    const data = await bodyToData(request);
    if (data === null) return json({ error: "The body is not valid JSON." }, 400);
    const id = (ids.get(name) ?? 0) + 1;
    ids.set(name, id);
    const text = `{"channel":${JSON.stringify(name)},"epoch":"${epoch}","id":${id},${data}}`;
    wsServer!.publish(name, text);
    const delivered = wsServer!.subscriberCount(name);
    return json({ channel: name, epoch, id, delivered });
  };

  const serveOptions: BunServeOptions = {
    hostname,
    port: wsPort,
    fetch(request, server) {
      const url = new URL(request.url);
      if (request.headers.get("upgrade")?.toLowerCase() === "websocket") {
        if (url.pathname !== "/" && url.pathname !== "/echo") {
          return json({ error: "Not found." }, 404);
        }
        const echo = url.pathname === "/echo";
        const channels = echo
          ? []
          : (url.searchParams.get("channels") ?? "").split(",").filter((n) => n !== "");
        const data = { channels, echo };
        if (server.upgrade(request, { data })) return undefined;
        return json({ error: "The upgrade failed." }, 400);
      }
      if (url.pathname === "/publish") {
        return request.method === "POST"
          ? publish(request, url)
          : json({ error: "Use POST." }, 405);
      }
      if (url.pathname === "/healthz") return json({ status: "ok" });
      return json({ error: `Nothing at ${url.pathname}.` }, 404);
    },
    websocket: {
      open(ws) {
        for (const name of ws.data.channels) ws.subscribe(name);
      },
      message(ws, message) {
        if (ws.data.echo) ws.send(message);
        else if (message === "quit") ws.close(1000, "quit");
      },
      close() {},
    },
  };
  wsServer = Bun.serve(serveOptions);
  const http = httpPort !== 0 && httpPort !== wsPort
    ? Bun.serve({ ...serveOptions, port: httpPort })
    : wsServer;
  if (level === "info" || level === "debug") {
    const now = new Date().toISOString();
    console.error(`${now} info ws.listening address=${hostname}:${wsServer.port}`);
    console.error(`${now} info http.listening address=${hostname}:${http.port}`);
  }
}

main();
