/**
 * The memory broker: channels that nobody watches expire after the TTL, and ids never repeat.
 */
import { assertEquals } from "@std/assert";
import { clockMs } from "../../src/clock.ts";
import { memoryHub, Recorder, text } from "../support/subscribers.ts";

Deno.test("Hub drops idle channels after the TTL, keeps listened ones, never reuses ids", () => {
  const hub = memoryHub({
    historySize: 10,
    historyBytes: 1 << 20,
    historyTtl: 60_000,
    epoch: "e1",
  });
  try {
    for (let i = 0; i < 3; i++) hub.publish("idle", text(10));
    hub.publish("listened", text(10));
    const client = new Recorder();
    hub.subscribe(client, "listened");
    hub.broker.sweep(clockMs() + 59_000);
    assertEquals(hub.stats().channels, 2, "not yet old enough");
    hub.broker.sweep(clockMs() + 60_000);
    assertEquals(hub.stats(), { channels: 1, active: 1, historyMessages: 1, historyBytes: 64 });
    // Made again: its ids continue above the dropped ones, so an old position is lost, not
    // mistaken for a position in the new history.
    assertEquals(hub.publish("idle", text(10)).id, 4);
    const late = new Recorder();
    hub.subscribe(late, "idle", { epoch: "e1", id: 2 });
    assertEquals(late.json[0].notice, "lost");
    const current = new Recorder();
    hub.subscribe(current, "idle", { epoch: "e1", id: 3 });
    assertEquals(current.json[0].recovered, true);
    assertEquals(current.texts.length, 2, "id 4 replayed");
  } finally {
    hub.close();
  }
});
