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
