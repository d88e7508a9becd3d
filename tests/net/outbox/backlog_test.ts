/**
 * Publisher back-pressure: the shared backlog, its per-client cap and its bounded wait.
 */
import { assert, assertEquals } from "@std/assert";
import { Backlog } from "../../../src/net/outbox/backlog.ts";
import { ClientQueue } from "../../../src/net/outbox/client_queue.ts";

Deno.test("queues report their bytes to the backlog, each counting at most the cap", () => {
  const backlog = new Backlog(1000, 100, 1000);
  const a = new ClientQueue(10_000, null, backlog);
  const b = new ClientQueue(10_000, null, backlog);
  a.push(new Uint8Array(60));
  b.push(new Uint8Array(30));
  assertEquals(backlog.bytes, 90);
  a.push(new Uint8Array(500));
  assertEquals(backlog.bytes, 130, "a counts for 100, not 560");
  a.take();
  assertEquals(backlog.bytes, 30);
  b.seal(new Uint8Array(2), true);
  assertEquals(backlog.bytes, 0, "discarded data leaves the backlog");
});

Deno.test("a publisher waits above the high-water mark until the backlog halves", async () => {
  const backlog = new Backlog(100, 1000, 60_000);
  const q = new ClientQueue(10_000, null, backlog);
  q.push(new Uint8Array(150));
  let released = false;
  const waiting = backlog.wait().then(() => released = true);
  await Promise.resolve();
  assert(!released, "held while the backlog is high");
  q.take();
  await waiting;
  assert(released);
  assertEquals(await backlog.wait(), undefined, "no wait below the mark");
});

Deno.test("a publisher never waits longer than maxWaitMs", async () => {
  const backlog = new Backlog(10, 1000, 20);
  new ClientQueue(10_000, null, backlog).push(new Uint8Array(100));
  const started = performance.now();
  await backlog.wait();
  assert(performance.now() - started < 2000);
});

Deno.test("a stalled client leaves the backlog and rejoins when it writes again", () => {
  const backlog = new Backlog(1000, 100, 1000);
  const q = new ClientQueue(10_000, null, backlog);
  q.push(new Uint8Array(80));
  q.leaveBacklog();
  assertEquals(backlog.bytes, 0);
  q.push(new Uint8Array(10));
  assertEquals(backlog.bytes, 0, "still out while stalled");
  q.take();
  assertEquals(backlog.bytes, 0, "back in, with nothing queued");
  q.push(new Uint8Array(30));
  assertEquals(backlog.bytes, 30);
});

Deno.test("the high-water mark grows with the number of clients", () => {
  let clients = 0;
  const backlog = new Backlog(2048, 1 << 20, 1000, () => clients);
  assertEquals(backlog.mark, 2048);
  clients = 10;
  assertEquals(backlog.mark, 10 * 1024);
});

Deno.test("the mark stays reachable with few clients: at most half of what they can count for", () => {
  let clients = 100;
  const backlog = new Backlog(2 * 1024 * 1024, 16 * 1024, 1000, () => clients);
  assertEquals(backlog.mark, 800 * 1024, "100 clients count for 1.6 MiB at most");
  const queues = Array.from({ length: clients }, () => new ClientQueue(1 << 22, null, backlog));
  for (const q of queues) q.push(new Uint8Array(16 * 1024 + 4)); // one 16 KiB frame each
  assert(backlog.bytes > backlog.mark, "a 16 KiB broadcast to all of them engages it");
  clients = 1;
  assertEquals(backlog.mark, 8 * 1024, "one client: paced by its own delivery");
  clients = 10_000;
  assertEquals(backlog.mark, 10_000 * 1024, "many clients: 1 KiB each, as before");
});

Deno.test("publishers are released in arrival order: a newcomer queues behind those waiting", async () => {
  const backlog = new Backlog(100, 1000, 60_000);
  const a = new ClientQueue(10_000, null, backlog);
  const b = new ClientQueue(10_000, null, backlog);
  a.push(new Uint8Array(60));
  b.push(new Uint8Array(60));
  const order: string[] = [];
  const first = backlog.wait().then(() => order.push("first"));
  // The backlog falls below the mark (100) but not to half of it: the first publisher waits on.
  a.take();
  assertEquals(backlog.bytes, 60);
  const second = backlog.wait().then(() => order.push("second"));
  await Promise.resolve();
  await Promise.resolve();
  assertEquals(order, [], "the newcomer does not overtake the waiting publisher");
  b.take();
  await Promise.all([first, second]);
  assertEquals(order, ["first", "second"]);
});
