/**
 * The load client: one Deno process that opens N WebSocket connections over raw TCP, publishes
 * through the HTTP API, and checks and times every delivery.
 *
 * It is driven by the runner (`bench/run.ts`) over stdio: the scenario comes as a JSON argument,
 * progress goes to stdout as one JSON object per line, and the runner answers on stdin with
 * `go`, `drain` and `close` once it has sampled the server (its memory must be read while the
 * connections are open). Run by hand:
 *
 * ```sh
 * deno run --allow-net=127.0.0.1 bench/load_client.ts '{"wsPort":9000,"httpPort":8080,"clients":100,"messages":100}'
 * # then type: go, close
 * ```
 *
 * @module
 */
import { type BenchClient, clock, connectAll, readBufferBytes, Tally } from "./bench_client.ts";
import { deflatePeek } from "./deflate_peek.ts";
import { EchoClient } from "./echo_client.ts";
import { Publisher } from "./http_publisher.ts";
import { sleep, within } from "./proc.ts";
import { type LatencySummary, summarizeLatency } from "./stats.ts";
import { makeKeys } from "./ws_handshake.ts";

/** One scenario as the load client runs it. */
export interface LoadConfig {
  /** The server's WebSocket port. */
  wsPort: number;
  /** Several instances' WebSocket ports: clients are spread over them (publishes go to httpPort). */
  wsPorts?: number[];
  /** The server's HTTP (publish API) port. */
  httpPort: number;
  /** The channel every client subscribes to; fresh per run so ids start at 1. */
  channel: string;
  /** The request path instead of `/?channels=CHANNEL&demo=false` (a token in the query, say). */
  path?: string;
  /** Clients that read everything (measured). */
  clients: number;
  /** Extra clients that never read until the runner says `drain` (slow consumers). */
  slow: number;
  /** Messages published in the measured phase (at most, with `seconds`). */
  messages: number;
  /** Stop starting publishes after this many seconds (0: publish all `messages`). */
  seconds: number;
  /** Size of each published body in bytes. */
  size: number;
  /** Publishes in flight (one keep-alive connection each). */
  inflight: number;
  /** Publishes per second, paced from the start of the phase (0: as fast as answers come). */
  rate: number;
  /** Round trips on `/echo` instead of fan-out: `messages` per client, `size` bytes each. */
  echo: boolean;
  /** Echo round trips per client before the measured ones (not counted). */
  echoWarmup: number;
  /** Only connect, wait for `close`, and disconnect (the idle-memory scenario). */
  idle: boolean;
  /** Offer permessage-deflate (the server must agree) and read compressed frames. */
  deflate?: boolean;
  /**
   * Pad bodies with JSON-like text that compresses about as real publications do (~4×) instead
   * of "xxx…" (which deflate shrinks ~100×): for comparisons with and without deflate.
   */
  realisticBody?: boolean;
  /** Handshakes in progress at once during the connect phase. */
  connectConcurrency: number;
  /** Give up when no delivery arrived for this long (ms). */
  stallMs: number;
  /** Give up on the measured phase after this long (ms). */
  timeoutMs: number;
  /** How long slow clients may read in the drain phase (ms). */
  drainMs: number;
}

/** Defaults for the fields a caller leaves out. */
export const DEFAULT_LOAD: Omit<LoadConfig, "wsPort" | "httpPort"> = {
  channel: "bench",
  clients: 100,
  slow: 0,
  messages: 100,
  seconds: 0,
  size: 64,
  inflight: 1,
  rate: 0,
  echo: false,
  echoWarmup: 50,
  idle: false,
  connectConcurrency: 64,
  stallMs: 10_000,
  timeoutMs: 120_000,
  drainMs: 10_000,
};

function emit(event: Record<string, unknown>): void {
  console.log(JSON.stringify(event));
}

/** `Deno.cpuUsage` exists at runtime in Deno 2.9 but is missing from its type declarations. */
const cpuUsage = (Deno as unknown as { cpuUsage?: () => { user: number; system: number } })
  .cpuUsage;

/** This process's CPU time in seconds: Deno.cpuUsage, else utime + stime of /proc/self/stat. */
function cpuSeconds(): number {
  if (cpuUsage) {
    const { user, system } = cpuUsage();
    return (user + system) / 1e6;
  }
  const stat = Deno.readTextFileSync("/proc/self/stat");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100; // USER_HZ is 100 on Linux
}

/** Builds a JSON body of exactly `size` bytes (or the minimum) stamped with the clock. */
function makeBody(seq: number, size: number, realistic = false): string {
  const head = `{"ts":${clock().toFixed(3)},"seq":${seq},"pad":"`;
  const pad = Math.max(0, size - head.length - 2);
  return head + (realistic ? realisticText(pad) : "x".repeat(pad)) + `"}`;
}

const SYMBOLS = ["AAPL", "MSFT", "GOOG", "AMZN", "TSLA", "NVDA", "META", "ORCL"];
let realisticCache = "";

/**
 * `length` characters of ticker-like text ("NVDA 141.27 x314 bid; …", no quotes or
 * backslashes), the same every call: compresses 4 KiB to ~1 KiB, like typical JSON pushes.
 */
function realisticText(length: number): string {
  let r = 1;
  while (realisticCache.length < length) {
    r = (r * 1103515245 + 12345) & 0x7fffffff;
    const price = (100 + ((r >> 8) % 5000) / 100).toFixed(2);
    realisticCache += `${SYMBOLS[r % 8]} ${price} x${(r >> 4) % 500} ${r % 2 ? "bid" : "ask"}; `;
  }
  return realisticCache.slice(0, length);
}

interface PublishOutcome {
  published: number;
  failures: number;
  firstFailure: string;
  deliveredMin: number;
  deliveredMax: number;
  lastId: number;
  /** Seconds from the first publish written to the last answer read. */
  seconds: number;
  /** Publishes answered per second. */
  perSecond: number;
  /** Paced: how late (ms) the latest publish was written after its scheduled time. */
  maxBehindMs: number;
}

/**
 * Publishes `count` messages over `publishers`, each keeping one request in flight. With `rate`
 * > 0 publish i is not written before `i / rate` seconds after the start (paced, open loop:
 * a slow answer delays only the publishes that wait for its connection).
 */
async function publishAll(
  publishers: Publisher[],
  channel: string,
  count: number,
  size: number,
  firstSeq: number,
  rate = 0,
  seconds = 0,
  realistic = false,
): Promise<PublishOutcome> {
  const outcome: PublishOutcome = {
    published: 0,
    failures: 0,
    firstFailure: "",
    deliveredMin: Infinity,
    deliveredMax: 0,
    lastId: 0,
    seconds: 0,
    perSecond: 0,
    maxBehindMs: 0,
  };
  const target = `/publish?channel=${encodeURIComponent(channel)}`;
  let next = 0;
  const t0 = performance.now();
  const stopAt = seconds > 0 ? t0 + seconds * 1000 : Infinity;
  const worker = async (publisher: Publisher) => {
    while (next < count && performance.now() < stopAt) {
      const i = next++;
      const seq = firstSeq + i;
      if (rate > 0) {
        const due = t0 + (i * 1000) / rate;
        const wait = due - performance.now();
        if (wait > 0.5) await sleep(wait);
        outcome.maxBehindMs = Math.max(outcome.maxBehindMs, performance.now() - due);
      }
      const { status, body } = await publisher.post(
        target,
        "application/json",
        () => makeBody(seq, size, realistic),
      );
      if (status !== 200) {
        outcome.failures++;
        outcome.firstFailure ||= `HTTP ${status}: ${body.slice(0, 200)}`;
        continue;
      }
      const answer = JSON.parse(body) as { id: number; delivered: number };
      outcome.published++;
      outcome.deliveredMin = Math.min(outcome.deliveredMin, answer.delivered);
      outcome.deliveredMax = Math.max(outcome.deliveredMax, answer.delivered);
      outcome.lastId = Math.max(outcome.lastId, answer.id);
    }
  };
  await Promise.all(publishers.map(worker));
  outcome.seconds = (performance.now() - t0) / 1000;
  outcome.perSecond = outcome.published / outcome.seconds;
  return outcome;
}

/** Resolves when `done` settles, or when `progress()` stops changing for `stallMs`, or at `timeoutMs`. */
async function waitWithStall(
  done: Promise<void>,
  progress: () => number,
  stallMs: number,
  timeoutMs: number,
): Promise<"done" | "stalled" | "timeout"> {
  let finished = false;
  done.then(() => finished = true);
  const start = performance.now();
  let last = progress();
  let lastChange = start;
  while (!finished) {
    await Promise.race([done, sleep(100)]);
    const now = performance.now();
    const p = progress();
    if (p !== last) {
      last = p;
      lastChange = now;
    }
    if (finished) break;
    if (now - lastChange > stallMs) return "stalled";
    if (now - start > timeoutMs) return "timeout";
  }
  return "done";
}

/**
 * p50 and max latency of each of `parts` equal slices of the samples in arrival order: a
 * latency that climbs from slice to slice means a backlog was building up during the run.
 */
function latencyTimeline(samples: Float32Array, count: number, parts: number): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < parts; i++) {
    const slice = samples.slice(
      Math.floor((i * count) / parts),
      Math.floor(((i + 1) * count) / parts),
    );
    const s = summarizeLatency(slice, slice.length);
    out.push([Math.round(s.p50 * 100) / 100, Math.round(s.max * 100) / 100]);
  }
  return out;
}

/**
 * Emits the measured phase's `result` event: deliveries (or echo round trips) from `start` to
 * the last one that arrived, even when some clients were lost or the phase stalled.
 */
function emitResult(
  outcome: string,
  clients: BenchClient[],
  tally: Tally,
  start: number,
  cpuStart: number,
  publish: PublishOutcome | null,
): void {
  // The phase's CPU and length before the summary: sorting millions of samples is client work
  // after the measurement, and the runner samples the server's CPU at this `ended` event too.
  const cpu = cpuSeconds() - cpuStart;
  const wall = (clock() - start) / 1000;
  emit({ event: "ended" });
  const seconds = (tally.lastDeliveryAt - start) / 1000;
  // Before the summary sorts the samples: they are in arrival order here.
  const timeline = latencyTimeline(tally.latencies, tally.latencyCount, 10);
  const latency: LatencySummary = summarizeLatency(tally.latencies, tally.latencyCount);
  emit({
    event: "result",
    outcome,
    expected: clients.length * tally.target,
    deliveries: tally.deliveries,
    seconds,
    deliveriesPerSec: seconds > 0 ? tally.deliveries / seconds : 0,
    latency,
    latencyTimeline: timeline,
    sendReorders: tally.sendReorders,
    // Bytes read in the phase (frames with headers), and deliveries that came compressed.
    wireBytes: tally.wireBytes,
    compressed: tally.compressed,
    inflatedPrefixes: deflatePeek.inflated,
    errors: {
      gaps: tally.gaps,
      duplicates: tally.duplicates,
      malformed: tally.malformed,
      missingTs: tally.missingTs,
      unexpectedFrames: tally.unexpectedFrames,
      incompleteClients: clients.length - tally.completed,
      closedClients: clients.filter((c) => c.closeCode !== 0 || c.ended !== "").length,
    },
    publish,
    clientCpuSeconds: cpu,
    clientCpuPercent: (100 * cpu) / wall,
  });
}

/**
 * The echo scenario's phases: `echoWarmup` round trips per client (not counted), then
 * `messages` measured ones, every client keeping one message in flight.
 */
async function echoPhase(config: LoadConfig, clients: EchoClient[], tally: Tally): Promise<void> {
  const warm = config.echoWarmup;
  for (const c of clients) {
    c.size = config.size;
    c.limit = warm;
    c.sendMessage(1);
  }
  const warmed = await waitWithStall(
    (async () => {
      while (clients.some((c) => c.lastId < warm)) await sleep(20);
    })(),
    () => clients.reduce((n, c) => n + c.lastId, 0),
    config.stallMs,
    config.timeoutMs,
  );
  if (warmed !== "done") throw new Error(`the echo warm-up ${warmed}`);
  const cpu0 = cpuSeconds();
  const start = clock();
  tally.lastDeliveryAt = start;
  for (const c of clients) {
    c.measureFrom(warm);
    c.limit = warm + config.messages;
    c.sendMessage(warm + 1);
  }
  const outcome = await waitWithStall(
    tally.allDone,
    () => tally.deliveries,
    config.stallMs,
    config.timeoutMs,
  );
  emitResult(outcome, clients, tally, start, cpu0, null);
}

/** Reads the runner's commands from stdin, one per line. */
async function* commands(): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let rest = "";
  for await (const chunk of Deno.stdin.readable) {
    const lines = (rest + decoder.decode(chunk, { stream: true })).split("\n");
    rest = lines.pop()!;
    for (const line of lines) if (line.trim()) yield line.trim();
  }
}

/** Runs one scenario as described in the module doc. */
export async function main(config: LoadConfig): Promise<void> {
  const input = commands();
  const waitFor = async (word: string) => {
    for (let r = await input.next(); !r.done; r = await input.next()) if (r.value === word) return;
    throw new Error(`stdin closed while waiting for "${word}"`);
  };
  const total = config.clients + config.slow;
  const keys = await makeKeys(total);
  // A timed phase learns its target (the messages published) when publishing ends.
  const target = config.seconds > 0 && !config.echo ? Infinity : config.messages;
  const fast = new Tally(config.clients, target, config.clients * config.messages);
  const slow = new Tally(config.slow, config.messages, 0);
  const tallies = keys.map((_, i) => i < config.clients ? fast : slow);
  // Allocated before the clock starts: zeroing 10,000 × 64 KiB costs the client ~0.2 s, which
  // would otherwise be charged to the server's handshake rate.
  const size = readBufferBytes(total, config.idle);
  const buffers = keys.map(() => new Uint8Array(size));

  // Connect phase: the server's handshake rate (keys and their accept values are ready).
  const cpu0 = cpuSeconds();
  const t0 = performance.now();
  const { clients, failures } = await connectAll(
    config.echo ? { ...config, path: "/echo" } : config,
    keys,
    buffers,
    tallies,
    config.connectConcurrency,
    config.echo ? (c, b, t) => new EchoClient(c, b, t) : undefined,
  );
  const connectSeconds = (performance.now() - t0) / 1000;
  const connectCpu = cpuSeconds() - cpu0;
  const fastClients = clients.filter((c) => c.tally === fast);
  const slowClients = clients.filter((c) => c.tally === slow);
  for (const c of fastClients) c.startReading();
  emit({
    event: "connected",
    connected: clients.length,
    failures: failures.length,
    firstFailure: failures[0],
    seconds: connectSeconds,
    handshakesPerSec: clients.length / connectSeconds,
    clientCpuPercent: (100 * connectCpu) / connectSeconds,
  });

  if (config.echo) {
    await waitFor("go");
    await echoPhase(config, fastClients as EchoClient[], fast);
  } else if (!config.idle) {
    await waitFor("go");
    const publishers = await Promise.all(
      Array.from({ length: config.inflight }, () => Publisher.connect(config.httpPort)),
    );
    // Warm-up: publish until every subscriber is registered (the first publishes may race the
    // servers' bookkeeping of just-opened sockets), and wait until all fast clients saw it.
    let warm = await publishAll(publishers.slice(0, 1), config.channel, 1, config.size, 0);
    for (let i = 0; warm.deliveredMax < clients.length && warm.failures === 0 && i < 50; i++) {
      await sleep(100);
      warm = await publishAll(publishers.slice(0, 1), config.channel, 1, config.size, 0);
    }
    // One publish through each other connection too, one at a time: a server handles a fresh
    // connection's first request later than a warm one's, which would show as publishes out of
    // send order at the start of every run.
    for (const publisher of publishers.slice(1)) {
      if (warm.failures > 0) break;
      const next = await publishAll([publisher], config.channel, 1, config.size, 0);
      warm = { ...next, lastId: Math.max(warm.lastId, next.lastId) };
    }
    if (warm.failures > 0) throw new Error(`warm-up publish failed: ${warm.firstFailure}`);
    const base = warm.lastId;
    const seen = waitWithStall(
      (async () => {
        while (fastClients.some((c) => c.lastId < base)) await sleep(20);
      })(),
      () => 0,
      config.stallMs,
      config.stallMs,
    );
    if ((await seen) !== "done") throw new Error("the warm-up message did not reach every client");
    for (const c of clients) c.measureFrom(base);

    // Measured phase: publish, then wait for every fast client to have every message.
    const cpu1 = cpuSeconds();
    const start = clock();
    fast.lastDeliveryAt = start;
    fast.wireBytes = 0;
    fast.compressed = 0;
    const publishing = publishAll(
      publishers,
      config.channel,
      config.messages,
      config.size,
      1,
      config.rate,
      config.seconds,
      config.realisticBody,
    );
    if (fast.target === Infinity) {
      // Ids are given to successful publishes only, so that is what every client must get.
      publishing.then((p) => fast.setTarget(p.published, fastClients), () => {});
    }
    const outcome = await waitWithStall(
      fast.clients === 0 ? publishing.then(() => {}) : fast.allDone,
      () => fast.deliveries,
      config.stallMs,
      config.timeoutMs,
    );
    const published = await within(publishing, 1000, null);
    emitResult(outcome, fastClients, fast, start, cpu1, published);
    for (const p of publishers) p.close();

    if (slowClients.length > 0) {
      // The slow consumers start reading now: what did the server keep for them, and did it
      // close them?
      await waitFor("drain");
      for (const c of slowClients) c.startReading();
      const settled = (c: BenchClient) =>
        c.received >= config.messages || c.closeCode !== 0 || c.ended !== "";
      const drainEnd = performance.now() + config.drainMs;
      while (!slowClients.every(settled) && performance.now() < drainEnd) await sleep(50);
      const codes: Record<string, number> = {};
      for (const c of slowClients) {
        const key = c.closeCode ? `${c.closeCode} ${c.closeReason}` : c.ended || "open";
        codes[key] = (codes[key] ?? 0) + 1;
      }
      const got = slowClients.map((c) => c.received);
      emit({
        event: "slow",
        clients: slowClients.length,
        closes: codes,
        receivedMin: Math.min(...got),
        receivedMax: Math.max(...got),
        gaps: slow.gaps,
        duplicates: slow.duplicates,
      });
    }
  }

  await waitFor("close");
  await within(Promise.all(clients.map((c) => c.close())), 5000, undefined);
  emit({ event: "closed" });
}

if (import.meta.main) {
  const config: LoadConfig = { ...DEFAULT_LOAD, ...JSON.parse(Deno.args[0] ?? "{}") };
  try {
    await main(config);
    Deno.exit(0);
  } catch (err) {
    emit({ event: "error", message: err instanceof Error ? err.message : String(err) });
    Deno.exit(1);
  }
}
