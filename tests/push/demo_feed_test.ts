/**
 * The demo feed: its lines, its random waits and its clean stop on abort.
 */
import { assert, assertEquals } from "@std/assert";
import { demoLine, pickWait, runDemoFeed, sleep } from "../../src/push/demo_feed.ts";

Deno.test("pickWait gives whole seconds 2..5 for the default range", () => {
  assertEquals(pickWait([2000, 5000], () => 0), 2000);
  assertEquals(pickWait([2000, 5000], () => 0.999), 5000);
  assertEquals(pickWait([2000, 5000], () => 0.5), 4000);
  assertEquals(pickWait([10, 30], () => 0.5), 20);
});

Deno.test("demoLine says how long the feed waits", () => {
  assertEquals(demoLine(3000), "I am waiting 3 seconds");
  assertEquals(demoLine(1000), "I am waiting 1 second");
  assertEquals(demoLine(25), "I am waiting 0.025 seconds");
});

Deno.test("runDemoFeed pushes a line per wait and stops when its signal aborts", async () => {
  const controller = new AbortController();
  const lines: string[] = [];
  const feed = runDemoFeed(
    {
      sendText(text) {
        lines.push(text);
        if (lines.length === 3) controller.abort();
        return true;
      },
    },
    controller.signal,
    [1, 1],
  );
  await feed;
  assertEquals(lines, [
    "I am waiting 0.001 seconds",
    "I am waiting 0.001 seconds",
    "I am waiting 0.001 seconds",
  ]);
});

Deno.test("runDemoFeed stops when the client no longer takes messages", async () => {
  let calls = 0;
  await runDemoFeed({ sendText: () => (calls++, false) }, new AbortController().signal, [
    1000,
    1000,
  ]);
  assertEquals(calls, 1);
});

Deno.test("sleep resolves at once on abort and leaves no timer behind", async () => {
  const controller = new AbortController();
  const started = performance.now();
  const sleeping = sleep(60_000, controller.signal);
  controller.abort();
  await sleeping;
  assert(performance.now() - started < 1000);
});
