/**
 * The WebSocket server's I/O shell: the accept loop on `Deno.listen`, the opening handshake with
 * its deadline and size limit, the client registry and limit, one shared ticker for every
 * deadline, and graceful shutdown.
 *
 * @module
 */
import { CloseCode } from "../protocol/close.ts";
import {
  acceptKey,
  buildAcceptResponse,
  type HandshakeRejection,
  type HostPolicy,
  hostPolicy,
  isRejection,
  type parseRequestHead,
  type UpgradeOptions,
  type UpgradeRequest,
  validateUpgrade,
} from "../protocol/handshake.ts";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import { WriteScheduler } from "./outbox/write_scheduler.ts";
import { WritePool } from "./outbox/write_pool.ts";
import { yieldToIo } from "./outbox/io_yield.ts";
import type { Backlog } from "./outbox/backlog.ts";
import { Connection, formatAddr } from "./connection.ts";
import { DeflateAgreements } from "./deflate_agreements.ts";
import type { ConnectionOptions, ServerLimits } from "./limits.ts";
import {
  type Authorized,
  CREDENTIAL_PARAM,
  type PeerHandler,
  PeerRequest,
  redactParam,
  withoutParam,
} from "./peer.ts";
import {
  closeQuietly,
  type PendingHandshake,
  readRequestHead,
  rejectHandshake,
} from "./handshake_io.ts";
import { clockMs } from "../clock.ts";

export { type BindOptions, bindWebSocket } from "./bind.ts";

/** Options of {@linkcode WebSocketServer}. */
export interface WebSocketServerOptions {
  /** The bound socket (`bindWebSocket` (`bind.ts`)); the server owns it from here. */
  listener: Deno.Listener;
  /** The address it was bound with: the Host names accepted by default are its own. */
  hostname: string;
  /** Every limit, passed through as is (the app's `Config` is one). */
  limits: ServerLimits;
  /** The outgoing backlog every client queue reports to (publisher back-pressure). */
  backlog?: Backlog;
  /** Browser origins allowed to connect, or "*"; empty = the page server's own (`pageOrigin`). */
  allowedOrigins: readonly string[] | "*";
  /** The page server's port and scheme, for the default Origin rule. */
  pageOrigin?: { port: number; secure: boolean };
  /** The Host names accepted (403 otherwise); default: those of `hostname` alone. */
  allowedHosts?: HostPolicy;
  /** WebSocket endpoints by path. */
  routes: Record<string, PeerHandler>;
  /** Where events are logged. */
  logger: Logger;
  /** Where events are counted. */
  metrics: Metrics;
  /** Clients of other transports counted in `--max-clients` (Server-Sent Events streams). */
  otherClients?: () => number;
}

/**
 * A WebSocket server on raw TCP.
 *
 * @example
 * ```ts
 * const listener = bindWebSocket({ hostname: "127.0.0.1", port: 9000 });
 * const server = new WebSocketServer({ ...options, listener, routes: { "/echo": echoHandler } });
 * const addr = server.start(); // { hostname: "127.0.0.1", port: 9000, transport: "tcp" }
 * await server.shutdown();
 * ```
 */
export class WebSocketServer {
  readonly #options: WebSocketServerOptions;
  readonly #clients = new Set<Connection>();
  readonly #routeOptions = new Map<string, ConnectionOptions>();
  /** What validateUpgrade checks against, made once (not per handshake). */
  #upgradeOptions: UpgradeOptions | null = null;
  readonly #pending = new Set<PendingHandshake>();
  /** Handshakes in flight, and what shutdown waits on until they are done. */
  #handshakes = 0;
  #handshakesDone: (() => void) | null = null;
  #acceptLoop: Promise<void> = Promise.resolve();
  #ticker: ReturnType<typeof setInterval> | undefined;
  #nextId = 1;
  /** Handshakes that passed the client limit and are writing their 101 response. */
  #reserved = 0;
  #scheduler: WriteScheduler | null = null;
  readonly #pool = new WritePool();
  #stopPool = () => this.#pool.close();
  #closing = false;
  readonly #deflate = new DeflateAgreements();
  #backoff: { timer: ReturnType<typeof setTimeout>; resolve: () => void } | null = null;

  /** Creates the server on its bound listener; nothing is accepted before `start`. */
  constructor(options: WebSocketServerOptions) {
    this.#options = options;
  }

  /** The connected clients (handshake done, not yet closed). */
  get clients(): ReadonlySet<Connection> {
    return this.#clients;
  }

  /** Starts accepting and returns the bound address. */
  start(): Deno.NetAddr {
    // One ticker for every deadline of every connection, fine enough for the shortest one.
    const o = this.#options.limits;
    const deadlines = [o.handshakeTimeout, o.closeTimeout, o.sendTimeout, o.pongTimeout];
    if (o.pingInterval > 0) deadlines.push(o.pingInterval);
    const tickMs = Math.min(1000, Math.max(10, Math.min(...deadlines) / 4));
    this.#ticker = setInterval(() => this.#tick(), tickMs);
    if (o.writeDelay > 0) this.#scheduler = new WriteScheduler(o.writeDelay);
    this.#stopPool = yieldToIo(this.#pool);
    this.#acceptLoop = this.#accept(this.#options.listener);
    const addr = this.#options.listener.addr as Deno.NetAddr;
    this.#options.logger.info("ws.listening", { address: `${addr.hostname}:${addr.port}` });
    return addr;
  }

  /**
   * Stops accepting, sends `code` (1001 "going away" by default) to every client, waits up to
   * `drainMs` for their close replies, then closes what is left. Resolves when every socket and
   * loop has ended.
   */
  async shutdown(
    code: number = CloseCode.GoingAway,
    reason = "going away",
    drainMs = 0,
  ): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    try {
      this.#options.listener.close();
    } catch {
      // Closed already.
    }
    if (this.#backoff) {
      clearTimeout(this.#backoff.timer);
      this.#backoff.resolve();
    }
    await this.#acceptLoop;
    for (const p of this.#pending) closeQuietly(p.conn);
    for (const c of this.#clients) c.close(code, reason);
    const all = Promise.all([...this.#clients].map((c) => c.finished));
    if (drainMs > 0 && this.#clients.size > 0) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([all, new Promise((r) => timer = setTimeout(r, drainMs))]);
      clearTimeout(timer);
    }
    for (const c of this.#clients) c.abort("shutdown");
    await all;
    if (this.#handshakes > 0) await new Promise<void>((r) => this.#handshakesDone = r);
    clearInterval(this.#ticker);
    this.#scheduler?.close();
    this.#stopPool();
  }

  async #accept(listener: Deno.Listener): Promise<void> {
    while (!this.#closing) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch (err) {
        if (this.#closing || err instanceof Deno.errors.BadResource) return;
        // EMFILE and friends: the process is out of descriptors. Keep serving the clients we
        // have and try again shortly instead of dying.
        this.#options.logger.error("ws.accept_failed", { error: String(err) });
        await new Promise<void>((resolve) => {
          this.#backoff = { timer: setTimeout(resolve, 100), resolve };
        });
        this.#backoff = null;
        continue;
      }
      // Counted, not kept: a promise with two callbacks per handshake is garbage that adds up.
      this.#handshakes++;
      this.#handshake(conn);
    }
  }

  /** Runs one opening handshake; never rejects. */
  async #handshake(conn: Deno.Conn): Promise<void> {
    const pending: PendingHandshake = {
      conn,
      deadline: clockMs() + this.#options.limits.handshakeTimeout,
    };
    this.#pending.add(pending);
    try {
      (conn as Deno.TcpConn).setNoDelay?.(true);
      const head = await readRequestHead(conn, this.#options.limits.maxHeaderBytes);
      if (head === null) {
        this.#options.logger.info("handshake.abandoned", { remote: addrOf(conn) });
        closeQuietly(conn);
        return;
      }
      const result = isRejection(head.request) ? head.request : this.#check(head.request);
      if (isRejection(result)) {
        await this.#reject(pending, result);
        return;
      }
      const route = this.#options.routes[result.path];
      let accept: string;
      let authorized: Authorized | HandshakeRejection | null = null;
      try {
        // The route's check (a token's signature) runs while the key is hashed; the client's
        // place under the limit stays reserved meanwhile.
        if (route.authorize) {
          [accept, authorized] = await Promise.all([
            acceptKey(result.key),
            route.authorize(result),
          ]);
        } else {
          accept = await acceptKey(result.key);
        }
      } finally {
        this.#reserved--;
      }
      // The deadline or a shutdown may have closed the socket while the key was hashed.
      if (this.#closing || !this.#pending.has(pending)) {
        closeQuietly(conn);
        return;
      }
      if (authorized !== null && isRejection(authorized)) {
        await this.#reject(pending, authorized);
        return;
      }
      this.#pending.delete(pending);
      // The connection writes the 101 response itself, together with its first messages.
      this.#open(conn, head.leftover, result, accept, authorized);
    } catch (err) {
      if (!isSocketError(err)) {
        this.#options.logger.error("handshake.internal_error", { error: String(err) });
      } else if (this.#options.logger.enabled("debug")) {
        // The peer went away or the deadline closed the socket (already logged then).
        this.#options.logger.debug("handshake.failed", {
          remote: addrOf(conn),
          error: String(err),
        });
      }
      closeQuietly(conn);
    } finally {
      this.#pending.delete(pending);
      if (--this.#handshakes === 0) this.#handshakesDone?.();
    }
  }

  #check(
    request: Exclude<ReturnType<typeof parseRequestHead>, HandshakeRejection>,
  ): UpgradeRequest | HandshakeRejection {
    this.#upgradeOptions ??= {
      paths: Object.keys(this.#options.routes),
      allowedOrigins: this.#options.allowedOrigins,
      pageOrigin: this.#options.pageOrigin,
      allowedHosts: this.#options.allowedHosts ?? hostPolicy(this.#options.hostname),
    };
    const result = validateUpgrade(request, this.#upgradeOptions);
    if (isRejection(result)) return result;
    if (this.#closing) return { status: 503, reason: "The server is shutting down." };
    const others = this.#options.otherClients?.() ?? 0;
    if (this.#clients.size + this.#reserved + others >= this.#options.limits.maxClients) {
      return { status: 503, reason: "The server is full: too many clients. Try again later." };
    }
    this.#reserved++;
    return result;
  }

  async #reject(pending: PendingHandshake, rejection: HandshakeRejection): Promise<void> {
    this.#options.metrics.handshakesRejected.inc(rejection.status);
    this.#options.logger.warn("handshake.rejected", {
      remote: addrOf(pending.conn),
      status: rejection.status,
      reason: rejection.reason,
    });
    await rejectHandshake(pending, rejection);
  }

  #open(
    conn: Deno.Conn,
    leftover: Uint8Array,
    request: UpgradeRequest,
    accept: string,
    authorized: Authorized | null,
  ): void {
    const o = this.#options;
    const c = new Connection(
      conn,
      this.#connectionOptions(request.path),
      this.#nextId++,
      // A token in the query is not kept: it was checked, and would cost every client its size.
      new PeerRequest(
        request.path,
        withoutParam(request.search, CREDENTIAL_PARAM),
        request.origin,
      ),
    );
    if (authorized !== null) c.identity = authorized.identity;
    const deflate = this.#deflate.attach(c, o.limits.deflate, request.headers);
    // Guarded: at the usual level these fields would be garbage made for nothing, per client.
    if (o.logger.enabled("info")) {
      o.logger.info("handshake.accepted", {
        client: c.id,
        remote: addrOf(conn),
        path: request.path,
        // Never the token itself: log lines travel further than the server's secrets.
        query: redactParam(request.search, CREDENTIAL_PARAM).slice(0, 500) || undefined,
        origin: request.origin,
        deflate,
      });
    }
    // Nothing that can throw between registering the client and starting its loops (open()
    // starts them whatever its handler does): a registered client can always close and end.
    this.#clients.add(c);
    o.metrics.connectionsTotal++;
    c.open(buildAcceptResponse(accept, deflate), leftover);
  }

  /** The options every connection of the route at `path` shares (made once per route). */
  #connectionOptions(path: string): ConnectionOptions {
    let options = this.#routeOptions.get(path);
    if (options === undefined) {
      const o = this.#options;
      options = {
        limits: o.limits,
        reader: {
          role: "server",
          maxMessageBytes: o.limits.maxMessageBytes,
          maxFragments: o.limits.maxFragments,
        },
        scheduler: this.#scheduler,
        backlog: o.backlog ?? null,
        pool: this.#pool,
        handler: o.routes[path],
        logger: o.logger,
        metrics: o.metrics,
        onFinished: (c) => {
          this.#clients.delete(c);
          if (c.deflate !== null) o.metrics.deflate.connections--;
        },
      };
      this.#routeOptions.set(path, options);
    }
    return options;
  }

  #tick(): void {
    const now = clockMs();
    for (const p of this.#pending) {
      if (now > p.deadline) {
        this.#pending.delete(p);
        this.#options.metrics.handshakeTimeouts++;
        this.#options.logger.info("handshake.timeout", { remote: addrOf(p.conn) });
        closeQuietly(p.conn);
      }
    }
    for (const c of this.#clients) c.tick(now);
  }
}

/** Whether `err` is the socket failing (the peer or a deadline), not a bug of ours. */
function isSocketError(err: unknown): boolean {
  return Object.values(Deno.errors).some((E) => err instanceof E);
}

/** The peer's address for a log line; "?" when the socket can no longer tell. */
function addrOf(conn: Deno.Conn): string {
  try {
    return formatAddr(conn.remoteAddr);
  } catch {
    return "?";
  }
}
