/**
 * Conformance, fragmentation (Autobahn category 5, RFC 6455 §5.4): fragmented messages are
 * echoed whole, control frames may arrive between fragments (and are answered at once), control
 * frames themselves must not be fragmented, and continuation frames must continue something.
 */
import { patternBytes, utf8 } from "../support/bytes.ts";
import { conformance } from "../support/conformance.ts";
import { clientFrame } from "../support/raw_client.ts";
import { chunks, fragmented, Op, rawFrame, rawHeader } from "../support/conformance_frames.ts";
import { assertEquals, assertStringIncludes } from "@std/assert";

const FRAG1 = "fragment1";
const FRAG2 = "fragment2";
const WHOLE = FRAG1 + FRAG2;

conformance("5.1", "ping in 2 fragments fails the connection with 1002", async (c) => {
  await c.send(rawFrame(Op.Ping, FRAG1, { fin: false }), rawFrame(Op.Continuation, FRAG2));
  await c.expectFailure(1002);
});

conformance("5.2", "pong in 2 fragments fails the connection with 1002", async (c) => {
  await c.send(rawFrame(Op.Pong, FRAG1, { fin: false }), rawFrame(Op.Continuation, FRAG2));
  await c.expectFailure(1002);
});

conformance("5.2.1", "close in 2 fragments fails the connection with 1002", async (c) => {
  await c.send(
    rawFrame(Op.Close, new Uint8Array([0x03, 0xe8]), { fin: false }),
    rawFrame(Op.Continuation, "bye"),
  );
  await c.expectFailure(1002);
});

conformance("5.3", "text message in 2 fragments is echoed whole", async (c) => {
  await c.send(fragmented(Op.Text, [FRAG1, FRAG2]));
  await c.expectText(WHOLE);
});

conformance(
  "5.4",
  "text message in 2 fragments, written one byte at a time, is echoed whole",
  async (c) => {
    await c.sendByteByByte(fragmented(Op.Text, [FRAG1, FRAG2]));
    await c.expectText(WHOLE);
  },
);

conformance(
  "5.5",
  "text message in 2 fragments, each in its own write, is echoed whole",
  async (c) => {
    await c.sendEach(clientFrame(Op.Text, FRAG1, false), clientFrame(Op.Continuation, FRAG2));
    await c.expectText(WHOLE);
  },
);

conformance(
  "5.6",
  "text in 2 fragments with a ping between, in one write: the pong comes before the echo",
  async (c) => {
    await c.send(
      clientFrame(Op.Text, FRAG1, false),
      clientFrame(Op.Ping, "pongme!"),
      clientFrame(Op.Continuation, FRAG2),
    );
    await c.expectPong("pongme!");
    await c.expectText(WHOLE);
  },
);

conformance(
  "5.7",
  "text in 2 fragments with a ping between, one byte at a time: pong, then echo",
  async (c) => {
    await c.sendByteByByte(
      clientFrame(Op.Text, FRAG1, false),
      clientFrame(Op.Ping, "pongme!"),
      clientFrame(Op.Continuation, FRAG2),
    );
    await c.expectPong("pongme!");
    await c.expectText(WHOLE);
  },
);

conformance(
  "5.8",
  "text in 2 fragments with a ping between: the pong arrives before the last fragment is sent",
  async (c) => {
    await c.send(clientFrame(Op.Text, FRAG1, false), clientFrame(Op.Ping, "pongme!"));
    await c.expectPong("pongme!");
    await c.send(clientFrame(Op.Continuation, FRAG2));
    await c.expectText(WHOLE);
  },
);

conformance(
  "5.9",
  "continuation (FIN = 1) with nothing to continue, then text: 1002, nothing echoed",
  async (c) => {
    await c.send(clientFrame(Op.Continuation, FRAG1), clientFrame(Op.Text, "Hello, world!"));
    await c.expectFailure(1002);
  },
);

conformance(
  "5.10",
  "continuation (FIN = 1) with nothing to continue, one byte at a time: 1002",
  async (c) => {
    await c.sendByteByByte(
      clientFrame(Op.Continuation, FRAG1),
      clientFrame(Op.Text, "Hello, world!"),
    );
    await c.expectFailure(1002);
  },
);

conformance(
  "5.11",
  "continuation (FIN = 1) with nothing to continue, frames in separate writes: 1002",
  async (c) => {
    await c.sendEach(clientFrame(Op.Continuation, FRAG1), clientFrame(Op.Text, "Hello, world!"));
    await c.expectFailure(1002);
  },
);

conformance(
  "5.12",
  "continuation (FIN = 0) with nothing to continue, then text: 1002, nothing echoed",
  async (c) => {
    await c.send(
      clientFrame(Op.Continuation, FRAG1, false),
      clientFrame(Op.Text, "Hello, world!"),
    );
    await c.expectFailure(1002);
  },
);

conformance(
  "5.13",
  "continuation (FIN = 0) with nothing to continue, one byte at a time: 1002",
  async (c) => {
    await c.sendByteByByte(
      clientFrame(Op.Continuation, FRAG1, false),
      clientFrame(Op.Text, "Hello, world!"),
    );
    await c.expectFailure(1002);
  },
);

conformance(
  "5.14",
  "continuation (FIN = 0) with nothing to continue, frames in separate writes: 1002",
  async (c) => {
    await c.sendEach(
      clientFrame(Op.Continuation, FRAG1, false),
      clientFrame(Op.Text, "Hello, world!"),
    );
    await c.expectFailure(1002);
  },
);

conformance(
  "5.15",
  "fragmented text, then a continuation with nothing to continue, in one write: echo, then 1002",
  async (c) => {
    await c.send(
      fragmented(Op.Text, [FRAG1, FRAG2]),
      clientFrame(Op.Continuation, "fragment3", false),
      clientFrame(Op.Text, "fragment4"),
    );
    await c.expectText(WHOLE);
    await c.expectFailure(1002);
  },
);

conformance(
  "5.16",
  "fragmented text echoed, then a stray continuation in a later write: 1002",
  async (c) => {
    await c.send(fragmented(Op.Text, [FRAG1, FRAG2]));
    await c.expectText(WHOLE);
    await c.send(clientFrame(Op.Continuation, "fragment3"));
    await c.expectFailure(1002);
  },
);

conformance(
  "5.18",
  "text in 2 fragments both with opcode text (a new message inside a fragmented one): 1002",
  async (c) => {
    await c.send(clientFrame(Op.Text, FRAG1, false), clientFrame(Op.Text, FRAG2));
    await c.expectFailure(1002);
  },
);

conformance(
  "5.18.1",
  "binary message started, then a new binary frame before it ends: 1002",
  async (c) => {
    await c.send(
      clientFrame(Op.Binary, patternBytes(4), false),
      clientFrame(Op.Binary, patternBytes(4)),
    );
    await c.expectFailure(1002);
  },
);

conformance(
  "5.18.2",
  "text message started, then a binary frame before it ends: 1002, nothing echoed",
  async (c) => {
    await c.send(clientFrame(Op.Text, FRAG1, false), clientFrame(Op.Binary, patternBytes(4)));
    await c.expectFailure(1002);
  },
);

conformance(
  "5.19",
  "text in 5 fragments with pings after the 1st and 3rd: both pongs, then the echo",
  async (c) => {
    const parts = ["fragment1", "fragment2", "fragment3", "fragment4", "fragment5"];
    await c.sendEach(
      clientFrame(Op.Text, parts[0], false),
      clientFrame(Op.Ping, "pongme 1!"),
      clientFrame(Op.Continuation, parts[1], false),
      clientFrame(Op.Continuation, parts[2], false),
      clientFrame(Op.Ping, "pongme 2!"),
      clientFrame(Op.Continuation, parts[3], false),
      clientFrame(Op.Continuation, parts[4]),
    );
    await c.expectPong("pongme 1!");
    await c.expectPong("pongme 2!");
    await c.expectText(parts.join(""));
  },
);

conformance("5.21", "binary message in 2 fragments is echoed whole", async (c) => {
  await c.send(fragmented(Op.Binary, [patternBytes(100), patternBytes(300)]));
  await c.expectBinary(new Uint8Array([...patternBytes(100), ...patternBytes(300)]));
});

conformance("5.22", "binary message in 256 fragments of 1 byte is echoed whole", async (c) => {
  await c.send(fragmented(Op.Binary, chunks(patternBytes(256), 1)));
  await c.expectBinary(patternBytes(256));
});

conformance("5.23", "text message in 1-byte fragments is echoed whole", async (c) => {
  const text = "Hello, fragmented world!";
  await c.send(fragmented(Op.Text, chunks(utf8(text), 1)));
  await c.expectText(text);
});

conformance(
  "5.24",
  "fragmented binary with 10 pings between fragments: pongs in order, then the echo",
  async (c) => {
    const frames: Uint8Array[] = [clientFrame(Op.Binary, patternBytes(10), false)];
    for (let i = 0; i < 10; i++) {
      frames.push(clientFrame(Op.Ping, `ping ${i}`));
      frames.push(clientFrame(Op.Continuation, patternBytes(10), i === 9));
    }
    await c.send(...frames);
    await c.expectPongsOf(...Array.from({ length: 10 }, (_, i) => `ping ${i}`));
    const expected = new Uint8Array(110);
    for (let i = 0; i < 11; i++) expected.set(patternBytes(10), i * 10);
    await c.expectBinary(expected);
  },
);

conformance(
  "5.25",
  "two fragmented messages back to back in one write are both echoed",
  async (c) => {
    await c.send(
      fragmented(Op.Text, ["a", "b", "c"]),
      fragmented(Op.Binary, [patternBytes(3), patternBytes(2)]),
    );
    await c.expectText("abc");
    await c.expectBinary(new Uint8Array([0, 1, 2, 0, 1]));
  },
);

conformance(
  "5.26",
  "a fragmented ping (FIN = 0) fails the connection at once, without its continuation",
  async (c) => {
    await c.send(rawFrame(Op.Ping, "half a ping", { fin: false }));
    await c.expectFailure(1002);
  },
);

conformance(
  "5.27",
  "with --max-fragments 4: a message of 4 frames is echoed, one of 5 gets 1009 at the 5th header",
  async (c, server) => {
    await c.send(fragmented(Op.Text, ["a", "b", "c", "d"]));
    await c.expectText("abcd");
    // Four fragments of a binary message, then only the 5th frame's header: its header alone
    // breaks the limit.
    const four = [patternBytes(1), patternBytes(2), patternBytes(3), patternBytes(4)].map((
      part,
      i,
    ) => clientFrame(i === 0 ? Op.Binary : Op.Continuation, part, false));
    await c.send(...four, rawHeader(Op.Continuation, 100));
    assertEquals(await c.drain(), [
      { type: "close", code: 1009, reason: "too many fragments" },
      { type: "eof" },
    ]);
    assertEquals(server.metrics.protocolErrors.get("too-many-fragments"), 1);
    assertStringIncludes(
      await server.waitForLog("connection.protocol_error"),
      "failure=too-many-fragments code=1009",
    );
  },
  { args: ["--max-fragments", "4"] },
);
