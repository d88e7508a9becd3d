import {
  assert,
  assertEquals,
  assertInstanceOf,
  assertLessOrEqual,
  assertThrows,
} from "@std/assert";
import { ProtocolError, type ProtocolFailure } from "../../src/protocol/errors.ts";
import {
  type Frame,
  FrameParser,
  type FrameSink,
  unmaskInto,
} from "../../src/protocol/frame_parser.ts";
import { Opcode } from "../../src/protocol/opcode.ts";
import {
  byteByByte,
  bytesEqual,
  concat,
  everyFeeding,
  hex,
  maskedFrame,
  patternBytes,
  toHex,
  utf8,
} from "../support/bytes.ts";

type Role = "server" | "client";

const MAX = 1 << 20;

/** Feeds `chunks` to a new parser and returns the frames it emitted. */
function parse(role: Role, chunks: Uint8Array[], maxPayloadBytes = MAX): Frame[] {
  const frames: Frame[] = [];
  const parser = new FrameParser({ role, maxPayloadBytes }, (frame) => frames.push(frame));
  for (const chunk of chunks) parser.push(chunk);
  return frames;
}

/** Asserts that `bytes`, however it is split, parses to exactly `expected`. */
function assertParsesTo(role: Role, bytes: Uint8Array, expected: Frame[]): void {
  for (const { label, chunks } of everyFeeding(bytes)) {
    const frames = parse(role, chunks);
    assertEquals(frames.length, expected.length, `${label}: frame count`);
    frames.forEach((frame, i) => {
      assertEquals(frame.fin, expected[i].fin, `${label}: fin of frame ${i}`);
      assertEquals(frame.opcode, expected[i].opcode, `${label}: opcode of frame ${i}`);
      assert(
        bytesEqual(frame.payload, expected[i].payload),
        `${label}: payload of frame ${i} is ${toHex(frame.payload.subarray(0, 32))}...`,
      );
    });
  }
}

/** Asserts that parsing `chunks` throws a ProtocolError with `failure` and `closeCode`. */
function assertFails(
  role: Role,
  chunks: Uint8Array[],
  failure: ProtocolFailure,
  closeCode: number,
  maxPayloadBytes = MAX,
): ProtocolError {
  const err = assertThrows(() => parse(role, chunks, maxPayloadBytes), ProtocolError);
  assertInstanceOf(err, ProtocolError);
  assertEquals(err.failure, failure);
  assertEquals(err.closeCode, closeCode);
  return err;
}

/** Asserts the failure both for `bytes` in one chunk and for `bytes` fed one byte at a time. */
function assertRejects(role: Role, bytes: Uint8Array, failure: ProtocolFailure, code: number) {
  assertFails(role, [bytes], failure, code);
  assertFails(role, byteByByte(bytes).chunks, failure, code);
}

// RFC 6455 §5.7 examples, each fed whole, split in two at every offset and byte by byte.

Deno.test("FrameParser parses the RFC 6455 single-frame unmasked text example", () => {
  assertParsesTo("client", hex("81 05 48 65 6c 6c 6f"), [
    { fin: true, opcode: Opcode.Text, payload: utf8("Hello") },
  ]);
});

Deno.test("FrameParser parses the RFC 6455 single-frame masked text example", () => {
  assertParsesTo("server", hex("81 85 37 fa 21 3d 7f 9f 4d 51 58"), [
    { fin: true, opcode: Opcode.Text, payload: utf8("Hello") },
  ]);
});

Deno.test("FrameParser parses the RFC 6455 fragmented unmasked text example as two frames", () => {
  assertParsesTo("client", hex("01 03 48 65 6c 80 02 6c 6f"), [
    { fin: false, opcode: Opcode.Text, payload: utf8("Hel") },
    { fin: true, opcode: Opcode.Continuation, payload: utf8("lo") },
  ]);
});

Deno.test("FrameParser parses the RFC 6455 unmasked ping example", () => {
  assertParsesTo("client", hex("89 05 48 65 6c 6c 6f"), [
    { fin: true, opcode: Opcode.Ping, payload: utf8("Hello") },
  ]);
});

Deno.test("FrameParser parses the RFC 6455 masked pong example", () => {
  assertParsesTo("server", hex("8a 85 37 fa 21 3d 7f 9f 4d 51 58"), [
    { fin: true, opcode: Opcode.Pong, payload: utf8("Hello") },
  ]);
});

Deno.test("FrameParser parses the RFC 6455 256-byte binary example (16-bit length)", () => {
  const payload = patternBytes(256);
  assertParsesTo("client", concat(hex("82 7e 01 00"), payload), [
    { fin: true, opcode: Opcode.Binary, payload },
  ]);
});

Deno.test("FrameParser parses the RFC 6455 64 KiB binary example (64-bit length)", () => {
  const payload = patternBytes(65536);
  assertParsesTo("client", concat(hex("82 7f 00 00 00 00 00 01 00 00"), payload), [
    { fin: true, opcode: Opcode.Binary, payload },
  ]);
});

// Other accepted input.

Deno.test("FrameParser parses several frames delivered in one chunk, in order", () => {
  const stream = concat(
    maskedFrame(Opcode.Text, "a", { fin: false }),
    maskedFrame(Opcode.Ping, ""),
    maskedFrame(Opcode.Continuation, "b"),
    maskedFrame(Opcode.Binary, patternBytes(300), { mask: hex("01 02 03 04") }),
  );
  assertParsesTo("server", stream, [
    { fin: false, opcode: Opcode.Text, payload: utf8("a") },
    { fin: true, opcode: Opcode.Ping, payload: new Uint8Array(0) },
    { fin: true, opcode: Opcode.Continuation, payload: utf8("b") },
    { fin: true, opcode: Opcode.Binary, payload: patternBytes(300) },
  ]);
});

Deno.test("FrameParser emits zero-length frames as soon as their header is complete", () => {
  const frames: Frame[] = [];
  const parser = new FrameParser({ role: "server", maxPayloadBytes: MAX }, (f) => frames.push(f));
  parser.push(maskedFrame(Opcode.Binary, new Uint8Array(0)));
  assertEquals(frames, [{ fin: true, opcode: Opcode.Binary, payload: new Uint8Array(0) }]);
  assertEquals(parser.bufferedBytes, 0);
});

Deno.test("FrameParser accepts the 16-bit and 64-bit length forms at their boundaries", () => {
  for (const length of [125, 126, 0xffff, 0x10000]) {
    const payload = patternBytes(length);
    const head = length < 126
      ? [0x82, length]
      : length < 0x10000
      ? [0x82, 126, length >> 8, length & 0xff]
      : [0x82, 127, 0, 0, 0, 0, 0, length >> 16, (length >> 8) & 0xff, length & 0xff];
    const frames = parse("client", [concat(head, payload)]);
    assertEquals(frames.length, 1, `length ${length}`);
    assert(bytesEqual(frames[0].payload, payload), `length ${length}`);
  }
});

Deno.test("FrameParser hands out payloads that do not alias the input chunk", () => {
  const chunk = hex("82 03 01 02 03");
  const [frame] = parse("client", [chunk]);
  chunk.fill(0);
  assertEquals(frame.payload, new Uint8Array([1, 2, 3]));
});

Deno.test("FrameParser reports the bytes of a partial frame in bufferedBytes", () => {
  const parser = new FrameParser({ role: "client", maxPayloadBytes: MAX }, () => {});
  parser.push(hex("82"));
  assertEquals(parser.bufferedBytes, 1);
  parser.push(hex("0a 01 02"));
  assertEquals(parser.bufferedBytes, 10);
  parser.push(new Uint8Array(8));
  assertEquals(parser.bufferedBytes, 0);
});

Deno.test("FrameParser accepts a data frame of exactly maxPayloadBytes", () => {
  const frames = parse("client", [concat(hex("82 0a"), patternBytes(10))], 10);
  assertEquals(frames[0].payload, patternBytes(10));
});

Deno.test("FrameParser exempts control frames from maxPayloadBytes", () => {
  const frames = parse("client", [concat(hex("89 7d"), patternBytes(125))], 0);
  assertEquals(frames[0].payload.length, 125);
});

// Rejections: each asserts the failure identifier and the close code.

Deno.test("FrameParser rejects an unmasked client frame with 1002", () => {
  assertRejects("server", hex("81 05 48 65 6c 6c 6f"), "unmasked-frame", 1002);
});

Deno.test("FrameParser rejects a masked server frame with 1002", () => {
  // The failure identifier is shared with the unmasked case ("mask bit does not match role").
  assertRejects("client", hex("81 85 37 fa 21 3d 7f 9f 4d 51 58"), "unmasked-frame", 1002);
});

Deno.test("FrameParser rejects each reserved bit (RSV1, RSV2, RSV3) with 1002", () => {
  for (const rsv of [0x40, 0x20, 0x10]) {
    assertRejects("client", concat([0x81 | rsv, 0x00]), "reserved-bits", 1002);
    assertRejects("server", concat([0x81 | rsv, 0x80], [1, 2, 3, 4]), "reserved-bits", 1002);
  }
});

Deno.test("FrameParser rejects reserved opcodes 0x3-0x7 and 0xB-0xF with 1002", () => {
  for (const opcode of [0x3, 0x4, 0x5, 0x6, 0x7, 0xb, 0xc, 0xd, 0xe, 0xf]) {
    assertRejects("client", concat([0x80 | opcode, 0x00]), "unknown-opcode", 1002);
    assertRejects("client", concat([opcode, 0x00]), "unknown-opcode", 1002);
  }
});

Deno.test("FrameParser rejects a control frame with a 126-byte payload with 1002", () => {
  for (const opcode of [Opcode.Ping, Opcode.Pong, Opcode.Close]) {
    const bytes = concat([0x80 | opcode, 126, 0, 126], patternBytes(126));
    assertRejects("client", bytes, "control-too-long", 1002);
  }
  assertRejects("server", maskedFrame(Opcode.Ping, patternBytes(126)), "control-too-long", 1002);
});

Deno.test("FrameParser rejects a control frame with a 64-bit length with 1002", () => {
  assertRejects("client", hex("89 7f 00 00 00 00 00 00 00 05"), "control-too-long", 1002);
});

Deno.test("FrameParser rejects a fragmented control frame (FIN clear) with 1002", () => {
  for (const opcode of [Opcode.Ping, Opcode.Pong, Opcode.Close]) {
    assertRejects("client", concat([opcode, 0x00]), "control-fragmented", 1002);
  }
  const ping = maskedFrame(Opcode.Ping, "Hello", { fin: false });
  assertRejects("server", ping, "control-fragmented", 1002);
});

Deno.test("FrameParser rejects a 64-bit length with the most significant bit set with 1002", () => {
  assertRejects("client", hex("82 7f 80 00 00 00 00 00 00 00"), "length-top-bit", 1002);
  assertRejects("client", hex("82 7f ff ff ff ff ff ff ff ff"), "length-top-bit", 1002);
});

Deno.test("FrameParser rejects a data frame over maxPayloadBytes with 1009", () => {
  assertFails("client", [concat(hex("82 0b"), patternBytes(11))], "message-too-big", 1009, 10);
});

Deno.test("FrameParser rejects a 2^62-byte frame with 1009 right after its header", () => {
  const parser = new FrameParser({ role: "server", maxPayloadBytes: MAX }, () => {
    throw new Error("no frame expected");
  });
  // 64-bit length 0x4000_0000_0000_0000, then the masking key; no payload byte is ever sent.
  const head = hex("82 ff 40 00 00 00 00 00 00 00 01 02 03 04");
  parser.push(head.subarray(0, 13));
  assertLessOrEqual(parser.bufferedBytes, 14);
  const err = assertThrows(() => parser.push(head.subarray(13)), ProtocolError);
  assertEquals(err.failure, "message-too-big");
  assertEquals(err.closeCode, 1009);
  assertLessOrEqual(parser.bufferedBytes, 14);
});

Deno.test("FrameParser rejects a frame on the first offending bytes, before the rest arrives", () => {
  // Only the first two bytes of a reserved-opcode frame that announces a payload.
  assertFails("client", [hex("83 05")], "unknown-opcode", 1002);
  assertFails("server", [hex("81 05")], "unmasked-frame", 1002);
});

Deno.test("FrameParser refuses further input after a protocol error", () => {
  const parser = new FrameParser({ role: "client", maxPayloadBytes: MAX }, () => {});
  assertThrows(() => parser.push(hex("c1 00")), ProtocolError);
  const err = assertThrows(() => parser.push(hex("81 00")), Error);
  assert(!(err instanceof ProtocolError), "a second push is a caller bug, not a peer's");
});

// Memory: nothing is allocated for payload bytes that have not arrived.

Deno.test("FrameParser allocates nothing for a payload that a header only announces", () => {
  const parser = new FrameParser({ role: "server", maxPayloadBytes: MAX }, () => {
    throw new Error("no frame expected");
  });
  // 64-bit length 1 MiB, then the masking key: 14 bytes that could ask for a 1 MiB buffer.
  parser.push(hex("82 ff 00 00 00 00 00 10 00 00 37 fa 21 3d"));
  assertEquals(parser.bufferedBytes, 0);
  parser.push(hex("01 02 03"));
  assertLessOrEqual(parser.bufferedBytes, 256, "a few bytes in, a small buffer");
});

Deno.test("FrameParser grows a payload buffer with the bytes received, ending exactly full", () => {
  const payload = patternBytes(100_000);
  const bytes = maskedFrame(Opcode.Binary, payload, { mask: hex("01 02 03 04") });
  const frames: Frame[] = [];
  const parser = new FrameParser({ role: "server", maxPayloadBytes: MAX }, (f) => frames.push(f));
  let received = 0;
  for (let at = 0; at < bytes.length; at += 1000) {
    const chunk = bytes.subarray(at, at + 1000);
    parser.push(chunk);
    received += chunk.length;
    if (frames.length === 0) {
      // At most twice what arrived (doubling), never the 100,000 bytes announced.
      assertLessOrEqual(parser.bufferedBytes, Math.max(256, 2 * received), `after ${received}`);
    }
  }
  assertEquals(frames.length, 1);
  assert(bytesEqual(frames[0].payload, payload));
  assertEquals(frames[0].payload.buffer.byteLength, payload.length, "no slack kept");
  assertEquals(parser.bufferedBytes, 0);
});

// The sink form: payload bytes are handed on as they arrive, not when the frame ends.

/** A FrameSink that records its calls, payload bytes unmasked. */
function recordingSink() {
  const calls: string[] = [];
  const sink: FrameSink = {
    frameStart(fin, opcode, length) {
      calls.push(`start fin=${fin} opcode=${opcode} length=${length}`);
    },
    framePayload(chunk, from, count, key, offset) {
      const out = new Uint8Array(count);
      unmaskInto(out, 0, chunk, from, count, key, offset);
      calls.push(`payload @${offset} ${toHex(out)}`);
    },
    frameEnd() {
      calls.push("end");
    },
  };
  return { calls, sink };
}

Deno.test("FrameParser hands a sink each frame's payload piece by piece as it arrives", () => {
  const { calls, sink } = recordingSink();
  const parser = new FrameParser({ role: "server", maxPayloadBytes: MAX }, sink);
  // RFC 6455 §5.7 masked "Hello": the header, then "He", then "llo".
  const bytes = hex("81 85 37 fa 21 3d 7f 9f 4d 51 58");
  parser.push(bytes.subarray(0, 6));
  assertEquals(calls, ["start fin=true opcode=1 length=5"]);
  parser.push(bytes.subarray(6, 8));
  assertEquals(calls.at(-1), "payload @0 48 65");
  parser.push(bytes.subarray(8));
  assertEquals(calls.slice(2), ["payload @2 6c 6c 6f", "end"]);
});

Deno.test("FrameParser unmasks sink pieces at every split and key phase", () => {
  const payload = patternBytes(23);
  const bytes = maskedFrame(Opcode.Binary, payload, { mask: hex("a1 b2 c3 d4") });
  for (const { label, chunks } of everyFeeding(bytes)) {
    const parts: Uint8Array[] = [];
    const sink: FrameSink = {
      frameStart() {},
      framePayload(chunk, from, count, key, offset) {
        const out = new Uint8Array(count);
        unmaskInto(out, 0, chunk, from, count, key, offset);
        parts.push(out);
      },
      frameEnd() {},
    };
    const parser = new FrameParser({ role: "server", maxPayloadBytes: MAX }, sink);
    for (const chunk of chunks) parser.push(chunk);
    assert(bytesEqual(concat(...parts), payload), `${label}: ${toHex(concat(...parts))}`);
  }
});

Deno.test("FrameParser ignores the rest of the stream once a sink stops it", () => {
  const { calls, sink } = recordingSink();
  const parser: FrameParser = new FrameParser({ role: "server", maxPayloadBytes: MAX }, {
    ...sink,
    frameEnd() {
      sink.frameEnd();
      parser.stop();
    },
  });
  // A close frame, then bytes that would fail the connection (reserved bits and opcode).
  parser.push(concat(maskedFrame(Opcode.Close, hex("03 e8")), hex("ff ff ff ff")));
  parser.push(hex("ff ff"));
  assertEquals(calls, ["start fin=true opcode=8 length=2", "payload @0 03 e8", "end"]);
});
