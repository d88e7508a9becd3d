/**
 * Conformance, pings and pongs (Autobahn category 2, RFC 6455 §5.5.2–§5.5.3): a ping is answered
 * by a pong with the same payload, a control frame over 125 bytes fails the connection, an
 * unsolicited pong is ignored. Pings that arrive before the pong of an earlier one was written
 * may be answered by one pong, of the most recent (§5.5.3): at most one pong waits per client.
 */
import { patternBytes } from "../support/bytes.ts";
import { Op, rawFrame } from "../support/conformance_frames.ts";
import { conformance } from "../support/conformance.ts";
import { clientFrame } from "../support/raw_client.ts";

conformance("2.1", "ping with an empty payload gets an empty pong", async (c) => {
  await c.send(clientFrame(Op.Ping, new Uint8Array(0)));
  await c.expectPong(new Uint8Array(0));
});

conformance("2.2", "ping with a small text payload gets a pong with it", async (c) => {
  await c.send(clientFrame(Op.Ping, "Hello, world!"));
  await c.expectPong("Hello, world!");
});

conformance("2.3", "ping with a small binary payload gets a pong with it", async (c) => {
  const payload = new Uint8Array([0x00, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0x00, 0xff]);
  await c.send(clientFrame(Op.Ping, payload));
  await c.expectPong(payload);
});

conformance("2.4", "ping with a 125-byte binary payload gets a pong with it", async (c) => {
  await c.send(clientFrame(Op.Ping, patternBytes(125)));
  await c.expectPong(patternBytes(125));
});

conformance("2.5", "ping with a 126-byte payload fails the connection with 1002", async (c) => {
  await c.send(rawFrame(Op.Ping, patternBytes(126)));
  await c.expectFailure(1002);
});

conformance(
  "2.6",
  "ping with a 125-byte payload written one byte at a time gets a pong with it",
  async (c) => {
    await c.sendByteByByte(clientFrame(Op.Ping, patternBytes(125)));
    await c.expectPong(patternBytes(125));
  },
);

conformance(
  "2.7",
  "unsolicited empty pong is ignored: nothing comes back and the next echo works",
  async (c) => {
    await c.send(clientFrame(Op.Pong, new Uint8Array(0)));
    await c.send(clientFrame(Op.Text, "after the pong"));
    await c.expectText("after the pong");
  },
);

conformance(
  "2.8",
  "unsolicited pong with a payload is ignored: the next echo is the first thing back",
  async (c) => {
    await c.send(
      clientFrame(Op.Pong, "unsolicited pong payload"),
      clientFrame(Op.Text, "after the pong"),
    );
    await c.expectText("after the pong");
  },
);

conformance(
  "2.9",
  "unsolicited pong then a ping: only the ping is answered",
  async (c) => {
    await c.send(
      clientFrame(Op.Pong, "unsolicited pong payload"),
      clientFrame(Op.Ping, "ping payload"),
      clientFrame(Op.Text, "marker"),
    );
    await c.expectPong("ping payload");
    await c.expectText("marker");
  },
);

conformance("2.10", "10 pings in a row: pongs in order, the last ping answered", async (c) => {
  const payloads = Array.from({ length: 10 }, (_, i) => `payload-${i}`);
  await c.send(...payloads.map((p) => clientFrame(Op.Ping, p)));
  await c.expectPongsOf(...payloads);
  // Nothing else is pending: the next echo is the next thing back.
  await c.send(clientFrame(Op.Text, "after the pings"));
  await c.expectText("after the pings");
});

conformance("2.10b", "10 pings sent one at a time, each awaited, get 10 pongs", async (c) => {
  for (let i = 0; i < 10; i++) {
    await c.send(clientFrame(Op.Ping, `payload-${i}`));
    await c.expectPong(`payload-${i}`);
  }
});

conformance(
  "2.11",
  "10 pings written one byte at a time: pongs in order, the last ping answered",
  async (c) => {
    const payloads = Array.from({ length: 10 }, (_, i) => `payload-${i}`);
    await c.sendByteByByte(...payloads.map((p) => clientFrame(Op.Ping, p)));
    await c.expectPongsOf(...payloads);
  },
);

conformance("2.12", "pings with every payload length from 0 to 125 are answered", async (c) => {
  // Each awaited, so each gets its own pong (pings sent together may be answered by the last).
  for (let n = 0; n <= 125; n++) {
    await c.send(clientFrame(Op.Ping, patternBytes(n)));
    await c.expectPong(patternBytes(n));
  }
  const all = Array.from({ length: 126 }, (_, n) => patternBytes(n));
  await c.send(...all.map((p) => clientFrame(Op.Ping, p)));
  await c.expectPongsOf(...all);
});

conformance(
  "2.13",
  "a ping with a 126-byte payload after a valid ping: the first is answered, then 1002",
  async (c) => {
    await c.send(clientFrame(Op.Ping, "first"));
    await c.expectPong("first");
    await c.send(rawFrame(Op.Ping, patternBytes(126)));
    await c.expectFailure(1002);
  },
);

conformance(
  "2.14",
  "a ping whose 16-bit length form announces 125 bytes fails the connection with 1002",
  async (c) => {
    // Control frames must use the 7-bit length (§5.5: payload length of 125 bytes or less).
    const frame = new Uint8Array([0x89, 0x80 | 126, 0x00, 125, ...new Uint8Array(4)]);
    await c.send(frame, patternBytes(125));
    await c.expectFailure(1002);
  },
);
