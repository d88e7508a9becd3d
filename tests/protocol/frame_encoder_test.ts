import { assertEquals } from "@std/assert";
import {
  encodeCloseFrame,
  encodeFrame,
  encodeMaskedFrame,
  encodeTextFrame,
  headerLength,
} from "../../src/protocol/frame_encoder.ts";
import { type Frame, FrameParser } from "../../src/protocol/frame_parser.ts";
import { Opcode } from "../../src/protocol/opcode.ts";
import { concat, hex, patternBytes, RFC_MASK, toHex, utf8 } from "../support/bytes.ts";

/** Asserts byte equality, showing hex on failure. */
function assertBytes(actual: Uint8Array, expected: Uint8Array): void {
  assertEquals(toHex(actual), toHex(expected));
}

/** Parses one complete frame with a parser of `role`. */
function parseOne(role: "server" | "client", bytes: Uint8Array): Frame {
  const frames: Frame[] = [];
  new FrameParser({ role, maxPayloadBytes: 1 << 24 }, (f) => frames.push(f)).push(bytes);
  assertEquals(frames.length, 1);
  return frames[0];
}

// RFC 6455 §5.7 examples.

Deno.test("encodeFrame produces the RFC 6455 single-frame unmasked text example", () => {
  assertBytes(encodeFrame(Opcode.Text, utf8("Hello")), hex("81 05 48 65 6c 6c 6f"));
  assertBytes(encodeTextFrame("Hello"), hex("81 05 48 65 6c 6c 6f"));
});

Deno.test("encodeFrame produces the RFC 6455 fragmented unmasked text example", () => {
  assertBytes(encodeFrame(Opcode.Text, utf8("Hel"), false), hex("01 03 48 65 6c"));
  assertBytes(encodeFrame(Opcode.Continuation, utf8("lo")), hex("80 02 6c 6f"));
});

Deno.test("encodeFrame produces the RFC 6455 unmasked ping example", () => {
  assertBytes(encodeFrame(Opcode.Ping, utf8("Hello")), hex("89 05 48 65 6c 6c 6f"));
});

Deno.test("encodeFrame produces the RFC 6455 256-byte binary example", () => {
  const payload = patternBytes(256);
  assertBytes(encodeFrame(Opcode.Binary, payload), concat(hex("82 7e 01 00"), payload));
});

Deno.test("encodeFrame produces the RFC 6455 64 KiB binary example", () => {
  const payload = patternBytes(65536);
  assertBytes(
    encodeFrame(Opcode.Binary, payload),
    concat(hex("82 7f 00 00 00 00 00 01 00 00"), payload),
  );
});

Deno.test("encodeMaskedFrame produces the RFC 6455 masked text and pong examples", () => {
  assertBytes(
    encodeMaskedFrame(Opcode.Text, utf8("Hello"), RFC_MASK),
    hex("81 85 37 fa 21 3d 7f 9f 4d 51 58"),
  );
  assertBytes(
    encodeMaskedFrame(Opcode.Pong, utf8("Hello"), RFC_MASK),
    hex("8a 85 37 fa 21 3d 7f 9f 4d 51 58"),
  );
});

// Length forms.

Deno.test("headerLength picks the shortest length form", () => {
  assertEquals(headerLength(0), 2);
  assertEquals(headerLength(125), 2);
  assertEquals(headerLength(126), 4);
  assertEquals(headerLength(0xffff), 4);
  assertEquals(headerLength(0x10000), 10);
});

Deno.test("encodeFrame uses the shortest length form at each boundary", () => {
  assertBytes(encodeFrame(Opcode.Binary, new Uint8Array(0)), hex("82 00"));
  assertBytes(encodeFrame(Opcode.Binary, patternBytes(125)).subarray(0, 2), hex("82 7d"));
  assertBytes(encodeFrame(Opcode.Binary, patternBytes(126)).subarray(0, 4), hex("82 7e 00 7e"));
  assertBytes(encodeFrame(Opcode.Binary, patternBytes(0xffff)).subarray(0, 4), hex("82 7e ff ff"));
});

Deno.test("encodeMaskedFrame sets the mask bit in every length form", () => {
  const mask = hex("01 02 03 04");
  assertBytes(encodeMaskedFrame(Opcode.Binary, new Uint8Array(0), mask), hex("82 80 01 02 03 04"));
  assertBytes(
    encodeMaskedFrame(Opcode.Binary, patternBytes(126), mask).subarray(0, 8),
    hex("82 fe 00 7e 01 02 03 04"),
  );
  assertBytes(
    encodeMaskedFrame(Opcode.Binary, patternBytes(0x10000), mask).subarray(0, 14),
    hex("82 ff 00 00 00 00 00 01 00 00 01 02 03 04"),
  );
});

Deno.test("encodeMaskedFrame with FIN clear leaves the FIN bit clear", () => {
  assertBytes(
    encodeMaskedFrame(Opcode.Text, utf8("Hel"), RFC_MASK, false).subarray(0, 2),
    hex("01 83"),
  );
});

// Round trips through the parser.

Deno.test("encodeFrame output parses back to the same frame for every length form", () => {
  for (const length of [0, 1, 125, 126, 127, 0xffff, 0x10000, 0x10001]) {
    const payload = patternBytes(length);
    const frame = parseOne("client", encodeFrame(Opcode.Binary, payload, length % 2 === 0));
    assertEquals(frame.opcode, Opcode.Binary);
    assertEquals(frame.fin, length % 2 === 0);
    assertEquals(frame.payload.length, length);
    assertEquals(toHex(frame.payload.subarray(-16)), toHex(payload.subarray(-16)));
  }
});

Deno.test("encodeMaskedFrame output parses back to the same payload for every length form", () => {
  for (const length of [0, 1, 3, 4, 5, 125, 126, 0x10000]) {
    const payload = patternBytes(length);
    const frame = parseOne("server", encodeMaskedFrame(Opcode.Binary, payload, hex("a1 b2 c3 d4")));
    assertEquals(frame.payload, payload);
  }
});

Deno.test("encodeMaskedFrame does not modify the payload it masks", () => {
  const payload = utf8("Hello");
  encodeMaskedFrame(Opcode.Text, payload, RFC_MASK);
  assertEquals(payload, utf8("Hello"));
});

// Close frames.

Deno.test("encodeCloseFrame encodes the code big-endian followed by the reason", () => {
  assertBytes(encodeCloseFrame(1000, "bye"), hex("88 05 03 e8 62 79 65"));
  assertBytes(encodeCloseFrame(1001), hex("88 02 03 e9"));
});

Deno.test("encodeCloseFrame sends an empty payload for 1005", () => {
  assertBytes(encodeCloseFrame(1005, "ignored"), hex("88 00"));
});

Deno.test("encodeCloseFrame never exceeds the 125-byte control frame limit", () => {
  const frame = encodeCloseFrame(1000, "x".repeat(500));
  assertBytes(frame.subarray(0, 4), hex("88 7d 03 e8"));
  assertEquals(frame.length, 2 + 125);
});
