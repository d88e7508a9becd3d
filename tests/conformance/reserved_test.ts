/**
 * Conformance, reserved bits and opcodes (Autobahn categories 3 and 4, RFC 6455 §5.2): with no
 * extension negotiated, a set RSV bit or a reserved opcode fails the connection with 1002. A
 * valid frame sent before the bad one (even in the same TCP write) is still echoed; nothing after
 * it is answered.
 */
import { Op, rawFrame } from "../support/conformance_frames.ts";
import { conformance } from "../support/conformance.ts";
import { clientFrame } from "../support/raw_client.ts";

const HELLO = "Hello, world!";

// --- Category 3: RSV bits (rsv is the 3-bit value: 4 = RSV1, 2 = RSV2, 1 = RSV3) ---

conformance(
  "3.1",
  "text frame with RSV3 set (RSV = 1) fails the connection with 1002",
  async (c) => {
    await c.send(rawFrame(Op.Text, HELLO, { rsv: 1 }));
    await c.expectFailure(1002);
  },
);

conformance(
  "3.2",
  "text, then text with RSV2 set (RSV = 2), then ping, in one write: echo, then 1002, no pong",
  async (c) => {
    await c.send(
      clientFrame(Op.Text, HELLO),
      rawFrame(Op.Text, HELLO, { rsv: 2 }),
      clientFrame(Op.Ping, "ping"),
    );
    await c.expectText(HELLO);
    await c.expectFailure(1002);
  },
);

conformance(
  "3.3",
  "text, then text with RSV = 3, then ping, in separate writes: echo, then 1002, no pong",
  async (c) => {
    await c.send(clientFrame(Op.Text, HELLO));
    await c.expectText(HELLO);
    await c.sendEach(rawFrame(Op.Text, HELLO, { rsv: 3 }), clientFrame(Op.Ping, "ping"));
    await c.expectFailure(1002);
  },
);

conformance(
  "3.4",
  "text, then text with RSV1 set (RSV = 4), then ping, one byte at a time: echo, then 1002",
  async (c) => {
    await c.sendByteByByte(
      clientFrame(Op.Text, HELLO),
      rawFrame(Op.Text, HELLO, { rsv: 4 }),
      clientFrame(Op.Ping, "ping"),
    );
    await c.expectText(HELLO);
    await c.expectFailure(1002);
  },
);

conformance("3.5", "binary frame with RSV = 5 fails the connection with 1002", async (c) => {
  await c.send(rawFrame(Op.Binary, new Uint8Array([0, 0xff, 0xfe]), { rsv: 5 }));
  await c.expectFailure(1002);
});

conformance("3.6", "ping with RSV = 6 fails the connection with 1002 (no pong)", async (c) => {
  await c.send(rawFrame(Op.Ping, HELLO, { rsv: 6 }));
  await c.expectFailure(1002);
});

conformance(
  "3.7",
  "close with RSV = 7 fails the connection with 1002 (no 1000 echo)",
  async (c) => {
    await c.send(rawFrame(Op.Close, new Uint8Array([0x03, 0xe8]), { rsv: 7 }));
    await c.expectFailure(1002);
  },
);

conformance(
  "3.8",
  "continuation frame with RSV1 set fails the connection with 1002 (message not echoed)",
  async (c) => {
    await c.send(
      clientFrame(Op.Text, "Hello, ", false),
      rawFrame(Op.Continuation, "world!", { rsv: 4 }),
    );
    await c.expectFailure(1002);
  },
);

// --- Category 4: reserved opcodes (3–7 non-control, 0xB–0xF control) ---

for (const [group, base] of [["4.1", 3], ["4.2", 0xb]] as const) {
  const kind = group === "4.1" ? "non-control" : "control";
  const op = (i: number) => base + i;
  const name = (i: number) => `reserved ${kind} opcode ${op(i)} (0x${op(i).toString(16)})`;

  conformance(`${group}.1`, `${name(0)} with no payload fails with 1002`, async (c) => {
    await c.send(rawFrame(op(0)));
    await c.expectFailure(1002);
  });

  conformance(`${group}.2`, `${name(1)} with a payload fails with 1002`, async (c) => {
    await c.send(rawFrame(op(1), HELLO));
    await c.expectFailure(1002);
  });

  conformance(
    `${group}.3`,
    `text, then ${name(2)}, then ping, in one write: echo, then 1002, no pong`,
    async (c) => {
      await c.send(clientFrame(Op.Text, HELLO), rawFrame(op(2)), clientFrame(Op.Ping, "ping"));
      await c.expectText(HELLO);
      await c.expectFailure(1002);
    },
  );

  conformance(
    `${group}.4`,
    `text, then ${name(3)} with a payload, then ping, in one write: echo, then 1002, no pong`,
    async (c) => {
      await c.send(
        clientFrame(Op.Text, HELLO),
        rawFrame(op(3), HELLO),
        clientFrame(Op.Ping, "ping"),
      );
      await c.expectText(HELLO);
      await c.expectFailure(1002);
    },
  );

  conformance(
    `${group}.5`,
    `text, then ${name(4)} with a payload, then ping, one byte at a time: echo, then 1002`,
    async (c) => {
      await c.sendByteByByte(
        clientFrame(Op.Text, HELLO),
        rawFrame(op(4), HELLO),
        clientFrame(Op.Ping, "ping"),
      );
      await c.expectText(HELLO);
      await c.expectFailure(1002);
    },
  );
}
