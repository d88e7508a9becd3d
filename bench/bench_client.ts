/**
 * The load client's connections: each reads into its own buffer, scans frames cheaply
 * ({@linkcode FrameScanner}), checks that ids arrive once and in order, and records latency
 * into a {@linkcode Tally} shared by its group (the fast clients, or the slow ones).
 *
 * @module
 */
import { FrameScanner, type FrameSink } from "./frame_scanner.ts";
import { within } from "./proc.ts";
import {
  closeFrame,
  type HandshakeKey,
  maskedFrame,
  openWebSocket,
  writeAll,
} from "./ws_handshake.ts";

const timeOrigin = performance.timeOrigin;
/** Milliseconds since the epoch, sub-millisecond: the clock of the published `ts`. */
export const clock = (): number => timeOrigin + performance.now();

/** Measurements shared by a group of clients (the fast ones, or the slow ones). */
export class Tally {
  /** The clock at the end of the read being scanned: every frame in it arrived then. */
  now = 0;
  /**
   * Publish-to-delivery latencies (ms) in arrival order; the first `latencyCount` are set.
   * 32-bit: a 10-second run at 1.5M deliveries/s keeps every sample in 60 MB, to within
   * 0.001 ms up to 10 s.
   */
  readonly latencies: Float32Array;
  /** Samples in {@linkcode Tally.latencies}. */
  latencyCount = 0;
  /** Messages counted in the measured phase. */
  deliveries = 0;
  /** Ids skipped (each missing message counts once). */
  gaps = 0;
  /** Ids seen again or out of order. */
  duplicates = 0;
  /**
   * Deliveries whose publish was *sent* (by the load client, `"seq":` order) before that of a
   * message this client had already received: with several publishes in flight, the server
   * assigned ids in another order than the publishes were written.
   */
  sendReorders = 0;
  /** Text frames without an `"id":`. */
  malformed = 0;
  /** Messages without a `"ts":` at the start of their data. */
  missingTs = 0;
  /** Binary, fragmented, pong or masked frames: a server should send none of them here. */
  unexpectedFrames = 0;
  /** Of the deliveries, those that came compressed (permessage-deflate). */
  compressed = 0;
  /** Bytes read from the sockets of this group (frames with headers), reset when measuring. */
  wireBytes = 0;
  /** Clients that got every message. */
  completed = 0;
  /** Clients that were closed before getting every message (they never will). */
  lost = 0;
  /** When the last counted delivery arrived. */
  lastDeliveryAt = 0;
  #onAllDone: () => void = () => {};
  /** Resolves once every client has completed or was lost. */
  readonly allDone: Promise<void>;

  /**
   * A tally for `clients` clients that each expect `target` messages, with room for
   * `latencyCapacity` latency samples.
   */
  constructor(readonly clients: number, public target: number, latencyCapacity: number) {
    this.latencies = new Float32Array(latencyCapacity);
    this.allDone = new Promise((resolve) => this.#onAllDone = resolve);
  }

  /**
   * Sets the target once it is known (a timed phase publishes as many as it can): members that
   * already have `target` messages complete now, the others when they get there.
   */
  setTarget(target: number, members: BenchClient[]): void {
    this.target = target;
    for (const c of members) {
      if (c.received >= target && c.closeCode === 0 && c.ended === "") this.clientCompleted();
    }
    if (this.clients === 0) this.#onAllDone();
  }

  /** A client received its `target` messages. */
  clientCompleted(): void {
    this.completed++;
    this.#check();
  }

  /** A client was closed before completing. */
  clientLost(): void {
    this.lost++;
    this.#check();
  }

  #check(): void {
    if (this.completed + this.lost === this.clients) this.#onAllDone();
  }
}

/** One connection: reads and scans, checks ids, answers pings and closes. */
export class BenchClient implements FrameSink {
  /** This connection's frame scanner (fed by the read loop, or with handshake leftovers). */
  readonly scanner: FrameScanner = new FrameScanner(this);
  /** Ids up to this belong to the warm-up and are not checked or counted. */
  base = Infinity;
  /** The id the next message must carry. */
  expected = 0;
  /** Messages counted since {@linkcode BenchClient.measureFrom}. */
  received = 0;
  /** The last id seen, warm-up included. */
  lastId = 0;
  /** The highest `"seq":` received in the measured phase (-1: none yet). */
  maxSeq = -1;
  /** The close code the server sent (0: none yet). */
  closeCode = 0;
  /** The close reason the server sent. */
  closeReason = "";
  /** Whether this side sent a close frame (never send two). */
  closeSent = false;
  /** Why the read loop ended ("eof", "read error: …"), or "" while it runs. */
  ended = "";
  /** Set when this side is closing: read errors are expected then. */
  stopping = false;
  #writes: Promise<void> = Promise.resolve();
  #reading: Promise<void> | null = null;

  /** Wraps an open connection; `buffer` is its read buffer, `tally` its group's counters. */
  constructor(
    readonly conn: Deno.TcpConn,
    readonly buffer: Uint8Array,
    readonly tally: Tally,
  ) {}

  /** Starts the read loop (once); resolves when it ends. */
  startReading(): Promise<void> {
    return this.#reading ??= this.#readLoop();
  }

  /** Reads until EOF, or an error (expected once {@linkcode BenchClient.stopping}). */
  async #readLoop(): Promise<void> {
    const { conn, buffer, scanner, tally } = this;
    try {
      while (true) {
        const n = await conn.read(buffer);
        if (n === null) {
          this.ended = "eof";
          this.#ended();
          return;
        }
        tally.now = clock();
        tally.wireBytes += n;
        scanner.push(buffer, n);
      }
    } catch (err) {
      if (!this.stopping) {
        this.ended = `read error: ${err instanceof Error ? err.name : err}`;
        this.#ended();
      }
    }
  }

  /** A measured client whose connection ended early will not complete: stop waiting for it. */
  #ended(): void {
    if (this.stopping || this.base === Infinity || this.received >= this.tally.target) return;
    if (this.closeCode === 0) this.tally.clientLost(); // else counted at the close frame
  }

  /** Starts checking: the next message must have id `base + 1`. */
  measureFrom(base: number): void {
    this.base = base;
    this.expected = base + 1;
  }

  /**
   * Counts a message: order check against the expected id and against the send order (`seq`),
   * latency from its `ts`.
   */
  onText(id: number, ts: number, _length: number, seq: number, compressed = false): void {
    const tally = this.tally;
    if (id < 0) {
      tally.malformed++;
      return;
    }
    this.lastId = id;
    if (id <= this.base) return; // warm-up traffic
    if (id !== this.expected) {
      if (id < this.expected) tally.duplicates++;
      else tally.gaps += id - this.expected;
    }
    this.expected = id + 1;
    if (seq >= 0) {
      if (seq < this.maxSeq) tally.sendReorders++;
      else this.maxSeq = seq;
    }
    tally.deliveries++;
    if (compressed) tally.compressed++;
    tally.lastDeliveryAt = tally.now;
    if (Number.isNaN(ts)) tally.missingTs++;
    else if (tally.latencyCount < tally.latencies.length) {
      tally.latencies[tally.latencyCount++] = tally.now - ts;
    }
    if (++this.received === tally.target) tally.clientCompleted();
  }

  /** Records the server's close and answers it (once). */
  onClose(code: number, reason: string): void {
    if (this.closeCode !== 0) return;
    this.closeCode = code;
    this.closeReason = reason;
    if (!this.stopping && this.base !== Infinity && this.received < this.tally.target) {
      this.tally.clientLost();
    }
    if (this.closeSent) return; // the server's reply to our close
    // Echo the close (§5.5.1) so the server can finish its closing handshake.
    this.closeSent = true;
    this.send(closeFrame(code === 1005 || code === 1006 ? 1000 : code));
  }

  /** Answers a ping with a pong carrying the same payload. */
  onPing(payload: Uint8Array): void {
    this.send(maskedFrame(0xa, payload));
  }

  /** Counts a frame a push server should not send here. */
  onOther(): void {
    this.tally.unexpectedFrames++;
  }

  /** Queues a write after earlier ones; failures end nothing (the read loop sees them). */
  send(frame: Uint8Array): Promise<void> {
    this.#writes = this.#writes.then(() => writeAll(this.conn, frame)).catch(() => {});
    return this.#writes;
  }

  /**
   * Closes cleanly: sends a close frame and reads until the server closes TCP (it does so first
   * after the closing handshake, RFC 6455 §7.1.1). That leaves TIME_WAIT on the server's side;
   * closing here first would leave thousands of this machine's ephemeral ports in TIME_WAIT per
   * run, slowing the next runs' connect() calls. Bounded: the socket is closed after 2 s.
   */
  async close(): Promise<void> {
    this.stopping = true;
    const reading = this.startReading();
    if (!this.closeSent && this.ended === "") {
      this.closeSent = true;
      this.send(closeFrame(1000));
    }
    await within(reading, 2000, undefined);
    try {
      this.conn.close();
    } catch {
      // Already closed.
    }
  }
}

/**
 * Per-connection read buffers: 256 KiB each, smaller when there are many connections, 4 KiB
 * when they only idle. (A pending `conn.read` owns its buffer, so buffers cannot be shared.)
 */
export function readBufferBytes(connections: number, idle: boolean): number {
  if (idle) return 4096;
  let size = 256 * 1024;
  while (size > 16 * 1024 && size * connections > 768 * 1024 * 1024) size /= 2;
  return size;
}

/** Where and what to connect to. */
export interface ConnectConfig {
  /** The server's WebSocket port. */
  wsPort: number;
  /** Several servers' WebSocket ports: clients are spread over them in turn. */
  wsPorts?: number[];
  /** The channel to subscribe to. */
  channel: string;
  /** The request path instead of `/?channels=CHANNEL&demo=false` (e.g. `/echo`). */
  path?: string;
  /** Offer permessage-deflate, as browsers do; the server must agree. */
  deflate?: boolean;
}

/** Opens one client per key with at most `concurrency` handshakes at once. */
export async function connectAll(
  config: ConnectConfig,
  keys: HandshakeKey[],
  buffers: Uint8Array[],
  tallies: Tally[],
  concurrency: number,
  make: (conn: Deno.TcpConn, buffer: Uint8Array, tally: Tally) => BenchClient = (c, b, t) =>
    new BenchClient(c, b, t),
): Promise<{ clients: BenchClient[]; failures: string[] }> {
  const clients: BenchClient[] = new Array(keys.length);
  const failures: string[] = [];
  const target = config.path ?? `/?channels=${encodeURIComponent(config.channel)}&demo=false`;
  let next = 0;
  const worker = async () => {
    while (next < keys.length) {
      const i = next++;
      const buffer = buffers[i];
      try {
        const port = config.wsPorts?.length
          ? config.wsPorts[i % config.wsPorts.length]
          : config.wsPort;
        const { conn, start, end } = await openWebSocket(
          port,
          target,
          keys[i],
          buffer,
          config.deflate ? "permessage-deflate; client_max_window_bits" : undefined,
        );
        const client = make(conn, buffer, tallies[i]);
        clients[i] = client;
        if (end > start) client.scanner.push(buffer.subarray(start), end - start);
      } catch (err) {
        failures.push(err instanceof Error ? err.message : String(err));
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { clients: clients.filter((c) => c !== undefined), failures };
}
