import { assert, assertEquals, assertLessOrEqual, assertThrows } from "@std/assert";
import { ProtocolError, type ProtocolFailure } from "../../src/protocol/errors.ts";
import { encodeFrame } from "../../src/protocol/frame_encoder.ts";
import { MessageReader, type WebSocketEvent } from "../../src/protocol/message.ts";
import { Opcode } from "../../src/protocol/opcode.ts";
import {
  byteByByte,
  bytesEqual,
  concat,
  everyFeeding,
  hex,
  maskedFrame,
  patternBytes,
  RFC_MASK,
  utf8,
} from "../support/bytes.ts";

type Role = "server" | "client";

const MAX = 1 << 20;

/** A reader of `role` and the events it emitted so far. */
function reader(role: Role, maxMessageBytes = MAX) {
  const events: WebSocketEvent[] = [];
  const reader = new MessageReader({ role, maxMessageBytes }, (event) => events.push(event));
  return { reader, events };
}

/** Feeds `chunks` to a new reader and returns its events. */
function read(role: Role, chunks: Uint8Array[], maxMessageBytes = MAX): WebSocketEvent[] {
  const { reader: r, events } = reader(role, maxMessageBytes);
  for (const chunk of chunks) r.push(chunk);
  return events;
}

/** Asserts that `fn` throws a ProtocolError with `failure` and `closeCode`. */
function assertFails(fn: () => unknown, failure: ProtocolFailure, closeCode: number): void {
  const err = assertThrows(fn, ProtocolError);
  assertEquals(err.failure, failure);
  assertEquals(err.closeCode, closeCode);
}

/** Asserts the failure for `bytes` both in one chunk and fed one byte at a time. */
function assertStreamFails(
  role: Role,
  bytes: Uint8Array,
  failure: ProtocolFailure,
  closeCode: number,
  maxMessageBytes = MAX,
): void {
  assertFails(() => read(role, [bytes], maxMessageBytes), failure, closeCode);
  assertFails(() => read(role, byteByByte(bytes).chunks, maxMessageBytes), failure, closeCode);
}

/** Asserts that every delivery of `bytes` yields exactly `expected`. */
function assertReadsAs(role: Role, bytes: Uint8Array, expected: WebSocketEvent[]): void {
  for (const { label, chunks } of everyFeeding(bytes)) {
    assertEquals(read(role, chunks), expected, label);
  }
}

/** An unmasked (server-to-client) frame. */
function serverFrame(opcode: number, payload: Uint8Array | string, fin = true): Uint8Array {
  return encodeFrame(opcode, typeof payload === "string" ? utf8(payload) : payload, fin);
}

// RFC 6455 §5.7 examples.

Deno.test("MessageReader assembles the RFC 6455 fragmented unmasked text example", () => {
  assertReadsAs("client", hex("01 03 48 65 6c 80 02 6c 6f"), [{ type: "text", data: "Hello" }]);
});

Deno.test("MessageReader reads the RFC 6455 single-frame examples", () => {
  assertReadsAs("client", hex("81 05 48 65 6c 6c 6f"), [{ type: "text", data: "Hello" }]);
  assertReadsAs("server", hex("81 85 37 fa 21 3d 7f 9f 4d 51 58"), [
    { type: "text", data: "Hello" },
  ]);
});

Deno.test("MessageReader reads the RFC 6455 ping and pong examples as control events", () => {
  assertReadsAs("client", hex("89 05 48 65 6c 6c 6f"), [{ type: "ping", payload: utf8("Hello") }]);
  assertReadsAs("server", hex("8a 85 37 fa 21 3d 7f 9f 4d 51 58"), [
    { type: "pong", payload: utf8("Hello") },
  ]);
});

// Accepted streams.

Deno.test("MessageReader emits the events of several frames in one chunk in order", () => {
  const stream = concat(
    maskedFrame(Opcode.Text, "one"),
    maskedFrame(Opcode.Binary, hex("01 02")),
    maskedFrame(Opcode.Ping, "p"),
    maskedFrame(Opcode.Text, "two"),
  );
  assertEquals(read("server", [stream]), [
    { type: "text", data: "one" },
    { type: "binary", data: hex("01 02") },
    { type: "ping", payload: utf8("p") },
    { type: "text", data: "two" },
  ]);
});

Deno.test("MessageReader emits pings and pongs that arrive between fragments", () => {
  const stream = concat(
    maskedFrame(Opcode.Binary, hex("01"), { fin: false }),
    maskedFrame(Opcode.Ping, "p1"),
    maskedFrame(Opcode.Continuation, hex("02"), { fin: false }),
    maskedFrame(Opcode.Pong, "p2"),
    maskedFrame(Opcode.Ping, ""),
    maskedFrame(Opcode.Continuation, hex("03")),
  );
  assertReadsAs("server", stream, [
    { type: "ping", payload: utf8("p1") },
    { type: "pong", payload: utf8("p2") },
    { type: "ping", payload: new Uint8Array(0) },
    { type: "binary", data: hex("01 02 03") },
  ]);
});

Deno.test("MessageReader emits zero-length text and binary messages", () => {
  const stream = concat(
    maskedFrame(Opcode.Text, ""),
    maskedFrame(Opcode.Binary, new Uint8Array(0)),
    maskedFrame(Opcode.Text, "", { fin: false }),
    maskedFrame(Opcode.Continuation, ""),
    maskedFrame(Opcode.Binary, new Uint8Array(0), { fin: false }),
    maskedFrame(Opcode.Continuation, new Uint8Array(0), { fin: false }),
    maskedFrame(Opcode.Continuation, new Uint8Array(0)),
  );
  assertReadsAs("server", stream, [
    { type: "text", data: "" },
    { type: "binary", data: new Uint8Array(0) },
    { type: "text", data: "" },
    { type: "binary", data: new Uint8Array(0) },
  ]);
});

Deno.test("MessageReader joins empty and non-empty fragments of a message", () => {
  const stream = concat(
    serverFrame(Opcode.Text, "", false),
    serverFrame(Opcode.Continuation, "ab", false),
    serverFrame(Opcode.Continuation, "", false),
    serverFrame(Opcode.Continuation, "c"),
  );
  assertReadsAs("client", stream, [{ type: "text", data: "abc" }]);
});

Deno.test("MessageReader decodes a multi-byte character split across fragments", () => {
  // "€" is e2 82 ac and "😀" is f0 9f 98 80: every split point of both is exercised.
  const text = "a€b😀";
  const bytes = utf8(text);
  for (let at = 0; at <= bytes.length; at++) {
    for (let at2 = at; at2 <= bytes.length; at2++) {
      const stream = concat(
        maskedFrame(Opcode.Text, bytes.subarray(0, at), { fin: false }),
        maskedFrame(Opcode.Continuation, bytes.subarray(at, at2), { fin: false }),
        maskedFrame(Opcode.Continuation, bytes.subarray(at2)),
      );
      assertEquals(read("server", [stream]), [{ type: "text", data: text }], `${at}/${at2}`);
    }
  }
});

Deno.test("MessageReader keeps a leading byte order mark in a text message", () => {
  assertReadsAs("server", maskedFrame(Opcode.Text, "\uFEFFhi"), [
    { type: "text", data: "\uFEFFhi" },
  ]);
  const fragmented = concat(
    maskedFrame(Opcode.Text, hex("ef bb"), { fin: false }),
    maskedFrame(Opcode.Continuation, hex("bf 68 69")),
  );
  assertEquals(read("server", [fragmented]), [{ type: "text", data: "\uFEFFhi" }]);
});

Deno.test("MessageReader reads a text message after a fragmented one with a fresh decoder", () => {
  const stream = concat(
    maskedFrame(Opcode.Text, "é", { fin: false }),
    maskedFrame(Opcode.Continuation, "è"),
    maskedFrame(Opcode.Text, "ü"),
  );
  assertEquals(read("server", [stream]), [
    { type: "text", data: "éè" },
    { type: "text", data: "ü" },
  ]);
});

// Close frames.

Deno.test("MessageReader reads an empty close frame as code 1005", () => {
  assertReadsAs("server", maskedFrame(Opcode.Close, new Uint8Array(0)), [
    { type: "close", code: 1005, reason: "" },
  ]);
});

Deno.test("MessageReader reads a close frame with a code and a UTF-8 reason", () => {
  assertReadsAs("client", serverFrame(Opcode.Close, concat(hex("03 e9"), utf8("à bientôt"))), [
    { type: "close", code: 1001, reason: "à bientôt" },
  ]);
});

Deno.test("MessageReader ignores data after a close event, in later chunks", () => {
  const { reader: r, events } = reader("server");
  r.push(maskedFrame(Opcode.Close, hex("03 e8")));
  assert(r.closed);
  r.push(maskedFrame(Opcode.Text, "late"));
  r.push(hex("ff ff ff ff")); // not even a valid frame: ignored, not a protocol error
  assertEquals(events, [{ type: "close", code: 1000, reason: "" }]);
});

Deno.test("MessageReader ignores data after a close event in the same chunk", () => {
  const { reader: r, events } = reader("server");
  r.push(concat(
    maskedFrame(Opcode.Close, hex("03 e8")),
    maskedFrame(Opcode.Text, "late"),
    maskedFrame(Opcode.Continuation, "x"), // would be an unexpected continuation
    hex("ff ff ff ff"), // reserved bits and opcode: would fail the connection
  ));
  r.push(maskedFrame(Opcode.Ping, ""));
  assert(r.closed);
  assertEquals(events, [{ type: "close", code: 1000, reason: "" }]);
});

Deno.test("MessageReader ends an unfinished fragmented message with the close event", () => {
  const stream = concat(
    maskedFrame(Opcode.Text, "abc", { fin: false }),
    maskedFrame(Opcode.Close, hex("03 e8")),
    maskedFrame(Opcode.Continuation, "def"),
  );
  assertReadsAs("server", stream, [{ type: "close", code: 1000, reason: "" }]);
});

Deno.test("MessageReader rejects a close frame with a 1-byte payload with 1002", () => {
  assertStreamFails("server", maskedFrame(Opcode.Close, hex("03")), "bad-close-payload", 1002);
});

Deno.test("MessageReader rejects a close frame with an invalid code with 1002", () => {
  for (const code of [0, 999, 1004, 1005, 1006, 1015, 2999, 5000]) {
    const payload = new Uint8Array([code >> 8, code & 0xff]);
    assertStreamFails("server", maskedFrame(Opcode.Close, payload), "bad-close-code", 1002);
  }
});

Deno.test("MessageReader rejects a close frame with an invalid UTF-8 reason with 1007", () => {
  const payload = concat(hex("03 e8"), hex("ce ba e1 bd b9 cf 83 ce bc ce b5 ed a0 80"));
  assertStreamFails("server", maskedFrame(Opcode.Close, payload), "bad-utf8", 1007);
});

// Fragmentation rules.

Deno.test("MessageReader rejects a continuation frame without a message with 1002", () => {
  assertStreamFails(
    "server",
    maskedFrame(Opcode.Continuation, "x"),
    "unexpected-continuation",
    1002,
  );
  const afterWhole = concat(maskedFrame(Opcode.Text, "a"), maskedFrame(Opcode.Continuation, "b"));
  assertStreamFails("server", afterWhole, "unexpected-continuation", 1002);
});

Deno.test("MessageReader rejects a new message inside a fragmented one with 1002", () => {
  for (const first of [Opcode.Text, Opcode.Binary]) {
    for (const second of [Opcode.Text, Opcode.Binary]) {
      for (const fin of [true, false]) {
        const stream = concat(
          maskedFrame(first, "a", { fin: false }),
          maskedFrame(second, "b", { fin }),
        );
        assertStreamFails("server", stream, "expected-continuation", 1002);
      }
    }
  }
});

Deno.test("MessageReader rejects frames that break the frame rules with 1002", () => {
  assertStreamFails("server", hex("81 05 48 65 6c 6c 6f"), "unmasked-frame", 1002);
  assertStreamFails("client", hex("81 85 37 fa 21 3d 7f 9f 4d 51 58"), "unmasked-frame", 1002);
  assertStreamFails("client", hex("c1 00"), "reserved-bits", 1002);
  assertStreamFails("client", hex("83 00"), "unknown-opcode", 1002);
  assertStreamFails("client", hex("09 00"), "control-fragmented", 1002);
});

// UTF-8 validation.

Deno.test("MessageReader rejects invalid UTF-8 in a single-frame text message with 1007", () => {
  for (const bad of ["ff", "c0 80", "ed a0 80", "f4 90 80 80", "e2 82", "80", "f8 88 80 80 80"]) {
    const payload = concat(utf8("ok "), hex(bad));
    assertStreamFails("server", maskedFrame(Opcode.Text, payload), "bad-utf8", 1007);
  }
});

Deno.test("MessageReader accepts invalid UTF-8 in a binary message", () => {
  assertReadsAs("server", maskedFrame(Opcode.Binary, hex("ff c0 80")), [
    { type: "binary", data: hex("ff c0 80") },
  ]);
});

Deno.test("MessageReader rejects invalid UTF-8 split across fragments on the second fragment", () => {
  const { reader: r, events } = reader("server");
  // "a" then the first byte of a 3-byte sequence: still valid so far.
  r.push(maskedFrame(Opcode.Text, hex("61 e2"), { fin: false }));
  // A byte that cannot continue the sequence; the message is not finished yet.
  assertFails(
    () => r.push(maskedFrame(Opcode.Continuation, hex("41"), { fin: false })),
    "bad-utf8",
    1007,
  );
  assertEquals(events, []);
});

Deno.test("MessageReader rejects invalid UTF-8 in a non-final fragment before the message ends", () => {
  const { reader: r } = reader("server");
  r.push(maskedFrame(Opcode.Text, "fine", { fin: false }));
  assertFails(
    () => r.push(maskedFrame(Opcode.Continuation, hex("ed a0 80"), { fin: false })),
    "bad-utf8",
    1007,
  );
});

Deno.test("MessageReader rejects UTF-8 truncated at the end of the final fragment with 1007", () => {
  const stream = concat(
    maskedFrame(Opcode.Text, "abc", { fin: false }),
    maskedFrame(Opcode.Continuation, hex("f0 9f 98")),
  );
  assertStreamFails("server", stream, "bad-utf8", 1007);
  const split = concat(
    maskedFrame(Opcode.Text, hex("f0 9f"), { fin: false }),
    maskedFrame(Opcode.Continuation, hex("98")),
  );
  assertStreamFails("server", split, "bad-utf8", 1007);
});

// Message size limit.

Deno.test("MessageReader rejects a 2^62-byte frame with 1009 before any payload arrives", () => {
  const { reader: r } = reader("server", 1024);
  const head = hex("82 ff 40 00 00 00 00 00 00 00 37 fa 21 3d");
  r.push(head.subarray(0, 10));
  assertLessOrEqual(r.bufferedBytes, 14);
  assertFails(() => r.push(head.subarray(10)), "message-too-big", 1009);
  assertLessOrEqual(r.bufferedBytes, 14);
});

Deno.test("MessageReader rejects a single frame over maxMessageBytes with 1009", () => {
  assertStreamFails(
    "server",
    maskedFrame(Opcode.Binary, patternBytes(11)),
    "message-too-big",
    1009,
    10,
  );
});

Deno.test("MessageReader accepts a single-frame message of exactly maxMessageBytes", () => {
  assertEquals(read("server", [maskedFrame(Opcode.Binary, patternBytes(10))], 10), [
    { type: "binary", data: patternBytes(10) },
  ]);
});

Deno.test("MessageReader rejects a fragmented message over the limit at the header of the excess fragment", () => {
  const { reader: r, events } = reader("server", 10);
  r.push(maskedFrame(Opcode.Text, "123456", { fin: false }));
  r.push(maskedFrame(Opcode.Continuation, "78", { fin: false }));
  const excess = maskedFrame(Opcode.Continuation, "abc");
  // The header (2 bytes + masking key) alone is enough: no payload byte is buffered.
  r.push(excess.subarray(0, 5));
  assertFails(() => r.push(excess.subarray(5, 6)), "message-too-big", 1009);
  assertLessOrEqual(r.bufferedBytes, 8 + 6);
  assertEquals(events, []);
});

Deno.test("MessageReader accepts a fragmented message of exactly maxMessageBytes", () => {
  const stream = concat(
    maskedFrame(Opcode.Binary, patternBytes(4), { fin: false }),
    maskedFrame(Opcode.Continuation, patternBytes(6).subarray(4), { fin: false }),
    maskedFrame(Opcode.Continuation, patternBytes(10).subarray(6)),
    // The limit applies per message: the next one starts from zero again.
    maskedFrame(Opcode.Text, "0123456789"),
  );
  for (const { label, chunks } of everyFeeding(stream)) {
    assertEquals(read("server", chunks, 10), [
      { type: "binary", data: patternBytes(10) },
      { type: "text", data: "0123456789" },
    ], label);
  }
});

Deno.test("MessageReader accepts a control frame mid-message when the message budget is spent", () => {
  const stream = concat(
    maskedFrame(Opcode.Text, "0123456789", { fin: false }),
    maskedFrame(Opcode.Ping, patternBytes(125)),
    maskedFrame(Opcode.Continuation, ""),
  );
  assertEquals(read("server", [stream], 10), [
    { type: "ping", payload: patternBytes(125) },
    { type: "text", data: "0123456789" },
  ]);
});

// Property: the split of the stream never changes the events.

/** Whether two event lists are equal, comparing byte payloads with {@linkcode bytesEqual}. */
function sameEvents(a: WebSocketEvent[], b: WebSocketEvent[]): boolean {
  return a.length === b.length && a.every((event, i) => {
    const other = b[i];
    if (event.type !== other.type) return false;
    switch (event.type) {
      case "text":
        return event.data === (other as typeof event).data;
      case "binary":
        return bytesEqual(event.data, (other as typeof event).data);
      case "ping":
      case "pong":
        return bytesEqual(event.payload, (other as typeof event).payload);
      case "close":
        return event.code === (other as typeof event).code &&
          event.reason === (other as typeof event).reason;
    }
  });
}

const PROPERTY_STREAMS: {
  name: string;
  role: Role;
  bytes: Uint8Array;
  events: WebSocketEvent[];
}[] = [
  {
    name: "masked, mixed opcodes, fragmented text with split characters",
    role: "server",
    bytes: concat(
      maskedFrame(Opcode.Text, hex("c3"), { fin: false, mask: hex("00 00 00 00") }),
      maskedFrame(Opcode.Ping, "are you there?", { mask: hex("ff 00 ff 00") }),
      maskedFrame(Opcode.Continuation, hex("a9 e2 82"), { fin: false, mask: hex("12 34 56 78") }),
      maskedFrame(Opcode.Continuation, hex("ac 21"), { mask: hex("9a bc de f0") }),
      maskedFrame(Opcode.Binary, patternBytes(300), { mask: hex("de ad be ef") }),
      maskedFrame(Opcode.Pong, ""),
      maskedFrame(Opcode.Binary, hex("01 02"), { fin: false }),
      maskedFrame(Opcode.Continuation, new Uint8Array(0), { fin: false }),
      maskedFrame(Opcode.Continuation, hex("03")),
      maskedFrame(Opcode.Close, concat(hex("0f a0"), utf8("done ✓"))),
    ),
    events: [
      { type: "ping", payload: utf8("are you there?") },
      { type: "text", data: "é€!" },
      { type: "binary", data: patternBytes(300) },
      { type: "pong", payload: new Uint8Array(0) },
      { type: "binary", data: hex("01 02 03") },
      { type: "close", code: 4000, reason: "done ✓" },
    ],
  },
  {
    name: "unmasked, 16-bit lengths, empty messages and a bare close",
    role: "client",
    bytes: concat(
      serverFrame(Opcode.Text, "x".repeat(200)),
      serverFrame(Opcode.Binary, new Uint8Array(0)),
      serverFrame(Opcode.Text, "😀", false),
      serverFrame(Opcode.Pong, "pong"),
      serverFrame(Opcode.Continuation, "😀"),
      serverFrame(Opcode.Text, ""),
      serverFrame(Opcode.Close, new Uint8Array(0)),
    ),
    events: [
      { type: "text", data: "x".repeat(200) },
      { type: "binary", data: new Uint8Array(0) },
      { type: "pong", payload: utf8("pong") },
      { type: "text", data: "😀😀" },
      { type: "text", data: "" },
      { type: "close", code: 1005, reason: "" },
    ],
  },
  {
    name: "masked, fragmented 16-bit-length binary, trailing bytes after the close",
    role: "server",
    bytes: concat(
      maskedFrame(Opcode.Binary, patternBytes(1000), { fin: false }),
      maskedFrame(Opcode.Ping, hex("00")),
      maskedFrame(Opcode.Continuation, patternBytes(5)),
      maskedFrame(Opcode.Close, hex("03 e8")),
      maskedFrame(Opcode.Text, "ignored"),
    ),
    events: [
      { type: "ping", payload: hex("00") },
      { type: "binary", data: concat(patternBytes(1000), patternBytes(5)) },
      { type: "close", code: 1000, reason: "" },
    ],
  },
];

for (const stream of PROPERTY_STREAMS) {
  Deno.test(`MessageReader yields the same events however the stream is split (${stream.name})`, () => {
    const whole = read(stream.role, [stream.bytes]);
    assertEquals(whole, stream.events, "whole");
    for (const { label, chunks } of everyFeeding(stream.bytes)) {
      const events = read(stream.role, chunks);
      // A cheap comparison first, the verbose one only on a mismatch.
      if (!sameEvents(events, whole)) assertEquals(events, whole, label);
    }
  });
}

// Fail fast inside a frame: each stream below is a prefix, the frame it starts never ends, and
// the failure must come on the chunk holding the offending byte (its offset is given), however
// the bytes are split.

/** The header alone of a masked client frame announcing `length` bytes (masked with RFC_MASK). */
function maskedHeader(opcode: number, length: number, fin = true): Uint8Array {
  const b0 = (fin ? 0x80 : 0) | opcode;
  const head = length < 126
    ? [b0, 0x80 | length]
    : length < 0x10000
    ? [b0, 0x80 | 126, length >> 8, length & 0xff]
    : [
      b0,
      0x80 | 127,
      0,
      0,
      0,
      0,
      length >>> 24,
      (length >> 16) & 0xff,
      (length >> 8) & 0xff,
      length & 0xff,
    ];
  return concat(head, RFC_MASK);
}

/** The first `payload.length` bytes of a masked frame announcing `length` (RFC_MASK). */
function framePrefix(opcode: number, length: number, payload: Uint8Array, fin = true): Uint8Array {
  const masked = payload.map((b, i) => b ^ RFC_MASK[i & 3]);
  return concat(maskedHeader(opcode, length, fin), masked);
}

/**
 * Asserts that every delivery of `bytes` fails with `failure`/`closeCode` on the chunk that
 * holds byte `at`, having emitted exactly `events` before.
 */
function assertFailsOnByte(
  bytes: Uint8Array,
  at: number,
  failure: ProtocolFailure,
  closeCode: number,
  options: { maxMessageBytes?: number; maxFragments?: number; events?: WebSocketEvent[] } = {},
): void {
  for (const { label, chunks } of everyFeeding(bytes)) {
    const events: WebSocketEvent[] = [];
    const r = new MessageReader(
      {
        role: "server",
        maxMessageBytes: options.maxMessageBytes ?? MAX,
        maxFragments: options.maxFragments,
      },
      (e) => events.push(e),
    );
    let offset = 0;
    let threw: { err: unknown; first: number; last: number } | null = null;
    for (const chunk of chunks) {
      try {
        r.push(chunk);
      } catch (err) {
        threw = { err, first: offset, last: offset + chunk.length - 1 };
        break;
      }
      offset += chunk.length;
    }
    assert(threw !== null, `${label}: no failure (expected ${failure} on byte ${at})`);
    assert(threw.err instanceof ProtocolError, `${label}: ${threw.err}`);
    assertEquals([threw.err.failure, threw.err.closeCode], [failure, closeCode], label);
    assert(
      threw.first <= at && at <= threw.last,
      `${label}: failed on bytes ${threw.first}..${threw.last}, not on byte ${at}`,
    );
    assertEquals(events, options.events ?? [], `${label}: events before the failure`);
  }
}

const KOSME = hex("ce ba e1 bd b9 cf 83 ce bc ce b5"); // "κόσμε", 11 bytes

Deno.test("MessageReader fails invalid UTF-8 early in a large text frame on the invalid byte (1007)", () => {
  // A 512 KiB frame of which only the first bytes are ever sent: "ok " then FF.
  const bytes = framePrefix(Opcode.Text, 512 * 1024, concat(utf8("ok "), hex("ff 61 62")));
  assertFailsOnByte(bytes, 14 + 3, "bad-utf8", 1007);
});

Deno.test("MessageReader fails the Autobahn 6.4.3/6.4.4 payload mid-frame on byte 0x90 (1007)", () => {
  // κόσμε F4 90 80 80 "edited" in one frame, sent up to the 80 after the invalid 90: F4 is a
  // valid prefix, F4 90 can never be (above U+10FFFF).
  const payload = concat(KOSME, hex("f4 90 80 80"), utf8("edited"));
  const bytes = framePrefix(Opcode.Text, payload.length, payload.subarray(0, 13));
  assertFailsOnByte(bytes, 6 + 12, "bad-utf8", 1007);
});

Deno.test("MessageReader checks UTF-8 split at every offset inside a frame, failing on the bad byte", () => {
  const text = "a€b😀κόσμε";
  assertReadsAs("server", maskedFrame(Opcode.Text, text, { mask: hex("0a 0b 0c 0d") }), [
    { type: "text", data: text },
  ]);
  // "a" E2 82 then "A": every split, including inside the E2 82 sequence.
  const bytes = framePrefix(Opcode.Text, 1000, hex("61 e2 82 41 62"));
  assertFailsOnByte(bytes, 8 + 3, "bad-utf8", 1007);
});

Deno.test("MessageReader fails invalid UTF-8 mid-frame in a continuation of a fragmented text", () => {
  const bytes = concat(
    maskedFrame(Opcode.Text, hex("61 f0 9f"), { fin: false }),
    maskedFrame(Opcode.Ping, "p"),
    framePrefix(Opcode.Continuation, 70_000, hex("98 80 c0 80"), false),
  );
  const invalid = 9 + 7 + 14 + 2; // the C0 after the completed 😀
  assertFailsOnByte(bytes, invalid, "bad-utf8", 1007, {
    events: [{ type: "ping", payload: utf8("p") }],
  });
});

// Fragmentation rules and limits are checked on the header, before any payload byte.

Deno.test("MessageReader rejects a stray continuation on its header, before its payload", () => {
  const bytes = framePrefix(Opcode.Continuation, 1000, utf8("xyz"));
  assertFailsOnByte(bytes, 7, "unexpected-continuation", 1002);
});

Deno.test("MessageReader rejects a new message inside a fragmented one on its header", () => {
  const bytes = concat(
    maskedFrame(Opcode.Binary, hex("01"), { fin: false }),
    framePrefix(Opcode.Text, 1000, utf8("xyz")),
  );
  assertFailsOnByte(bytes, 7 + 7, "expected-continuation", 1002);
});

Deno.test("MessageReader rejects the fragment past maxFragments with 1009 on its header", () => {
  // Exactly at the limit is fine, and every message counts anew.
  const stream = concat(
    maskedFrame(Opcode.Text, "a", { fin: false }),
    maskedFrame(Opcode.Continuation, "b", { fin: false }),
    maskedFrame(Opcode.Continuation, "c"),
    maskedFrame(Opcode.Binary, hex("01"), { fin: false }),
    maskedFrame(Opcode.Continuation, hex("02"), { fin: false }),
    maskedFrame(Opcode.Continuation, hex("03")),
  );
  for (const { label, chunks } of everyFeeding(stream)) {
    const events: WebSocketEvent[] = [];
    const limited = new MessageReader(
      { role: "server", maxMessageBytes: MAX, maxFragments: 3 },
      (e) => events.push(e),
    );
    for (const chunk of chunks) limited.push(chunk);
    assertEquals(
      events,
      [{ type: "text", data: "abc" }, { type: "binary", data: hex("01 02 03") }],
      label,
    );
    assertEquals(limited.bufferedBytes, 0);
  }
  // One frame more fails on that frame's header.
  const bytes = concat(
    maskedFrame(Opcode.Binary, hex("01"), { fin: false }),
    maskedFrame(Opcode.Ping, ""), // control frames between fragments do not count
    maskedFrame(Opcode.Continuation, hex("02"), { fin: false }),
    maskedFrame(Opcode.Continuation, new Uint8Array(0), { fin: false }),
    framePrefix(Opcode.Continuation, 1, new Uint8Array(0)), // the 4th frame: its header only
  );
  assertFailsOnByte(bytes, bytes.length - 1, "too-many-fragments", 1009, {
    maxFragments: 3,
    events: [{ type: "ping", payload: new Uint8Array(0) }],
  });
});

Deno.test("MessageReader rejects the 1025th fragment with 1009 when maxFragments is 1024", () => {
  const { reader: r } = reader("server");
  const limited = new MessageReader(
    { role: "server", maxMessageBytes: MAX, maxFragments: 1024 },
    () => {},
  );
  const frames = [maskedFrame(Opcode.Binary, hex("00"), { fin: false })];
  for (let i = 1; i < 1024; i++) {
    frames.push(maskedFrame(Opcode.Continuation, hex("00"), { fin: false }));
  }
  limited.push(concat(...frames));
  r.push(concat(...frames));
  assertFails(() => limited.push(maskedHeader(Opcode.Continuation, 1)), "too-many-fragments", 1009);
  r.push(maskedFrame(Opcode.Continuation, hex("00"))); // no limit by default
});

// Memory: one buffer per message, grown with the bytes received, let go once handed out.

Deno.test("MessageReader buffers nothing for a payload that a header only announces", () => {
  const { reader: r } = reader("server");
  r.push(maskedHeader(Opcode.Binary, MAX));
  assertEquals(r.bufferedBytes, 0);
  r.push(new Uint8Array(10));
  assertLessOrEqual(r.bufferedBytes, 256);
});
