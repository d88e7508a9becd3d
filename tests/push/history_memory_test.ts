/**
 * History memory in the real process: `--history-bytes` must bound what history really holds,
 * not only what it counts. The server runs as a child so its RSS is its own.
 */
import { assert, assertLess } from "@std/assert";
import { FREE_PORTS_NO_DEMO, spawnServer, START_ARGS } from "../support/child_server.ts";
import { readMemory } from "../../bench/proc.ts";
import { gauge } from "../support/push_api.ts";

Deno.test("1,000 publications of 64 KiB through a 256 KiB history keep ~256 KiB, not 62 MiB", async () => {
  await using server = await spawnServer(Deno.execPath(), [
    ...START_ARGS,
    ...FREE_PORTS_NO_DEMO,
    "--history-bytes",
    "256KiB",
  ]);
  const body = "x".repeat(64 * 1024);
  const publish = async () => {
    const response = await fetch(`http://127.0.0.1:${server.httpPort}/publish?channel=big`, {
      method: "POST",
      headers: { "Content-Type": "text/plain" },
      body,
    });
    assert(response.ok, `publish answered ${response.status}`);
    await response.body?.cancel();
  };
  // Warm up first (JIT, HTTP server buffers, a full history), so the growth measured is what
  // the remaining publications leave behind.
  for (let i = 0; i < 50; i++) await publish();
  const before = (await readMemory(server.process.pid)).rssKiB;
  for (let i = 50; i < 1_000; i++) await publish();
  const after = (await readMemory(server.process.pid)).rssKiB;
  const growthMiB = (after - before) / 1024;
  // Before the fix: +120 MiB measured (every evicted frame since the last compaction stayed
  // referenced); after: 17-28 MiB, garbage V8 has not collected yet. 60 MiB lies between.
  assertLess(growthMiB, 60, `RSS grew ${growthMiB.toFixed(1)} MiB (${before} → ${after} KiB)`);
  const held = await gauge(server, "push_history_bytes");
  assert(held > 192 * 1024 && held <= 256 * 1024, `push_history_bytes is ${held}`);
  console.log(`RSS growth ${growthMiB.toFixed(1)} MiB, push_history_bytes ${held}`);
});
