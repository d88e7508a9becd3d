/**
 * The push endpoint against a recording peer (issue 12, item 1): handlers see the narrow `Peer`
 * of src/net/peer.ts, so their logic is unit-tested without sockets.
 */
import { assertEquals, assertStringIncludes } from "@std/assert";
import { createPushHandler } from "../../src/push/push_handler.ts";
import type { ChannelHub } from "../../src/push/channel_hub.ts";
import { type Peer, PeerRequest } from "../../src/net/peer.ts";
import { Logger } from "../../src/log.ts";
import { Metrics } from "../../src/metrics.ts";

/** A peer that records what the handler does to it. */
class RecordingPeer implements Peer {
  readonly id = 1;
  readonly request: PeerRequest;
  readonly signal = new AbortController().signal;
  readonly queuedBytes = 0;
  readonly maxQueueBytes = 1 << 20;
  rateDebt = 0;
  rateAt = 0;
  identity: unknown = null;
  deadline = 0;
  readonly sent: string[] = [];
  readonly closes: [number | undefined, string | undefined][] = [];
  constructor(search = "") {
    this.request = new PeerRequest("/", search);
  }
  sendText(text: string): boolean {
    this.sent.push(text);
    return true;
  }
  sendBinary(): boolean {
    return true;
  }
  sendFrame(): boolean {
    return true;
  }
  close(code?: number, reason?: string): void {
    this.closes.push([code, reason]);
  }
  onDrain(): void {}
}

/** A hub no test here may reach: the commands below are refused before it. */
const unreachableHub = new Proxy({}, {
  get: (_, name) => () => {
    if (name === "subscriptionsOf") return new Set();
    throw new Error(`hub.${String(name)} called`);
  },
}) as unknown as ChannelHub;

function handler(maxClientRate = 0) {
  const metrics = new Metrics();
  const h = createPushHandler({
    demo: false,
    demoInterval: [1000, 1000],
    hub: unreachableHub,
    maxSubscriptions: 10,
    maxClientRate,
    logger: new Logger("silent"),
    metrics,
  });
  return { h, metrics };
}

Deno.test("push handler: free text and binary are acknowledged, quit closes with 1000", () => {
  const { h } = handler();
  const peer = new RecordingPeer();
  h.onMessage(peer, { type: "text", data: "hello" });
  h.onMessage(peer, { type: "binary", data: new Uint8Array(3) });
  h.onMessage(peer, { type: "text", data: "quit" });
  assertEquals(peer.sent, [
    "Server received: hello",
    "Server received 3 bytes of binary data",
  ]);
  assertEquals(peer.closes, [[1000, "quit"]]);
});

Deno.test("push handler: malformed commands get a JSON error, not a disconnect", () => {
  const { h } = handler();
  const peer = new RecordingPeer("?channels=bad!name");
  h.onOpen!(peer);
  h.onMessage(peer, { type: "text", data: "subscribe a b c" });
  h.onMessage(peer, { type: "text", data: "subscribe news x:y" });
  assertEquals(peer.sent.length, 3);
  assertStringIncludes(JSON.parse(peer.sent[0]).error, 'Invalid channel name "bad!name"');
  assertEquals(JSON.parse(peer.sent[1]).error, "Usage: subscribe NAME [EPOCH:ID]");
  assertStringIncludes(JSON.parse(peer.sent[2]).error, 'Invalid position "x:y"');
  assertEquals(peer.closes, []);
});

Deno.test("push handler: beyond the burst the peer is closed with 1008 and not answered", () => {
  const { h, metrics } = handler(1); // 1 message/s, burst 2
  const peer = new RecordingPeer();
  for (const data of ["one", "two", "three"]) h.onMessage(peer, { type: "text", data });
  assertEquals(peer.sent, ["Server received: one", "Server received: two"]);
  assertEquals(peer.closes, [[1008, "rate limit"]]);
  assertEquals(metrics.rateLimited, 1);
});
