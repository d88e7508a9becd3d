/**
 * History: ids, eviction by count and bytes, and what `since` can and cannot recover.
 */
import { assertEquals } from "@std/assert";
import { History } from "../../src/push/history.ts";

const frame = (n: number) => new Uint8Array(n);
const ids = (h: History, since: number) => {
  const r = h.since(since);
  return r.recovered ? r.entries.map((e) => e.id) : r.reason;
};

Deno.test("History returns exactly the entries after an id", () => {
  const h = new History(10, 1 << 20);
  for (let i = 0; i < 5; i++) h.add(h.nextId(), frame(1));
  assertEquals(h.lastId, 5);
  assertEquals(ids(h, 0), [1, 2, 3, 4, 5]);
  assertEquals(ids(h, 3), [4, 5]);
  assertEquals(ids(h, 5), []);
});

Deno.test("History keeps the last N entries and reports what is lost beyond them", () => {
  const h = new History(3, 1 << 20);
  for (let i = 0; i < 10; i++) h.add(h.nextId(), frame(1));
  assertEquals(h.size, 3);
  assertEquals(ids(h, 7), [8, 9, 10]);
  assertEquals(ids(h, 6), "history holds ids 8..10; 1 message(s) after 6 are gone");
  assertEquals(ids(h, 11), "id 11 is ahead of the channel's last id 10");
});

Deno.test("History evicts by bytes but always keeps the newest entry", () => {
  const h = new History(100, 10);
  h.add(h.nextId(), frame(4));
  h.add(h.nextId(), frame(4));
  assertEquals([h.size, h.bytes], [2, 8]);
  h.add(h.nextId(), frame(4));
  assertEquals([h.size, h.bytes], [2, 8]);
  h.add(h.nextId(), frame(50));
  assertEquals([h.size, h.bytes], [1, 50]);
  assertEquals(ids(h, 3), [4]);
});

Deno.test("History with capacity 0 keeps ids but recovers only an up-to-date client", () => {
  const h = new History(0, 1 << 20);
  h.add(h.nextId(), frame(1));
  h.add(h.nextId(), frame(1));
  assertEquals([h.size, h.lastId], [0, 2]);
  assertEquals(ids(h, 2), []);
  assertEquals(typeof ids(h, 1), "string");
});

Deno.test("History stays consistent across many evictions and compactions", () => {
  const h = new History(50, 1 << 30);
  for (let i = 0; i < 10_000; i++) h.add(h.nextId(), frame(1));
  assertEquals(h.size, 50);
  assertEquals(ids(h, 9_990), [
    9_991,
    9_992,
    9_993,
    9_994,
    9_995,
    9_996,
    9_997,
    9_998,
    9_999,
    10_000,
  ]);
});

Deno.test("History drops its reference to every evicted frame (count and bytes)", () => {
  // Byte-bounded: 1,000 frames of 64 bytes through 256 bytes keeps 4, and references 4.
  const byBytes = new History(100, 256);
  for (let i = 0; i < 1_000; i++) byBytes.add(byBytes.nextId(), frame(64));
  assertEquals([byBytes.size, byBytes.bytes, byBytes.retained], [4, 256, 4]);
  assertEquals(ids(byBytes, 996), [997, 998, 999, 1_000]);
  // Count-bounded: the ring never holds more slots than its capacity.
  const byCount = new History(50, 1 << 30);
  for (let i = 0; i < 3_000; i++) byCount.add(byCount.nextId(), frame(1));
  assertEquals([byCount.size, byCount.retained, byCount.slots], [50, 50, 50]);
});

Deno.test("History grows its ring with use, not to capacity up front", () => {
  const h = new History(1_000, 1 << 30);
  h.add(h.nextId(), frame(1));
  assertEquals(h.slots, 4);
  for (let i = 0; i < 9; i++) h.add(h.nextId(), frame(1));
  assertEquals([h.slots, h.size, h.oldestId], [16, 10, 1]);
  assertEquals(h.frame(0), undefined);
  assertEquals(h.frame(10)?.length, 1);
  assertEquals(h.frame(11), undefined);
});

Deno.test("History can start after a given id (a channel created again)", () => {
  const h = new History(10, 1 << 20, 41);
  assertEquals([h.lastId, h.nextId(), h.oldestId], [41, 42, 42]);
  assertEquals(ids(h, 41), []);
  assertEquals(typeof ids(h, 3), "string");
  h.add(h.nextId(), frame(1));
  assertEquals(ids(h, 41), [42]);
});
