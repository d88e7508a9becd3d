/**
 * End to end in headless Chromium across a restart of the server: the page (which uses
 * push-client.js) subscribes and receives from a server process A backed by a real redis-server;
 * A is stopped (SIGTERM) and publications continue through a second instance B while A is down;
 * A is started again on the same ports; the page reconnects to it, resubscribes from its last
 * position, and has seen every id exactly once, in order (Redis kept the epoch and the history).
 *
 * Needs Debian's `chromium` and `redis-server`: without them this test fails and says so.
 */
import { assertEquals } from "@std/assert";
import { freePorts } from "../../bench/proc.ts";
import { pollUntil, withDeadline } from "../support/async.ts";
import { Browser } from "../support/browser.ts";
import {
  type ChildServer,
  FREE_PORTS_NO_DEMO,
  RUN_ARGS,
  spawnServer,
} from "../support/child_server.ts";
import { httpBase, type HttpServer, publishOk } from "../support/push_api.ts";
import { startRedisServer } from "../support/redis_server.ts";

/** The page's publications, as "channel#id", in the order it logged them. */
const PUBLICATIONS = `[...document.querySelectorAll('#log .entry[data-type="publication"]')]
  .map((e) => e.dataset.channel + "#" + e.dataset.id)`;

/** Resolves once `server` answers /readyz 200 (its Redis connection is up). */
async function ready(server: HttpServer): Promise<void> {
  await pollUntil(
    async () => {
      try {
        const response = await fetch(`${httpBase(server)}/readyz`);
        await response.body?.cancel();
        return response.status === 200;
      } catch {
        return false; // not listening yet
      }
    },
    15_000,
    "the server to be ready",
    50,
  );
}

Deno.test("the page in Chromium resumes without gap or duplicate across a restart of the server with Redis", async () => {
  await using redis = await startRedisServer();
  const [wsPort, httpPort] = freePorts(2);
  const argsOfA = [
    ...RUN_ARGS,
    ...["--ws-port", String(wsPort), "--http-port", String(httpPort)],
    ...["--demo", "false", "--redis", redis.url],
  ];
  let a: ChildServer | null = await spawnServer(Deno.execPath(), argsOfA);
  await using b = await spawnServer(Deno.execPath(), [
    ...RUN_ARGS,
    ...FREE_PORTS_NO_DEMO,
    ...["--redis", redis.url],
  ]);
  await using browser = await Browser.launch();
  const page = await browser.newPage();
  const seen = () => page.evaluate<string[]>(PUBLICATIONS);
  const expected = (n: number) => Array.from({ length: n }, (_, i) => `news#${i + 1}`);
  try {
    await ready(a);
    await ready(b);
    await page.navigate(`http://127.0.0.1:${httpPort}/`);
    await page.waitFor(`pushClient.state === "open"`, "the page to connect");
    await page.evaluate(`pushClient.subscribe("news")`);
    await page.waitFor(
      `pushClient.channels.find((c) => c.name === "news")?.status === "subscribed"`,
      "news to be subscribed",
    );
    // Before: through A (the page's server) and B alike.
    await publishOk(a, "news", "1 via A");
    await publishOk(b, "news", "2 via B");
    await page.waitFor(`${PUBLICATIONS}.length === 2`, "two publications");
    const epoch = await page.evaluate<string>(`pushClient.channels[0].epoch`);

    // A stops (a deploy): the page loses its connection and retries.
    a.process.kill("SIGTERM");
    assertEquals((await withDeadline(a.status, 15_000, "A to exit")).code, 0);
    await a[Symbol.asyncDispose]();
    a = null;
    await page.waitFor(`pushClient.state !== "open"`, "the page to notice A is gone");
    // While A is down: publications through B, which the page cannot receive yet.
    for (let i = 3; i <= 5; i++) await publishOk(b, "news", `${i} while A is down`);

    // A again, same ports, same Redis: the same epoch, and history holds 3-5.
    a = await spawnServer(Deno.execPath(), argsOfA);
    assertEquals(a.httpPort, httpPort);
    await ready(a);
    // As a browser does when the network is back: retry now instead of waiting out the backoff.
    await page.evaluate(`dispatchEvent(new Event("online"))`);
    await page.waitFor(`pushClient.state === "open"`, "the page to reconnect to A", 20_000);
    await page.waitFor(`${PUBLICATIONS}.length >= 5`, "the missed publications");
    // After: both instances again.
    await publishOk(a, "news", "6 via A");
    await publishOk(b, "news", "7 via B");
    await page.waitFor(`${PUBLICATIONS}.length >= 7`, "seven publications");
    assertEquals(await seen(), expected(7));
    // The page asked A to resume after 2 (its last id before the restart), in Redis' epoch.
    await withDeadline(a.waitForLog(`since=${epoch}:2`), 5000, "the resume in A's log");
    assertEquals(
      await page.evaluate(`pushClient.channels`),
      [{ name: "news", epoch, id: 7, status: "subscribed" }],
    );
    assertEquals(page.errors, [], "the page reported errors");
  } catch (err) {
    if (err instanceof Error) {
      err.message += `\npage console: ${JSON.stringify(page.console, null, 2)}` +
        `\nA logged:\n${a?.logs.join("\n")}`;
    }
    throw err;
  } finally {
    await a?.[Symbol.asyncDispose]();
  }
});
