import {
  assert,
  assertEquals,
  assertGreaterOrEqual,
  assertInstanceOf,
  assertLess,
  assertLessOrEqual,
  assertRejects,
  assertStringIncludes,
  assertThrows,
} from "@std/assert";
import { Logger } from "../../src/log.ts";
import {
  RECONNECT_MAX_DELAY,
  reconnectDelay,
  RedisClient,
  type RedisClientHooks,
  RedisUnavailableError,
} from "../../src/redis/client.ts";
import { encodeCommand, RespError } from "../../src/redis/resp.ts";
import { RedisSubscriber } from "../../src/redis/subscriber.ts";
import { parseRedisUrl, redactUrl, type RedisOptions } from "../../src/redis/url.ts";
import { concat, patternBytes, utf8 } from "../support/bytes.ts";
import { startRedisServer } from "../support/redis_server.ts";
import { pollUntil, withDeadline } from "../support/async.ts";
import { startTestServer } from "../support/server.ts";

const decoder = new TextDecoder();
const text = (value: unknown) => decoder.decode(value as Uint8Array);

/** How long any awaited event may take: generous for CI, short enough to fail usefully. */
const WAIT = 10_000;

/** Records onStatus calls; `reached(up, n)` resolves once `up` was reported `n` times. */
class StatusLog {
  readonly events: boolean[] = [];
  #waiters: { up: boolean; n: number; resolve: () => void }[] = [];

  readonly onStatus = (up: boolean): void => {
    this.events.push(up);
    this.#waiters = this.#waiters.filter((w) => {
      if (this.#count(w.up) < w.n) return true;
      w.resolve();
      return false;
    });
  };

  reached(up: boolean, n: number): Promise<void> {
    if (this.#count(up) >= n) return Promise.resolve();
    const reached = new Promise<void>((resolve) => this.#waiters.push({ up, n, resolve }));
    return withDeadline(reached, WAIT, `onStatus(${up}) #${n}`);
  }

  #count(up: boolean): number {
    return this.events.filter((e) => e === up).length;
  }
}

/** Collects messages; `count(n)` resolves once `n` have arrived. */
class Inbox {
  readonly messages: [string, string][] = [];
  readonly raw: Uint8Array[] = [];
  #waiters: { n: number; resolve: () => void }[] = [];

  readonly onMessage = (channel: string, message: Uint8Array): void => {
    this.messages.push([channel, decoder.decode(message)]);
    this.raw.push(message);
    this.#waiters = this.#waiters.filter((w) => {
      if (this.messages.length < w.n) return true;
      w.resolve();
      return false;
    });
  };

  count(n: number): Promise<void> {
    if (this.messages.length >= n) return Promise.resolve();
    const reached = new Promise<void>((resolve) => this.#waiters.push({ n, resolve }));
    return withDeadline(reached, WAIT, `${n} messages (got ${this.messages.length})`);
  }
}

/** A logger whose lines are kept; `waitFor(text, n)` resolves once `n` lines contain `text`. */
function captureLogger(): {
  logger: Logger;
  lines: string[];
  waitFor(text: string, n?: number): Promise<void>;
} {
  const lines: string[] = [];
  let waiters: { text: string; n: number; resolve: () => void }[] = [];
  const count = (text: string) => lines.filter((line) => line.includes(text)).length;
  const logger = new Logger("debug", (line) => {
    lines.push(line);
    waiters = waiters.filter((w) => {
      if (count(w.text) < w.n) return true;
      w.resolve();
      return false;
    });
  });
  const waitFor = (text: string, n = 1) => {
    if (count(text) >= n) return Promise.resolve();
    const found = new Promise<void>((resolve) => waiters.push({ text, n, resolve }));
    return withDeadline(found, WAIT, `${n} log lines with "${text}"`);
  };
  return { logger, lines, waitFor };
}

/** A started client; callers close it (`await using` does). */
async function connectedClient(
  options: RedisOptions,
  hooks: RedisClientHooks = {},
): Promise<RedisClient & AsyncDisposable> {
  const client = new RedisClient(options, hooks) as RedisClient & AsyncDisposable;
  client[Symbol.asyncDispose] = () => client.close();
  client.start();
  await withDeadline(client.ready(), WAIT, "the client to connect");
  return client;
}

/** A TCP server that speaks no Redis by itself: the test plays Redis by hand. */
function fakeRedis(): {
  options: RedisOptions;
  next(): Promise<Deno.Conn>;
  [Symbol.asyncDispose](): Promise<void>;
} {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  const waiting: ((conn: Deno.Conn) => void)[] = [];
  let taken = 0;
  const accepting = (async () => {
    for await (const conn of listener) {
      conns.push(conn);
      waiting.shift()?.(conn);
    }
  })();
  return {
    options: { hostname: "127.0.0.1", port: (listener.addr as Deno.NetAddr).port, db: 0 },
    next() {
      const index = taken++;
      if (index < conns.length) return Promise.resolve(conns[index]);
      const accepted = new Promise<Deno.Conn>((resolve) => waiting.push(resolve));
      return withDeadline(accepted, WAIT, "a connection to the fake Redis");
    },
    async [Symbol.asyncDispose]() {
      listener.close();
      await accepting;
      for (const conn of conns) {
        try {
          conn.close();
        } catch {
          // The client closed it first.
        }
      }
    },
  };
}

/** Reads from `conn` until `length` bytes arrived; returns the chunks as read. */
async function readChunks(conn: Deno.Conn, length: number): Promise<Uint8Array[]> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  while (total < length) {
    const buffer = new Uint8Array(4096);
    const n = await withDeadline(conn.read(buffer), WAIT, `${length} bytes from the client`);
    if (n === null) throw new Error("the client closed the connection");
    chunks.push(buffer.subarray(0, n));
    total += n;
  }
  return chunks;
}

/** Writes all of `bytes` (a socket write may take only part of it). */
async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.length;) at += await conn.write(bytes.subarray(at));
}

// parseRedisUrl

Deno.test("parseRedisUrl defaults the port to 6379 and the database to 0", () => {
  assertEquals(parseRedisUrl("redis://cache.internal"), {
    hostname: "cache.internal",
    port: 6379,
    db: 0,
  });
  assertEquals(parseRedisUrl("redis://127.0.0.1/"), { hostname: "127.0.0.1", port: 6379, db: 0 });
});

Deno.test("parseRedisUrl reads port, password and database", () => {
  assertEquals(parseRedisUrl("redis://:s3cret@10.0.0.5:6380/2"), {
    hostname: "10.0.0.5",
    port: 6380,
    password: "s3cret",
    db: 2,
  });
});

Deno.test("parseRedisUrl reads an ACL user name with its password", () => {
  assertEquals(parseRedisUrl("redis://alice:pw@h:1/15"), {
    hostname: "h",
    port: 1,
    username: "alice",
    password: "pw",
    db: 15,
  });
});

Deno.test("parseRedisUrl percent-decodes user name and password", () => {
  const options = parseRedisUrl("redis://us%40er:p%40ss%3Aw%2Fd@h");
  assertEquals(options.username, "us@er");
  assertEquals(options.password, "p@ss:w/d");
});

Deno.test("parseRedisUrl unwraps an IPv6 address", () => {
  assertEquals(parseRedisUrl("redis://[::1]:7000").hostname, "::1");
});

Deno.test("parseRedisUrl refuses other schemes, naming TLS for rediss", () => {
  assertThrows(() => parseRedisUrl("http://h:6379"), Error, "the scheme must be redis://");
  assertThrows(() => parseRedisUrl("rediss://h"), Error, "TLS (rediss://) is not supported");
  assertThrows(() => parseRedisUrl("localhost:6379"), Error, "Invalid Redis URL");
});

Deno.test("parseRedisUrl refuses a bad database", () => {
  for (const db of ["abc", "-1", "1.5", "2/3", "99999999999"]) {
    assertThrows(() => parseRedisUrl(`redis://h/${db}`), Error, "database must be a non-negative");
  }
});

Deno.test("parseRedisUrl refuses a bad port", () => {
  assertThrows(() => parseRedisUrl("redis://h:0"), Error, "port must be 1-65535");
  assertThrows(() => parseRedisUrl("redis://h:65536"), Error, "1-65535");
  assertThrows(() => parseRedisUrl("redis://h:abc"), Error, "Invalid Redis URL");
});

Deno.test("parseRedisUrl refuses a missing host, a lone user name and query parameters", () => {
  assertThrows(() => parseRedisUrl("redis://"), Error, "the host is missing");
  assertThrows(() => parseRedisUrl("redis://alice@h"), Error, "a user name needs a password");
  assertThrows(() => parseRedisUrl("redis://h?db=1"), Error, "query parameters");
});

Deno.test("parseRedisUrl never repeats the password in its errors", () => {
  for (const url of ["redis://:hunter2@h:99999", "redis://u:hunter2@h/x", "rediss://:hunter2@h"]) {
    const err = assertThrows(() => parseRedisUrl(url), Error);
    assert(!err.message.includes("hunter2"), err.message);
    assertStringIncludes(err.message, ":***@");
  }
});

Deno.test("redactUrl hides the password whatever characters it holds", () => {
  const cases: [string, string][] = [
    ["redis://user:secret@h:6379/0", "redis://user:***@h:6379/0"],
    ["redis://:se@cr/et@h", "redis://:***@h"],
    ["redis://secret@h", "redis://***@h"],
    ["redis:secret@h", "redis:***@h"],
    ["redis://h:6379", "redis://h:6379"],
  ];
  for (const [url, redacted] of cases) assertEquals(redactUrl(url), redacted, url);
  assert(!parseRedisUrlError("redis://:p@ss/zq9x@h").includes("zq9x"), "path part of a password");
  // Without "@", only a plain host[:port][/db] is shown: a forgotten host leaves the secret bare.
  assertEquals(redactUrl("redis://:Sup3rS3cret"), "redis://***");
  assertEquals(redactUrl("redis://h:Sup3rS3cret"), "redis://***");
  assertEquals(redactUrl("redis://cache.internal:6379/0"), "redis://cache.internal:6379/0");
});

function parseRedisUrlError(url: string): string {
  return assertThrows(() => parseRedisUrl(url), Error).message;
}

// Reconnect backoff

Deno.test("reconnectDelay doubles from 100 ms to a 5 s cap, jittered to half-to-all of it", () => {
  assertEquals(reconnectDelay(0, () => 1), 100);
  assertEquals(reconnectDelay(0, () => 0), 50);
  assertEquals(reconnectDelay(3, () => 1), 800);
  assertEquals(reconnectDelay(6, () => 1), RECONNECT_MAX_DELAY);
  assertEquals(reconnectDelay(1000, () => 0), RECONNECT_MAX_DELAY / 2);
  for (let attempt = 0; attempt < 12; attempt++) {
    const delay = reconnectDelay(attempt);
    assertGreaterOrEqual(delay, 50);
    assertLessOrEqual(delay, RECONNECT_MAX_DELAY);
  }
});

// RedisClient against a real redis-server

Deno.test("RedisClient runs SET, GET and INCR", async () => {
  await using redis = await startRedisServer();
  const status = new StatusLog();
  await using client = await connectedClient(parseRedisUrl(redis.url), status);
  assert(client.connected);
  assertEquals(status.events, [true]);
  assertEquals(await client.command(["SET", "greeting", "hello"]), "OK");
  assertEquals(text(await client.command(["GET", "greeting"])), "hello");
  assertEquals(await client.command(["GET", "missing"]), null);
  assertEquals(await client.command(["INCR", "hits"]), 1);
  assertEquals(await client.command(["INCRBY", "hits", 41]), 42);
  assertEquals(await client.command(["RPUSH", "list", "a", "b"]), 2);
  assertEquals((await client.command(["LRANGE", "list", 0, -1]) as Uint8Array[]).map(text), [
    "a",
    "b",
  ]);
});

Deno.test("RedisClient pipelines 1000 INCRs issued in one tick and resolves them in order", async () => {
  await using redis = await startRedisServer();
  await using client = await connectedClient(parseRedisUrl(redis.url));
  const replies = Array.from({ length: 1000 }, () => client.command(["INCR", "counter"]));
  const expected = Array.from({ length: 1000 }, (_, i) => i + 1);
  assertEquals(await Promise.all(replies), expected);
  // Resolution order too, not only positions: each reply settles after the one before.
  const order: number[] = [];
  await Promise.all(
    Array.from(
      { length: 1000 },
      () => client.command(["INCR", "counter"]).then((n) => order.push(n as number)),
    ),
  );
  assertEquals(order, expected.map((n) => n + 1000));
});

Deno.test("RedisClient keeps replies in order while its pipeline never drains", async () => {
  await using redis = await startRedisServer();
  await using client = await connectedClient(parseRedisUrl(redis.url));
  // 100 chains, each issuing its next command when its reply arrives: ~100 always in flight.
  const total = 5000;
  let issued = 0;
  const got: number[] = [];
  const chain = async (): Promise<void> => {
    while (issued < total) {
      issued++;
      got.push(await client.command(["INCR", "n"]) as number);
    }
  };
  await Promise.all(Array.from({ length: 100 }, chain));
  assertEquals(got, Array.from({ length: total }, (_, i) => i + 1));
});

Deno.test("RedisClient rejects an error reply with RespError and keeps working", async () => {
  await using redis = await startRedisServer();
  await using client = await connectedClient(parseRedisUrl(redis.url));
  const err = await assertRejects(() => client.command(["NOSUCHCOMMAND", "x"]), RespError);
  assertEquals(err.code, "ERR");
  // An error in the middle of a pipeline answers only its own command.
  const [set, wrong, get] = await Promise.allSettled([
    client.command(["SET", "k", "v"]),
    client.command(["LPUSH", "k", "x"]),
    client.command(["GET", "k"]),
  ]);
  assertEquals(set, { status: "fulfilled", value: "OK" });
  assert(wrong.status === "rejected" && wrong.reason instanceof RespError);
  assertEquals(wrong.reason.code, "WRONGTYPE");
  assert(get.status === "fulfilled");
  assertEquals(text(get.value), "v");
  assert(client.connected);
  assertEquals(await client.command(["PING"]), "PONG");
});

Deno.test("RedisClient rejects an empty command without sending it", async () => {
  await using redis = await startRedisServer();
  await using client = await connectedClient(parseRedisUrl(redis.url));
  await assertRejects(() => client.command([]), RangeError);
  assertEquals(await client.command(["PING"]), "PONG");
});

Deno.test("RedisClient is binary safe in keys and values, large values included", async () => {
  await using redis = await startRedisServer();
  await using client = await connectedClient(parseRedisUrl(redis.url));
  const key = new Uint8Array([0, 13, 10, 255, 42]);
  const value = patternBytes(256);
  assertEquals(await client.command(["SET", key, value]), "OK");
  assertEquals(await client.command(["GET", key]), value);
  // 4 MiB: many partial reads, and likely partial writes.
  const large = patternBytes(4 * 1024 * 1024);
  assertEquals(await client.command(["SET", "large", large]), "OK");
  assertEquals(await client.command(["GET", "large"]), large);
  assertEquals(text(await client.command(["ECHO", "héllo €"])), "héllo €");
});

Deno.test("RedisClient authenticates with a password on connect", async () => {
  await using redis = await startRedisServer({ args: ["--requirepass", "s3cret"] });
  await using client = await connectedClient(
    parseRedisUrl(`redis://:s3cret@127.0.0.1:${redis.port}`),
  );
  assertEquals(await client.command(["SET", "k", "v"]), "OK");
});

Deno.test("RedisClient authenticates as an ACL user with user name and password", async () => {
  await using redis = await startRedisServer({
    args: ["--user", "alice", "on", ">wonderland", "~*", "&*", "+@all"],
  });
  await using client = await connectedClient(
    parseRedisUrl(`redis://alice:wonderland@127.0.0.1:${redis.port}`),
  );
  assertEquals(text(await client.command(["ACL", "WHOAMI"])), "alice");
});

Deno.test("RedisClient with a wrong password stays down and says why", async () => {
  await using redis = await startRedisServer({ args: ["--requirepass", "s3cret"] });
  const { logger, lines, waitFor } = captureLogger();
  const status = new StatusLog();
  const client = new RedisClient(parseRedisUrl(`redis://:wrong@127.0.0.1:${redis.port}`), {
    logger,
    onStatus: status.onStatus,
  });
  client.start();
  await waitFor("redis.connect_failed", 2); // it keeps retrying
  assert(!client.connected);
  await assertRejects(() => client.command(["PING"]), RedisUnavailableError);
  await client.close();
  assertEquals(status.events, []);
  const failure = lines.find((line) => line.includes("redis.connect_failed"));
  assert(failure !== undefined, lines.join("\n"));
  assertStringIncludes(failure, "WRONGPASS");
  assert(!lines.some((line) => line.includes("wrong")), "the password must never be logged");
});

Deno.test("the whole server with a --redis URL never logs its password, right or wrong", async () => {
  await using redis = await startRedisServer({ args: ["--requirepass", "hunter2"] });
  {
    await using server = await startTestServer([
      "--redis",
      `redis://:hunter2-not@127.0.0.1:${redis.port}/0`,
    ]);
    await server.waitForLog("redis.connect_failed");
    const ready = await fetch(server.httpUrl + "/readyz");
    assertEquals(ready.status, 503, "a Redis that refuses us is not ready");
    await ready.body?.cancel();
    assert(!server.logs.some((line) => line.includes("hunter2")), server.logs.join("\n"));
  }
  await using server = await startTestServer([
    "--redis",
    `redis://:hunter2@127.0.0.1:${redis.port}`,
  ]);
  await server.waitForLog("redis.connected");
  await server.shutdown();
  assert(!server.logs.some((line) => line.includes("hunter2")), server.logs.join("\n"));
});

Deno.test("RedisClient selects the database of its options on connect", async () => {
  await using redis = await startRedisServer();
  await using db3 = await connectedClient(parseRedisUrl(`${redis.url}/3`));
  await using db0 = await connectedClient(parseRedisUrl(redis.url));
  assertEquals(await db3.command(["SET", "where", "three"]), "OK");
  assertEquals(await db0.command(["GET", "where"]), null);
  assertEquals(await db0.command(["DBSIZE"]), 0);
  assertEquals(text(await db0.command(["CLIENT", "INFO"])).match(/ db=(\d+)/)?.[1], "0");
  assertEquals(text(await db3.command(["GET", "where"])), "three");
  assertEquals(text(await db3.command(["CLIENT", "INFO"])).match(/ db=(\d+)/)?.[1], "3");
});

Deno.test("RedisClient selects the database after authenticating", async () => {
  await using redis = await startRedisServer({ args: ["--requirepass", "s3cret"] });
  await using client = await connectedClient(
    parseRedisUrl(`redis://:s3cret@127.0.0.1:${redis.port}/5`),
  );
  assertEquals(text(await client.command(["CLIENT", "INFO"])).match(/ db=(\d+)/)?.[1], "5");
});

Deno.test("RedisClient rejects commands at once before it is started and after close", async () => {
  await using redis = await startRedisServer();
  const client = new RedisClient(parseRedisUrl(redis.url));
  assert(!client.connected);
  await assertRejects(() => client.command(["PING"]), RedisUnavailableError, "not connected");
  client.start();
  await withDeadline(client.ready(), WAIT, "connect");
  await client.close();
  assert(!client.connected);
  await assertRejects(() => client.command(["PING"]), RedisUnavailableError, "closed");
  await assertRejects(() => client.ready(), RedisUnavailableError, "closed");
  await client.close(); // idempotent
});

Deno.test("RedisClient.close rejects commands in flight and pending ready() calls", async () => {
  await using redis = await startRedisServer();
  const client = await connectedClient(parseRedisUrl(redis.url));
  const blocked = client.command(["BLPOP", "never", 0]); // Redis holds the reply back
  const closing = client.close();
  await assertRejects(() => blocked, RedisUnavailableError, "closed");
  await closing;

  const unstarted = new RedisClient(parseRedisUrl(redis.url));
  const waiting = assertRejects(() => unstarted.ready(), RedisUnavailableError, "closed");
  await unstarted.close();
  await waiting;
});

Deno.test("RedisClient.close ends a client that is still trying to connect", async () => {
  await using redis = await startRedisServer();
  await redis.stop();
  const { logger, lines, waitFor } = captureLogger();
  const client = new RedisClient(parseRedisUrl(redis.url), { logger });
  client.start();
  // Let a few attempts fail (100 ms backoff doubling), then close during a backoff wait.
  await waitFor("redis.connect_failed", 3);
  const started = performance.now();
  await client.close();
  assertLess(performance.now() - started, 100, "close must not wait out the backoff");
  const warnings = lines.filter((l) => l.includes(" warn redis.connect_failed"));
  assertEquals(warnings.length, 1, "repeated failures are logged at debug after the first");
  assertStringIncludes(warnings[0], "refused");
});

Deno.test("RedisClient drops a server that stops answering, after its reply timeout", async () => {
  // A TCP peer that accepts and never answers: a hung or half-open Redis.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of listener) accepted.push(conn);
  })();
  const { logger, lines } = captureLogger();
  const status = new StatusLog();
  const client = new RedisClient(
    { hostname: "127.0.0.1", port: (listener.addr as Deno.NetAddr).port, db: 0 },
    { logger, onStatus: status.onStatus, pingInterval: 100, replyTimeout: 200 },
  );
  client.start();
  await status.reached(true, 1); // no AUTH/SELECT to answer: up at once
  const started = performance.now();
  const unanswered = client.command(["GET", "k"]);
  await assertRejects(() => unanswered, RedisUnavailableError, "no reply from Redis within 200 ms");
  assertGreaterOrEqual(performance.now() - started, 200);
  await status.reached(false, 1);
  assert(lines.some((l) => l.includes("warn redis.disconnected") && l.includes("no reply")));
  // An idle connection is probed with PING, and dropped when the PING goes unanswered.
  await status.reached(true, 2);
  await status.reached(false, 2);
  await client.close();
  listener.close();
  await accepting;
  for (const conn of accepted) conn.close();
});

Deno.test("RedisClient writes the commands of one tick in one write and reads split replies", async () => {
  await using redis = fakeRedis();
  const client = new RedisClient(redis.options);
  client.start();
  const conn = await redis.next();
  await withDeadline(client.ready(), WAIT, "connect"); // no AUTH/SELECT: up once connected
  const replies = [
    client.command(["SET", "k", "v"]),
    client.command(["INCR", "n"]),
    client.command(["GET", "k"]),
  ];
  const expected = concat(
    encodeCommand(["SET", "k", "v"]),
    encodeCommand(["INCR", "n"]),
    encodeCommand(["GET", "k"]),
  );
  const chunks = await readChunks(conn, expected.length);
  assertEquals(chunks, [expected], "one write, so one read on loopback");
  // The replies arrive a byte at a time.
  for (const byte of utf8("+OK\r\n:1\r\n$1\r\nv\r\n")) {
    await writeAll(conn, new Uint8Array([byte]));
  }
  assertEquals(await Promise.all(replies), ["OK", 1, utf8("v")]);
  await client.close();
});

Deno.test("RedisClient matches replies to commands across a long, never-empty FIFO", async () => {
  await using redis = fakeRedis();
  const client = new RedisClient(redis.options);
  client.start();
  const conn = await redis.next();
  await withDeadline(client.ready(), WAIT, "connect");
  const echo = (i: number) => client.command(["ECHO", String(i)]).then(text);
  const reply = (from: number, to: number) =>
    utf8(range(from, to).map((i) => `$${String(i).length}\r\n${i}\r\n`).join(""));
  const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);
  const first = range(0, 2000).map(echo);
  await readChunks(
    conn,
    range(0, 2000).reduce((n, i) => n + encodeCommand(["ECHO", String(i)]).length, 0),
  );
  await writeAll(conn, reply(0, 1500)); // 1500 answered, 500 still waiting
  assertEquals(await Promise.all(first.slice(0, 1500)), range(0, 1500).map(String));
  const more = range(2000, 2010).map(echo);
  await readChunks(
    conn,
    range(2000, 2010).reduce((n, i) => n + encodeCommand(["ECHO", String(i)]).length, 0),
  );
  await writeAll(conn, reply(1500, 2010));
  assertEquals(await Promise.all([...first.slice(1500), ...more]), range(1500, 2010).map(String));
  await client.close();
});

Deno.test("RedisClient drops a connection that sends a reply to no command", async () => {
  await using redis = fakeRedis();
  const { logger, waitFor } = captureLogger();
  const status = new StatusLog();
  const client = new RedisClient(redis.options, { logger, onStatus: status.onStatus });
  client.start();
  const first = await redis.next();
  await status.reached(true, 1);
  await writeAll(first, utf8("+SURPRISE\r\n"));
  await status.reached(false, 1);
  await waitFor("matches no command");
  await redis.next(); // it reconnects
  await status.reached(true, 2);
  await client.close();
});

Deno.test("RedisClient drops a connection that breaks RESP, failing its commands", async () => {
  await using redis = fakeRedis();
  const { logger, waitFor } = captureLogger();
  const client = new RedisClient(redis.options, { logger });
  client.start();
  const conn = await redis.next();
  await withDeadline(client.ready(), WAIT, "connect");
  const reply = assertRejects(() => client.command(["PING"]), RedisUnavailableError, "RESP type");
  await writeAll(conn, utf8("~garbage\r\n"));
  await reply;
  await waitFor("warn redis.disconnected");
  await client.close();
});

Deno.test("RedisClient survives a Redis restart: 503-style failures while down, then recovery", async () => {
  await using redis = await startRedisServer();
  const { logger, lines } = captureLogger();
  const status = new StatusLog();
  await using client = await connectedClient(parseRedisUrl(redis.url), {
    logger,
    name: "commands",
    onStatus: status.onStatus,
  });
  assertEquals(await client.command(["INCR", "n"]), 1);
  // Redis holds this reply back; the connection drops before it comes.
  const inFlight = assertRejects(
    () => client.command(["BLPOP", "never", 0]),
    RedisUnavailableError,
    "connection lost",
  );

  await redis.kill();
  await inFlight;
  await status.reached(false, 1);
  assert(!client.connected);
  const started = performance.now();
  await assertRejects(() => client.command(["INCR", "n"]), RedisUnavailableError);
  assertLess(performance.now() - started, 50, "commands fail at once while Redis is down");
  const warn = lines.find((l) => l.includes("warn redis.disconnected"));
  assert(warn !== undefined && warn.includes("name=commands") && warn.includes("error="), warn);

  await redis.restart();
  await status.reached(true, 2);
  assert(client.connected);
  assertEquals(await client.command(["INCR", "n"]), 1); // a fresh, empty Redis
  assertEquals(status.events, [true, false, true]);
});

Deno.test("RedisClient keeps data across a restart of a persistent Redis", async () => {
  await using redis = await startRedisServer({ persistence: true });
  const status = new StatusLog();
  await using client = await connectedClient(parseRedisUrl(redis.url), status);
  assertEquals(await client.command(["INCR", "n"]), 1);
  await redis.kill();
  await status.reached(false, 1);
  await redis.restart();
  await status.reached(true, 2);
  assertEquals(await client.command(["INCR", "n"]), 2);
});

// RedisSubscriber

/** A started subscriber; callers close it (`await using` does). */
function subscriber(
  options: RedisOptions,
  hooks: ConstructorParameters<typeof RedisSubscriber>[1],
): RedisSubscriber & AsyncDisposable {
  const sub = new RedisSubscriber(options, hooks) as RedisSubscriber & AsyncDisposable;
  sub[Symbol.asyncDispose] = () => sub.close();
  sub.start();
  return sub;
}

Deno.test("RedisSubscriber delivers messages of two channels in publish order", async () => {
  await using redis = await startRedisServer();
  await using client = await connectedClient(parseRedisUrl(redis.url));
  const inbox = new Inbox();
  await using sub = subscriber(parseRedisUrl(redis.url), { onMessage: inbox.onMessage });
  await withDeadline(Promise.all([sub.subscribe("a"), sub.subscribe("b")]), WAIT, "subscriptions");
  assert(sub.connected);
  assertEquals([...sub.channels], ["a", "b"]);

  const expected: [string, string][] = [];
  const published: Promise<unknown>[] = [];
  for (let i = 0; i < 200; i++) {
    const channel = i % 3 === 0 ? "b" : "a";
    expected.push([channel, `m${i}`]);
    published.push(client.command(["PUBLISH", channel, `m${i}`]));
  }
  assertEquals(await Promise.all(published), expected.map(() => 1), "one receiver each");
  await inbox.count(200);
  assertEquals(inbox.messages, expected);
});

Deno.test("RedisSubscriber delivers binary payloads byte for byte", async () => {
  await using redis = await startRedisServer();
  await using client = await connectedClient(parseRedisUrl(redis.url));
  const inbox = new Inbox();
  await using sub = subscriber(parseRedisUrl(redis.url), { onMessage: inbox.onMessage });
  await withDeadline(sub.subscribe("bin"), WAIT, "subscription");
  const payload = patternBytes(100_000);
  assertEquals(await client.command(["PUBLISH", "bin", payload]), 1);
  await inbox.count(1);
  assertEquals(inbox.raw[0], payload);
});

Deno.test("RedisSubscriber resolves subscribe at once for a confirmed channel", async () => {
  await using redis = await startRedisServer();
  await using sub = subscriber(parseRedisUrl(redis.url), { onMessage: () => {} });
  await withDeadline(sub.subscribe("a"), WAIT, "subscription");
  let resolved = false;
  const again = sub.subscribe("a").then(() => resolved = true);
  await Promise.resolve();
  assert(resolved, "no round trip for a channel already subscribed");
  await again;
});

Deno.test("RedisSubscriber stops delivering a channel once unsubscribed", async () => {
  await using redis = await startRedisServer();
  await using client = await connectedClient(parseRedisUrl(redis.url));
  const inbox = new Inbox();
  await using sub = subscriber(parseRedisUrl(redis.url), { onMessage: inbox.onMessage });
  await withDeadline(Promise.all([sub.subscribe("a"), sub.subscribe("b")]), WAIT, "subscriptions");
  await withDeadline(sub.unsubscribe("b"), WAIT, "unsubscribe");
  assertEquals([...sub.channels], ["a"]);
  assertEquals(await client.command(["PUBLISH", "b", "dropped"]), 0);
  assertEquals(await client.command(["PUBLISH", "a", "kept"]), 1);
  await inbox.count(1);
  assertEquals(inbox.messages, [["a", "kept"]]);
  // Subscribe, unsubscribe, subscribe again without waiting: the last word holds.
  const first = sub.subscribe("c");
  const off = sub.unsubscribe("c");
  const second = sub.subscribe("c");
  await withDeadline(Promise.all([first, off, second]), WAIT, "c's round trips");
  assertEquals(await client.command(["PUBLISH", "c", "back"]), 1);
  await inbox.count(2);
  assertEquals(inbox.messages[1], ["c", "back"]);
});

Deno.test("RedisSubscriber logs a throwing onMessage and keeps delivering", async () => {
  await using redis = await startRedisServer();
  await using client = await connectedClient(parseRedisUrl(redis.url));
  const { logger, lines } = captureLogger();
  const inbox = new Inbox();
  await using sub = subscriber(parseRedisUrl(redis.url), {
    logger,
    onMessage: (channel, message) => {
      if (text(message) === "boom") throw new Error("handler bug");
      inbox.onMessage(channel, message);
    },
  });
  await withDeadline(sub.subscribe("a"), WAIT, "subscription");
  await client.command(["PUBLISH", "a", "boom"]);
  await client.command(["PUBLISH", "a", "fine"]);
  await inbox.count(1);
  assertEquals(inbox.messages, [["a", "fine"]]);
  assert(lines.some((l) => l.includes("error redis.on_message_failed") && l.includes("handler")));
});

Deno.test("RedisSubscriber subscribes again after a restart and reports up only then", async () => {
  await using redis = await startRedisServer({ args: ["--requirepass", "pw"] });
  const url = `redis://:pw@127.0.0.1:${redis.port}/2`;
  const commandStatus = new StatusLog();
  await using client = await connectedClient(parseRedisUrl(url), commandStatus);
  const inbox = new Inbox();
  const status = new StatusLog();
  await using sub = subscriber(parseRedisUrl(url), {
    onMessage: inbox.onMessage,
    onStatus: status.onStatus,
  });
  await withDeadline(Promise.all([sub.subscribe("a"), sub.subscribe("b")]), WAIT, "subscriptions");
  await status.reached(true, 1);
  await client.command(["PUBLISH", "a", "before"]);
  await inbox.count(1);

  await redis.kill();
  await status.reached(false, 1);
  assert(!sub.connected);
  // A channel asked for while Redis is down is recorded, and confirmed after the reconnect.
  let lateDone = false;
  const late = sub.subscribe("late").then(() => lateDone = true);
  await Promise.resolve();
  assert(!lateDone);

  await redis.restart();
  await status.reached(true, 2);
  assert(sub.connected);
  await withDeadline(late, WAIT, "the late subscription");
  await commandStatus.reached(true, 2);
  const numsub = await client.command(["PUBSUB", "NUMSUB", "a", "b", "late"]) as unknown[];
  assertEquals(numsub.map((v) => typeof v === "number" ? v : text(v)), [
    "a",
    1,
    "b",
    1,
    "late",
    1,
  ]);
  assertEquals(await client.command(["PUBLISH", "b", "after"]), 1);
  assertEquals(await client.command(["PUBLISH", "late", "late one"]), 1);
  await inbox.count(3);
  assertEquals(inbox.messages, [["a", "before"], ["b", "after"], ["late", "late one"]]);
  assertEquals(status.events, [true, false, true]);
});

Deno.test("RedisSubscriber reports up only once every restored channel is confirmed", async () => {
  // The fake Redis answers the SUBSCRIBEs of a reconnect one by one, by hand.
  await using redis = fakeRedis();
  const status = new StatusLog();
  const inbox = new Inbox();
  await using sub = subscriber(redis.options, {
    onMessage: inbox.onMessage,
    onStatus: status.onStatus,
  });
  const bulk = (s: string) => `$${s.length}\r\n${s}\r\n`;
  const confirm = (channel: string) => utf8(`*3\r\n${bulk("subscribe")}${bulk(channel)}:1\r\n`);
  const message = (channel: string, data: string) =>
    utf8(`*3\r\n${bulk("message")}${bulk(channel)}${bulk(data)}`);
  const subscribeBytes = concat(
    encodeCommand(["SUBSCRIBE", "a"]),
    encodeCommand(["SUBSCRIBE", "b"]),
  );

  const first = await redis.next();
  await status.reached(true, 1); // nothing to restore yet
  const subscribed = Promise.all([sub.subscribe("a"), sub.subscribe("b")]);
  assertEquals(concat(...await readChunks(first, subscribeBytes.length)), subscribeBytes);
  await writeAll(first, concat(confirm("a"), confirm("b")));
  await withDeadline(subscribed, WAIT, "subscriptions");

  first.close(); // the connection drops
  await status.reached(false, 1);
  const second = await redis.next();
  assertEquals(concat(...await readChunks(second, subscribeBytes.length)), subscribeBytes);
  // "a" confirmed, and a message on it read after the confirmation: "b" still pending.
  await writeAll(second, concat(confirm("a"), message("a", "early")));
  await inbox.count(1);
  assert(!sub.connected, "up before every channel was confirmed");
  assertEquals(status.events, [true, false]);
  await writeAll(second, confirm("b"));
  await status.reached(true, 2);
  assert(sub.connected);
  assertEquals(inbox.messages, [["a", "early"]]);
});

Deno.test("RedisSubscriber keeps an idle subscription alive with PING", async () => {
  await using redis = await startRedisServer();
  await using client = await connectedClient(parseRedisUrl(redis.url));
  const inbox = new Inbox();
  const status = new StatusLog();
  await using sub = subscriber(parseRedisUrl(redis.url), {
    onMessage: inbox.onMessage,
    onStatus: status.onStatus,
    pingInterval: 20,
    replyTimeout: 200,
  });
  await withDeadline(sub.subscribe("quiet"), WAIT, "subscription");
  const pings = async () => {
    const info = text(await client.command(["INFO", "commandstats"]));
    return Number(/cmdstat_ping:calls=(\d+)/.exec(info)?.[1] ?? 0);
  };
  await pollUntil(async () => await pings() >= 3, WAIT, "three PINGs on the idle subscription", 20);
  // In subscribe mode PING is answered with an array; it must not pass for a message.
  assertEquals(await client.command(["PUBLISH", "quiet", "still here"]), 1);
  await inbox.count(1);
  assertEquals(inbox.messages, [["quiet", "still here"]]);
  assertEquals(status.events, [true]);
});

Deno.test("RedisSubscriber rejects waiting subscriptions when closed", async () => {
  await using redis = await startRedisServer();
  await redis.stop();
  const sub = new RedisSubscriber(parseRedisUrl(redis.url), { onMessage: () => {} });
  sub.start();
  const waiting = assertRejects(() => sub.subscribe("never"), RedisUnavailableError, "closed");
  await sub.close();
  await waiting;
  await assertRejects(() => sub.subscribe("x"), RedisUnavailableError, "closed");
  await assertRejects(() => sub.ready(), RedisUnavailableError, "closed");
  await sub.unsubscribe("never"); // nothing to undo
});

Deno.test("RedisSubscriber rejects a channel the ACL refuses and keeps the others", async () => {
  await using redis = await startRedisServer({
    args: ["--user", "default", "off", "--user", "bob", "on", ">pw", "~*", "&allowed*", "+@all"],
  });
  const { logger, lines } = captureLogger();
  const url = `redis://bob:pw@127.0.0.1:${redis.port}`;
  await using sub = subscriber(parseRedisUrl(url), { logger, onMessage: () => {} });
  await withDeadline(sub.subscribe("allowed.1"), WAIT, "the allowed channel");
  const err = await assertRejects(() => sub.subscribe("forbidden"), RespError);
  assertEquals(err.code, "NOPERM");
  assertEquals([...sub.channels], ["allowed.1"]);
  assert(lines.some((l) => l.includes("error redis.subscribe_refused")));
  assertInstanceOf(err, RespError);
  assert(sub.connected);
});
