/**
 * Conformance, framing (Autobahn category 1, RFC 6455 §5.2): text and binary messages at every
 * length boundary of the 7-bit, 16-bit and 64-bit length forms, written whole, in chops, one
 * byte at a time, and several frames in one write; plus the frame-level rules every message
 * depends on (masking, the 64-bit length's top bit, the message size limit).
 */
import { patternBytes, utf8 } from "../support/bytes.ts";
import { conformance } from "../support/conformance.ts";
import { clientFrame } from "../support/raw_client.ts";
import { asciiText, Op, rawFrame, rawHeader } from "../support/conformance_frames.ts";

const MiB = 1024 * 1024;
const SIZES: [string, number][] = [
  ["1", 0],
  ["2", 125],
  ["3", 126],
  ["4", 127],
  ["5", 128],
  ["6", 65535],
  ["7", 65536],
  ["8", 65536],
  ["9", MiB],
];

/** Case 8 of each group writes its frame in chops of 997 bytes; the others in one write. */
function inChops(frame: Uint8Array): Uint8Array[] {
  const parts: Uint8Array[] = [];
  for (let i = 0; i < frame.length; i += 997) parts.push(frame.subarray(i, i + 997));
  return parts;
}

for (const [n, size] of SIZES) {
  const how = n === "8" ? " written in chops of 997 bytes" : "";
  conformance(`1.1.${n}`, `text message of ${size} bytes${how} is echoed`, async (c) => {
    const text = asciiText(size);
    const frame = clientFrame(Op.Text, text);
    if (n === "8") await c.sendEach(...inChops(frame));
    else await c.send(frame);
    await c.expectText(text);
  });
}

for (const [n, size] of SIZES) {
  const how = n === "8" ? " written in chops of 997 bytes" : "";
  conformance(`1.2.${n}`, `binary message of ${size} bytes${how} is echoed`, async (c) => {
    const data = patternBytes(size);
    const frame = clientFrame(Op.Binary, data);
    if (n === "8") await c.sendEach(...inChops(frame));
    else await c.send(frame);
    await c.expectBinary(data);
  });
}

conformance("1.3.1", "text frame written one byte at a time is echoed", async (c) => {
  await c.sendByteByByte(clientFrame(Op.Text, "Hello, byte by byte!"));
  await c.expectText("Hello, byte by byte!");
});

conformance(
  "1.3.2",
  "binary frame of 130 bytes (16-bit length) written one byte at a time is echoed",
  async (c) => {
    await c.sendByteByByte(clientFrame(Op.Binary, patternBytes(130)));
    await c.expectBinary(patternBytes(130));
  },
);

conformance(
  "1.3.3",
  "binary frame of 65536 bytes (64-bit length) with its header written one byte at a time",
  async (c) => {
    const frame = clientFrame(Op.Binary, patternBytes(65536));
    await c.sendByteByByte(frame.subarray(0, 14));
    await c.send(frame.subarray(14));
    await c.expectBinary(patternBytes(65536));
  },
);

conformance("1.3.4", "several frames in one write are each echoed, in order", async (c) => {
  await c.send(
    clientFrame(Op.Text, "one"),
    clientFrame(Op.Binary, patternBytes(200)),
    clientFrame(Op.Text, ""),
    clientFrame(Op.Text, "four"),
    clientFrame(Op.Binary, new Uint8Array(0)),
  );
  await c.expectText("one");
  await c.expectBinary(patternBytes(200));
  await c.expectText("");
  await c.expectText("four");
  await c.expectBinary(new Uint8Array(0));
});

conformance("1.3.5", "two frames split across writes inside the second header", async (c) => {
  const bytes = new Uint8Array([
    ...clientFrame(Op.Text, "first"),
    ...clientFrame(Op.Text, asciiText(300)),
  ]);
  const cut = clientFrame(Op.Text, "first").length + 3; // inside the 16-bit length
  await c.sendEach(bytes.subarray(0, cut), bytes.subarray(cut));
  await c.expectText("first");
  await c.expectText(asciiText(300));
});

conformance(
  "1.3.6",
  "100 small text frames in one write are echoed in order",
  async (c) => {
    const texts = Array.from({ length: 100 }, (_, i) => `message ${i}`);
    await c.send(...texts.map((t) => clientFrame(Op.Text, t)));
    for (const t of texts) await c.expectText(t);
  },
);

conformance("1.4.1", "an unmasked client frame fails the connection with 1002", async (c) => {
  await c.send(rawFrame(Op.Text, "not masked", { masked: false }));
  await c.expectFailure(1002);
});

conformance(
  "1.4.2",
  "a 64-bit length with its most significant bit set fails the connection with 1002",
  async (c) => {
    const head = rawHeader(Op.Binary, 0x10000);
    head[2] = 0x80; // top bit of the 64-bit length
    await c.send(head);
    await c.expectFailure(1002);
  },
);

conformance(
  "1.4.3",
  "a message of 1 MiB + 1 byte gets close 1009 from its header alone",
  async (c) => {
    // Only the header is sent: the limit is enforced before any payload is buffered.
    await c.send(rawHeader(Op.Binary, MiB + 1));
    await c.expectFailure(1009);
  },
);

conformance(
  "1.4.4",
  "a fragmented message growing past 1 MiB gets close 1009",
  async (c) => {
    await c.send(clientFrame(Op.Binary, patternBytes(MiB), false));
    await c.send(rawHeader(Op.Continuation, 1));
    await c.expectFailure(1009);
  },
);

conformance(
  "1.4.5",
  "a text message of exactly 1 MiB in 4 fragments is echoed (the limit is inclusive)",
  async (c) => {
    const text = asciiText(MiB);
    const q = MiB / 4;
    await c.send(
      clientFrame(Op.Text, text.slice(0, q), false),
      clientFrame(Op.Continuation, text.slice(q, 2 * q), false),
      clientFrame(Op.Continuation, text.slice(2 * q, 3 * q), false),
      clientFrame(Op.Continuation, utf8(text.slice(3 * q)), true),
    );
    await c.expectText(text);
  },
);
