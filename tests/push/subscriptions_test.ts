/**
 * Local subscriptions: the per-subscriber channel index, and the fan-out in id order.
 */
import { assertEquals, assertStrictEquals } from "@std/assert";
import {
  LocalSubscriptions,
  type Subscriber,
  SubscriptionIndex,
} from "../../src/push/subscriptions.ts";
import { encodeTextFrame } from "../../src/protocol/frame_encoder.ts";
import { Recorder } from "../support/subscribers.ts";

Deno.test("SubscriptionIndex keeps one, several and no channels per subscriber", () => {
  const index = new SubscriptionIndex();
  const a = {} as never, b = {} as never;
  assertEquals([...index.of(a)], []);
  assertEquals(index.add(a, "x"), true);
  assertEquals(index.add(a, "x"), false);
  assertEquals([...index.of(a)], ["x"]);
  assertEquals(index.add(a, "y"), true);
  assertEquals(index.add(a, "y"), false);
  assertEquals(index.add(b, "y"), true);
  assertEquals([...index.of(a)].sort(), ["x", "y"]);
  assertEquals(index.list(a).sort(), ["x", "y"]);
  assertEquals([index.has(a, "x"), index.has(a, "z"), index.has(b, "y"), index.has(b, "x")], [
    true,
    false,
    true,
    false,
  ]);
  assertEquals(index.remove(a, "z"), false);
  assertEquals(index.remove(b, "x"), false);
  assertEquals(index.remove(a, "x"), true);
  assertEquals([...index.of(a)], ["y"]);
  assertEquals(index.remove(a, "y"), true);
  assertEquals(index.remove(a, "y"), false);
  assertEquals([...index.of(a)], []);
  assertEquals([...index.of(b)], ["y"]);
  assertEquals(index.remove(b, "y"), true);
  assertEquals([...index.of(b)], []);
  assertEquals([index.list(b), index.has(b, "y")], [[], false]);
});

Deno.test("LocalSubscriptions fans out in id order: duplicates skipped, a gap held and reported", () => {
  const local = new LocalSubscriptions();
  const a = new Recorder(), b = new Recorder();
  const frame = (id: number) => encodeTextFrame(JSON.stringify({ id, data: "x" }));
  for (const r of [a, b]) {
    local.add(r, "c");
    const [[, state]] = local.catchingUp("c").filter(([s]) => s === r);
    state.pending = null; // caught up at id 2, as a catch-up leaves it
    state.lastId = 2;
    local.live("c", state);
  }
  const gaps: [number, number][] = [];
  const onGap = (s: Subscriber, expected: number) => gaps.push([s.id, expected]);
  assertEquals(local.fanOut("c", 3, frame(3), onGap), 2);
  assertEquals(local.fanOut("c", 3, frame(3), onGap), 0, "a duplicate reaches nobody");
  assertStrictEquals(a.frames[0], b.frames[0], "one frame object for all");
  assertEquals(local.fanOut("c", 5, frame(5), onGap), 0, "id 4 is missing");
  assertEquals(gaps, [[a.id, 4], [b.id, 4]]);
  assertEquals(local.catchingUp("c").map(([, s]) => s.pending!.map((e) => e.id)), [[5], [5]]);
  assertEquals([a.ids, b.ids], [[3], [3]]);
});

Deno.test("LocalSubscriptions keeps a subscriber live at another position apart until it catches up", () => {
  const local = new LocalSubscriptions();
  const ahead = new Recorder(), behind = new Recorder();
  const frame = (id: number) => encodeTextFrame(JSON.stringify({ id, data: "x" }));
  const join = (r: Recorder, lastId: number) => {
    local.add(r, "c");
    const [[, state]] = local.catchingUp("c").filter(([s]) => s === r);
    state.pending = null;
    state.lastId = lastId;
    local.live("c", state);
  };
  join(behind, 4);
  join(ahead, 5); // read id 5 from history before its live copy arrived
  const none = () => {
    throw new Error("no gap expected");
  };
  local.fanOut("c", 5, frame(5), none);
  local.fanOut("c", 6, frame(6), none);
  local.fanOut("c", 7, frame(7), none);
  assertEquals([behind.ids, ahead.ids], [[5, 6, 7], [6, 7]]);
});
