/**
 * The message reader with permessage-deflate (RFC 7692): compressed messages assembled from
 * frames split at every byte, handed whole to the (real) inflater, and RSV1 refused wherever
 * §6.1 forbids it. The inflater is `src/net/deflate_codec.ts`'s: the reader itself stays pure.
 */
import { assert, assertEquals, assertThrows } from "@std/assert";
import { DeflateError, Inflater } from "../../src/net/deflate_codec.ts";
import { ProtocolError } from "../../src/protocol/errors.ts";
import { compressMessage } from "../../src/net/deflate_codec.ts";
import {
  type MessageInflater,
  MessageReader,
  type WebSocketEvent,
} from "../../src/protocol/message.ts";
import { Opcode } from "../../src/protocol/opcode.ts";
import { concat, everyFeeding, hex, maskedFrame, utf8 } from "../support/bytes.ts";

const MAX = 1 << 20;

/** A server-role reader with deflate negotiated (client context takeover) and its events. */
function deflateReader(maxMessageBytes = MAX) {
  const events: WebSocketEvent[] = [];
  const inflater = new Inflater(
    { clientMaxWindowBits: 15, clientNoContextTakeover: false },
    maxMessageBytes,
  );
  const inflate: MessageInflater = {
    inflateMessage(compressed) {
      inflater.push(compressed);
      return inflater.finish();
    },
  };
  const reader = new MessageReader(
    { role: "server", maxMessageBytes },
    (e) => events.push(e),
    inflate,
  );
  return { reader, events };
}

/** A masked frame with RSV1 set. */
function rsv1(opcode: number, payload: Uint8Array, fin = true): Uint8Array {
  const frame = maskedFrame(opcode, payload, { fin });
  frame[0] |= 0x40;
  return frame;
}

const texts = (events: WebSocketEvent[]) => events.map((e) => e.type === "text" ? e.data : e.type);

Deno.test("MessageReader+deflate: the §7.2.3 'Hello' stream, split at every byte", () => {
  const stream = concat(
    rsv1(Opcode.Text, hex("f2 48 cd c9 c9 07 00")), // §7.2.3.1
    rsv1(Opcode.Text, hex("f2 00 11 00 00")), // §7.2.3.2: refers to the previous message
    rsv1(Opcode.Text, hex("00 05 00 fa ff 48 65 6c 6c 6f 00")), // §7.2.3.3 stored
    rsv1(Opcode.Text, hex("f3 48 cd c9 c9 07 00 00")), // §7.2.3.4 BFINAL
    rsv1(Opcode.Text, hex("f2 48 05 00 00 00 ff ff ca c9 c9 07 00")), // §7.2.3.5 two blocks
    rsv1(Opcode.Text, hex("f2 48 cd"), false), // §7.2.3.1 fragmented
    maskedFrame(Opcode.Ping, "in between"),
    maskedFrame(Opcode.Continuation, hex("c9 c9 07 00")),
    maskedFrame(Opcode.Text, "plain"), // an uncompressed message between compressed ones
    rsv1(Opcode.Text, new Uint8Array(0)), // §7.2.3.6 empty, one frame
  );
  const expected = ["Hello", "Hello", "Hello", "Hello", "Hello", "ping", "Hello", "plain", ""];
  for (const feeding of everyFeeding(stream)) {
    const { reader, events } = deflateReader();
    for (const chunk of feeding.chunks) reader.push(chunk);
    assertEquals(texts(events), expected, feeding.label);
  }
});

Deno.test("MessageReader+deflate: a 4 KiB JSON message in three compressed fragments, every split", () => {
  const text = JSON.stringify(
    Array.from({ length: 120 }, (_, i) => ({ id: i, name: `item ${i}`, ok: i % 2 === 0 })),
  );
  const payload = compressMessage(utf8(text));
  const a = 5, b = payload.length - 7;
  const stream = concat(
    rsv1(Opcode.Text, payload.subarray(0, a), false),
    maskedFrame(Opcode.Continuation, payload.subarray(a, b), { fin: false }),
    maskedFrame(Opcode.Continuation, payload.subarray(b)),
  );
  for (const feeding of everyFeeding(stream)) {
    const { reader, events } = deflateReader();
    for (const chunk of feeding.chunks) reader.push(chunk);
    assertEquals(texts(events), [text], feeding.label);
  }
});

Deno.test("MessageReader+deflate: RSV1 only on the first frame of a data message (1002)", () => {
  const cases: [string, Uint8Array][] = [
    [
      "continuation",
      concat(
        rsv1(Opcode.Text, hex("f2 48"), false),
        rsv1(Opcode.Continuation, hex("cd c9 c9 07 00")),
      ),
    ],
    ["ping", rsv1(Opcode.Ping, new Uint8Array(0))],
    ["pong", rsv1(Opcode.Pong, new Uint8Array(0))],
    ["close", rsv1(Opcode.Close, hex("03 e8"))],
  ];
  for (const [what, bytes] of cases) {
    const { reader } = deflateReader();
    const err = assertThrows(() => reader.push(bytes), ProtocolError, undefined, what);
    assertEquals([err.failure, err.closeCode], ["reserved-bits", 1002], what);
  }
  // Without an inflater, RSV1 on a data frame is refused too.
  const plain = new MessageReader({ role: "server", maxMessageBytes: MAX }, () => {});
  const err = assertThrows(
    () => plain.push(rsv1(Opcode.Text, hex("f2 48 cd c9 c9 07 00"))),
    ProtocolError,
  );
  assertEquals([err.failure, err.closeCode], ["reserved-bits", 1002]);
});

Deno.test("MessageReader+deflate: the inflated size is what --max-message-bytes bounds", () => {
  // 64 KiB of zeros compress to ~80 bytes: accepted on the wire, refused once inflated.
  const { reader } = deflateReader(64 * 1024 - 1);
  const err = assertThrows(
    () => reader.push(rsv1(Opcode.Binary, compressMessage(new Uint8Array(64 * 1024)))),
    DeflateError,
  );
  assertEquals([err.failure, err.closeCode], ["inflated-too-big", 1009]);
  // Exactly at the cap: accepted. And an uncompressed message keeps its exact cap.
  const ok = deflateReader(64 * 1024);
  ok.reader.push(rsv1(Opcode.Binary, compressMessage(new Uint8Array(64 * 1024))));
  assertEquals(ok.events.length, 1);
  const plain = deflateReader(100);
  const tooBig = assertThrows(
    () => plain.reader.push(maskedFrame(Opcode.Binary, new Uint8Array(101))),
    ProtocolError,
  );
  assertEquals(tooBig.failure, "message-too-big");
});

Deno.test("MessageReader+deflate: invalid UTF-8 in an inflated text message is 1007", () => {
  const { reader } = deflateReader();
  const bytes = rsv1(Opcode.Text, compressMessage(new Uint8Array([0x48, 0xc3, 0x28])));
  const err = assertThrows(() => reader.push(bytes), ProtocolError);
  assertEquals([err.failure, err.closeCode], ["bad-utf8", 1007]);
});

Deno.test("MessageReader+deflate: one push inflates about --max-message-bytes, the rest is pushed after", () => {
  // 20 messages of 60 KiB of zeros, ~80 bytes each on the wire: one 1.6 KB chunk that inflates
  // to 1.2 MiB. The events of a push are held together until the caller handles them, so a push
  // must stop once it inflated the cap (here 64 KiB): at most two messages per push.
  const max = 64 * 1024;
  const { reader, events } = deflateReader(max);
  const message = new Uint8Array(60 * 1024).fill(7);
  const one = rsv1(Opcode.Binary, compressMessage(message));
  const chunk = concat(...Array.from({ length: 20 }, () => one), maskedFrame(Opcode.Text, "end"));
  let rest = chunk;
  let pushes = 0;
  const seen: string[] = [];
  while (rest.length > 0) {
    const consumed = reader.push(rest);
    pushes++;
    assert(consumed > 0 && consumed <= rest.length, `push ${pushes} consumed ${consumed}`);
    const inflated = events.reduce((n, e) => n + (e.type === "binary" ? e.data.length : 0), 0);
    assert(inflated <= 2 * max, `push ${pushes} held ${inflated} inflated bytes at once`);
    seen.push(...texts(events));
    events.length = 0; // handled, let go
    rest = rest.subarray(consumed);
  }
  assertEquals(pushes, 11, "two messages per push, then the plain text");
  assertEquals(seen, [...Array(20).fill("binary"), "end"]);
  // Without an inflater nothing changes: a push consumes its whole chunk.
  const plain = new MessageReader({ role: "server", maxMessageBytes: max }, () => {});
  const frames = concat(...Array.from({ length: 20 }, () => maskedFrame(Opcode.Binary, message)));
  assertEquals(plain.push(frames), frames.length);
});
