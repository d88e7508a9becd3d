/**
 * The hub: notices, once-encoded broadcasts, publish order, resume and unsubscribe.
 */
import { assert, assertEquals, assertStrictEquals } from "@std/assert";
import type { Subscriber } from "../../src/push/subscriptions.ts";
import { memoryHub, Paced, Recorder, text } from "../support/subscribers.ts";

Deno.test("Hub sends a subscribed notice, then publications as envelopes", () => {
  const hub = memoryHub({ historySize: 10, historyBytes: 1 << 20, epoch: "e1" });
  const a = new Recorder();
  hub.subscribe(a, "news");
  assertEquals(hub.publish("news", { kind: "text", text: "hi" }), {
    epoch: "e1",
    id: 1,
    delivered: 1,
  });
  hub.publish("news", { kind: "json", json: '{"x":1}' });
  hub.publish("news", { kind: "binary", bytes: new Uint8Array([1, 2, 3]) });
  assertEquals(a.json, [
    { notice: "subscribed", channel: "news", epoch: "e1", id: 0 },
    { channel: "news", epoch: "e1", id: 1, data: "hi" },
    { channel: "news", epoch: "e1", id: 2, data: { x: 1 } },
    { channel: "news", epoch: "e1", id: 3, data: "AQID", encoding: "base64" },
  ]);
});

Deno.test("Hub encodes a broadcast once: every subscriber gets the same bytes", () => {
  const hub = memoryHub({ historySize: 10, historyBytes: 1 << 20 });
  const a = new Recorder();
  const b = new Recorder();
  hub.subscribe(a, "c");
  hub.subscribe(b, "c");
  assertEquals(hub.publish("c", { kind: "text", text: "x" }).delivered, 2);
  assertStrictEquals(a.frames[0], b.frames[0]);
});

Deno.test("Hub keeps channels apart and publish order per channel", () => {
  const hub = memoryHub({ historySize: 10, historyBytes: 1 << 20, epoch: "e" });
  const a = new Recorder();
  const b = new Recorder();
  hub.subscribe(a, "one");
  hub.subscribe(b, "two");
  hub.subscribe(b, "one");
  for (let i = 0; i < 5; i++) {
    hub.publish("one", { kind: "text", text: `1-${i}` });
    hub.publish("two", { kind: "text", text: `2-${i}` });
  }
  const data = (r: Recorder, ch: string) =>
    r.json.filter((m) => m.channel === ch && "data" in m).map((m) => m.data);
  assertEquals(data(a, "one"), ["1-0", "1-1", "1-2", "1-3", "1-4"]);
  assertEquals(data(a, "two"), []);
  assertEquals(data(b, "two"), ["2-0", "2-1", "2-2", "2-3", "2-4"]);
  assertEquals(data(b, "one"), ["1-0", "1-1", "1-2", "1-3", "1-4"]);
});

Deno.test("Hub resumes from history: the missed messages, then live ones, no gap or duplicate", () => {
  const hub = memoryHub({ historySize: 10, historyBytes: 1 << 20, epoch: "e" });
  for (let i = 1; i <= 5; i++) hub.publish("news", { kind: "text", text: `m${i}` });
  const a = new Recorder();
  hub.subscribe(a, "news", { epoch: "e", id: 2 });
  hub.publish("news", { kind: "text", text: "m6" });
  assertEquals(a.json[0], {
    notice: "subscribed",
    channel: "news",
    epoch: "e",
    id: 5,
    recovered: true,
  });
  assertEquals(a.json.slice(1).map((m) => m.id), [3, 4, 5, 6]);
});

Deno.test("Hub says messages were lost when history no longer covers the gap", () => {
  const hub = memoryHub({ historySize: 3, historyBytes: 1 << 20, epoch: "e" });
  for (let i = 1; i <= 10; i++) hub.publish("news", { kind: "text", text: `m${i}` });
  const a = new Recorder();
  hub.subscribe(a, "news", { epoch: "e", id: 2 });
  hub.publish("news", { kind: "text", text: "m11" });
  assertEquals(a.json[0].notice, "lost");
  assertEquals(a.json[1], {
    notice: "subscribed",
    channel: "news",
    epoch: "e",
    id: 10,
    recovered: false,
  });
  assertEquals(a.json.slice(2).map((m) => m.id), [11]);
});

Deno.test("Hub says messages were lost when the epoch is another run's", () => {
  const hub = memoryHub({ historySize: 10, historyBytes: 1 << 20, epoch: "new" });
  hub.publish("news", { kind: "text", text: "m1" });
  const a = new Recorder();
  hub.subscribe(a, "news", { epoch: "old", id: 1 });
  assertEquals(a.json[0].notice, "lost");
  assert(String(a.json[0].reason).includes("restarted"));
});

Deno.test("Hub unsubscribe stops delivery and forgets empty channels without history", () => {
  const hub = memoryHub({ historySize: 10, historyBytes: 1 << 20 });
  const a = new Recorder();
  assert(hub.subscribe(a, "x"));
  assert(!hub.subscribe(a, "x"), "a second subscribe is refused");
  assertEquals(hub.stats().channels, 1);
  assert(hub.unsubscribe(a, "x"));
  assert(!hub.unsubscribe(a, "x"));
  assertEquals(hub.stats().channels, 0);
  hub.subscribe(a, "y");
  hub.publish("y", { kind: "text", text: "kept" });
  hub.unsubscribeAll(a);
  assertEquals(hub.publish("y", { kind: "text", text: "nobody" }).delivered, 0);
  assertEquals(hub.stats(), {
    channels: 1,
    active: 0,
    historyMessages: 2,
    historyBytes: hub.stats().historyBytes,
  });
});

Deno.test("a subscriber closed during its replay does not stay in the channel", () => {
  const hub = memoryHub({ historySize: 10, historyBytes: 1 << 20, epoch: "e1" });
  for (let i = 0; i < 3; i++) hub.publish("news", { kind: "text", text: `m${i}` });
  // Like a connection whose queue overflows: the second replayed frame closes it, and closing
  // unsubscribes it from everything (what the push handler's onClosing does).
  let sent = 0;
  const closing: Subscriber = {
    id: 999_999,
    queuedBytes: 0,
    maxQueueBytes: Infinity,
    onDrain: () => {},
    sendText: () => true,
    sendFrame: () => {
      if (++sent < 2) return true;
      hub.unsubscribeAll(closing);
      return false;
    },
  };
  hub.subscribe(closing, "news", { epoch: "e1", id: 0 });
  assertEquals(hub.subscriptionsOf(closing).size, 0);
  assertEquals(hub.stats().active, 0, "no channel keeps the closed subscriber");
  assertEquals(hub.publish("news", { kind: "text", text: "later" }).delivered, 0);
  assertEquals(sent, 2, "nothing is sent to it after it closed");
});

Deno.test("Hub streams a resume larger than the queue, paced by the writer, gap-free", () => {
  const hub = memoryHub({ historySize: 1_000, historyBytes: 1 << 30, epoch: "e1" });
  for (let i = 0; i < 200; i++) hub.publish("news", text(1_000)); // ~200 KB of history
  const client = new Paced(8 * 1024); // a queue far smaller than the replay
  hub.subscribe(client, "news", { epoch: "e1", id: 0 });
  assertEquals(JSON.parse(client.texts[0]).recovered, true);
  assert(client.queuedBytes <= 4 * 1024, "a replay fills at most half the queue");
  // Publications keep coming while it catches up; it reads them from history too.
  let rounds = 0;
  while (client.write()) {
    if (rounds++ % 3 === 0) hub.publish("news", text(1_000));
  }
  assertEquals(client.closed, false, "never a slow consumer");
  const last = hub.publish("news", text(10)).id; // live now: queued directly
  client.write();
  assertEquals(client.ids, Array.from({ length: last }, (_, i) => i + 1));
  assertEquals(hub.stats().active, 1);
});

Deno.test("Hub tells a replay that history evicted what it had not reached yet, then goes live", () => {
  const hub = memoryHub({ historySize: 20, historyBytes: 1 << 30, epoch: "e1" });
  for (let i = 0; i < 15; i++) hub.publish("news", text(1_000));
  const client = new Paced(4 * 1024);
  hub.subscribe(client, "news", { epoch: "e1", id: 0 });
  for (let i = 0; i < 30; i++) hub.publish("news", text(1_000)); // evicts ids up to 25
  client.write();
  const lost = client.texts.map((t) => JSON.parse(t)).find((m) => m.notice === "lost");
  const sent = client.ids.length;
  assertEquals([lost?.id, lost?.reason], [
    45,
    `history holds ids 26..45; ${25 - sent} message(s) after ${sent} are gone`,
  ]);
  hub.publish("news", text(10));
  client.write();
  const replayed = Array.from({ length: sent }, (_, i) => i + 1);
  assertEquals(client.ids, [...replayed, 46], "what it got, then live after the lost notice");
  assertEquals(client.closed, false);
});

Deno.test("Hub paces a client resuming two channels at once: both replays complete", () => {
  const hub = memoryHub({ historySize: 1_000, historyBytes: 1 << 30, epoch: "e1" });
  for (let i = 0; i < 50; i++) {
    hub.publish("a", text(1_000));
    hub.publish("b", text(1_000));
  }
  const client = new Paced(8 * 1024);
  hub.subscribe(client, "a", { epoch: "e1", id: 0 });
  hub.subscribe(client, "b", { epoch: "e1", id: 0 });
  while (client.write());
  assertEquals(client.ids.length, 100, "all of a and all of b");
  assertEquals(hub.stats().active, 2);
  assertEquals(hub.publish("a", text(1)).delivered, 1);
  assertEquals(hub.publish("b", text(1)).delivered, 1);
});
