/**
 * A burst of clients that connect and then vanish without a close handshake must not leave the
 * server holding their memory: the read-buffer slabs go back to one spare per pool, and RSS does
 * not climb from round to round (bench/mass_disconnect.ts is the 10,000-client version).
 */
import { assert } from "@std/assert";
import { spawnServer } from "../support/child_server.ts";
import { clientFrame, RawClient } from "../support/raw_client.ts";

const root = new URL("../../", import.meta.url).pathname;
const SLAB_BYTES = 64 * 1024;
const ROUNDS = 3;

/** The server's shipped V8 flags (deno.json's start task), so the product is what is measured. */
function shippedV8Flags(): string[] {
  const config = JSON.parse(Deno.readTextFileSync(`${root}deno.json`));
  const flags = /--v8-flags=\S+/.exec(config.tasks.start)?.[0];
  return flags ? [flags] : [];
}

/** Clients per round: 2,000, fewer when this process may not open that many sockets. */
async function clientCount(): Promise<number> {
  const out = await new Deno.Command("bash", { args: ["-c", "ulimit -n"] }).output();
  const limit = Number(new TextDecoder().decode(out.stdout).trim()) || Infinity;
  return Math.min(2000, limit - 200);
}

async function scrape(httpPort: number): Promise<Map<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
  return new Map(
    [...text.matchAll(/^(push_\w+) (\d+)$/gm)].map(([, name, value]) => [name, Number(value)]),
  );
}

/** VmRSS of `pid` (through `cat`: the tests may read only the project). */
async function rssKiB(pid: number): Promise<number> {
  const out = await new Deno.Command("cat", { args: [`/proc/${pid}/status`] }).output();
  const status = new TextDecoder().decode(out.stdout);
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)![1]);
}

/** Polls /metrics until no client is connected (the server saw every drop); 30 s at most. */
async function untilNoClients(httpPort: number): Promise<void> {
  const deadline = Date.now() + 30_000;
  while ((await scrape(httpPort)).get("push_connections") !== 0) {
    if (Date.now() > deadline) throw new Error("the server still counts clients after 30 s");
    await new Promise((r) => setTimeout(r, 100));
  }
}

Deno.test({
  name: "clients that connect and drop in bursts leave no slabs and no growing RSS behind",
  // The server runs as a child; its sockets and timers are not this process's.
  sanitizeResources: false,
  async fn() {
    const count = await clientCount();
    assert(count >= 500, "the open-file limit allows too few sockets for this test");
    // Through bash: the server needs more descriptors than a default soft limit of 1024.
    const server = await spawnServer("bash", [
      "-c",
      'ulimit -n "$(ulimit -Hn)" 2>/dev/null; cd "$0"; exec "$@"',
      root,
      Deno.execPath(),
      "run",
      ...shippedV8Flags(),
      "--allow-net=127.0.0.1",
      "--allow-read=./static",
      "--allow-env=PUSH_*",
      "main.ts",
      "--ws-port",
      "0",
      "--http-port",
      "0",
      "--demo",
      "false",
      "--max-clients",
      String(count + 100),
    ]);
    await using _ = server;
    const pid = server.process.pid;
    const ping = clientFrame(0x9, "");
    const rss: number[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      const clients: RawClient[] = [];
      for (let i = 0; i < count; i += 100) {
        const batch = Array.from(
          { length: Math.min(100, count - i) },
          () => RawClient.open(server.wsPort, "/?channels=burst&demo=false"),
        );
        clients.push(...await Promise.all(batch));
      }
      const connected = await scrape(server.httpPort);
      assert(connected.get("push_connections") === count, `round ${round}: all connected`);
      assert(
        connected.get("push_read_buffer_bytes")! >= Math.ceil(count * 128 / SLAB_BYTES) *
            SLAB_BYTES,
        "the slabs hold one read slot per client",
      );
      // Every other client pings and goes without reading the pong (a reset, as when a client's
      // process dies with data unread); the rest just close. None sends a close frame.
      await Promise.all(clients.filter((_, i) => i % 2 === 0).map((c) => c.write(ping)));
      for (const c of clients) c.conn.close();
      await untilNoClients(server.httpPort);
      const idle = await scrape(server.httpPort);
      // One spare slab per pool (read slots, handshake heads) may stay; the burst's may not.
      assert(
        idle.get("push_read_buffer_bytes")! <= 2 * SLAB_BYTES,
        `round ${round}: ${idle.get("push_read_buffer_bytes")} bytes of read slabs kept`,
      );
      rss.push(await rssKiB(pid));
    }
    // Wide: right after a burst its dead connections are garbage that waits for V8's next major
    // GC (measured: ~9.5 MiB per round of 2,000, ~5 KiB per client, gone ~10 s later or after a
    // forced GC). Keeping the connections themselves would add ~7 KiB per client per round more.
    const growth = rss[ROUNDS - 1] - rss[0];
    assert(
      growth < count * 16,
      `RSS grew ${(growth / 1024).toFixed(1)} MiB from round 1 to round ${ROUNDS}`,
    );
  },
});
