import { assertEquals, assertThrows } from "@std/assert";
import { CloseHandshake } from "../../src/protocol/close_handshake.ts";

Deno.test("close handshake: a peer's close is echoed with its code and reason (§5.5.1)", () => {
  const h = new CloseHandshake();
  assertEquals(h.received(1001, "going"), "send");
  assertEquals(h.state, "closing");
  assertEquals([...h.frame()], [0x88, 0x07, 0x03, 0xe9, ...new TextEncoder().encode("going")]);
  assertEquals(h.discard, false);
  // Both frames exchanged once ours is written: the server closes TCP first (§7.1.1).
  assertEquals(h.frameWritten(), "close-tcp");
  assertEquals(h.state, "closed");
});

Deno.test("close handshake: a close without a code (1005) is answered without one", () => {
  const h = new CloseHandshake();
  assertEquals(h.received(1005, ""), "send");
  assertEquals([...h.frame()], [0x88, 0x00]);
});

Deno.test("close handshake: our close, then the peer's answer after our frame is written", () => {
  const h = new CloseHandshake();
  assertEquals(h.close(1000, "quit"), "send");
  assertEquals([...h.frame()], [0x88, 0x06, 0x03, 0xe8, 0x71, 0x75, 0x69, 0x74]);
  assertEquals(h.frameWritten(), "none"); // wait for the peer
  assertEquals(h.received(1000, "quit"), "close-tcp");
  assertEquals(h.state, "closed");
  assertEquals(h.receivedFrame, { code: 1000, reason: "quit" });
});

Deno.test("close handshake: the peer's answer before our frame is written waits for the write", () => {
  const h = new CloseHandshake();
  h.close(1000);
  assertEquals(h.received(1000, ""), "none");
  assertEquals(h.state, "closing");
  assertEquals(h.frameWritten(), "close-tcp");
});

Deno.test("close handshake: both sides close at once; the first close wins", () => {
  const h = new CloseHandshake();
  assertEquals(h.close(1001, "going away"), "send");
  assertEquals(h.close(1000, "again"), "none");
  assertEquals(h.received(1000, "peer"), "none");
  assertEquals(h.sent, { code: 1001, reason: "going away" });
  assertEquals(h.frameWritten(), "close-tcp");
  assertEquals(h.frameWritten(), "none");
});

Deno.test("close handshake: a failure sends its code, then half-closes once written (§7.1.7)", () => {
  const h = new CloseHandshake();
  assertEquals(h.fail(1002, "unmasked frame"), "send");
  assertEquals(h.failed, true);
  assertEquals(h.discard, false); // replies the peer earned still go first
  assertEquals(h.frameWritten(), "half-close");
  assertEquals(h.state, "closing");
  assertEquals(h.timedOut(), "close-tcp");
});

Deno.test("close handshake: a slow consumer's close discards the waiting data", () => {
  const h = new CloseHandshake();
  h.close(1008, "slow consumer", true);
  assertEquals(h.discard, true);
});

Deno.test("close handshake: the deadline closes TCP only while closing", () => {
  const h = new CloseHandshake();
  assertEquals(h.timedOut(), "none");
  h.close(1000);
  assertEquals(h.timedOut(), "close-tcp");
  assertEquals(h.received(1000, ""), "none"); // too late
});

Deno.test("close handshake: after the transport is gone nothing more happens", () => {
  const h = new CloseHandshake();
  h.transportClosed();
  assertEquals(h.state, "closed");
  assertEquals(h.close(1000), "none");
  assertEquals(h.received(1000, ""), "none");
  assertThrows(() => h.frame());
});
