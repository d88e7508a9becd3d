/**
 * Conformance, UTF-8 handling (Autobahn category 6, RFC 6455 §5.6, §8.1): text messages holding
 * valid UTF-8 are echoed byte for byte; invalid UTF-8 fails the connection with 1007, nothing
 * echoed, as soon as the invalid byte arrives (fail fast, even in the middle of a frame).
 */
import { conformance } from "../support/conformance.ts";
import { concat, hex, utf8 } from "../support/bytes.ts";
import { chunks, fragmented, Op, rawHeader } from "../support/conformance_frames.ts";
import { clientFrame, TEST_MASK } from "../support/raw_client.ts";

const KOSME = hex("ce ba e1 bd b9 cf 83 ce bc ce b5"); // "κόσμε"
const HELLO_UTF8 = "Hello-µ@ßöäüàá-UTF-8!!";

// --- Valid UTF-8: echoed unchanged ---

conformance("6.1.1", "empty text message is echoed", async (c) => {
  await c.send(clientFrame(Op.Text, ""));
  await c.expectText("");
});

conformance("6.1.2", "text message of 3 empty fragments is echoed as an empty text", async (c) => {
  await c.send(fragmented(Op.Text, ["", "", ""]));
  await c.expectText("");
});

conformance(
  "6.1.3",
  "text message with empty first and last fragments is echoed whole",
  async (c) => {
    await c.send(fragmented(Op.Text, ["", "middle frame payload", ""]));
    await c.expectText("middle frame payload");
  },
);

conformance("6.2.1", `valid UTF-8 "${HELLO_UTF8}" in one frame is echoed`, async (c) => {
  await c.send(clientFrame(Op.Text, HELLO_UTF8));
  await c.expectText(HELLO_UTF8);
});

conformance(
  "6.2.2",
  "valid UTF-8 in 2 fragments split inside a code point is echoed whole",
  async (c) => {
    const bytes = utf8(HELLO_UTF8);
    const cut = bytes.indexOf(0xc2) + 1; // between the 2 bytes of "µ"
    await c.send(fragmented(Op.Text, [bytes.subarray(0, cut), bytes.subarray(cut)]));
    await c.expectText(HELLO_UTF8);
  },
);

conformance("6.2.3", "valid UTF-8 in fragments of 1 byte is echoed whole", async (c) => {
  await c.send(fragmented(Op.Text, chunks(utf8(HELLO_UTF8), 1)));
  await c.expectText(HELLO_UTF8);
});

conformance("6.2.4", '"κόσμε" in fragments of 1 byte is echoed whole', async (c) => {
  await c.send(fragmented(Op.Text, chunks(KOSME, 1)));
  await c.expectText(KOSME);
});

const VALID: [string, string, Uint8Array][] = [
  ["6.5.1", '"κόσμε" (2- and 3-byte sequences)', KOSME],
  ["6.5.2", "ASCII", utf8("Hello, world! 0123456789 ~")],
  ["6.5.3", "2-byte sequence U+00E9 é", hex("c3 a9")],
  ["6.5.4", "3-byte sequence U+20AC €", hex("e2 82 ac")],
  ["6.5.5", "4-byte sequence U+1D11E 𝄞", hex("f0 9d 84 9e")],
  ["6.5.6", "1-, 2-, 3- and 4-byte sequences mixed", utf8("aé€𝄞z")],
  ["6.7.1", "first 1-byte sequence U+0000", hex("00")],
  ["6.7.2", "first 2-byte sequence U+0080", hex("c2 80")],
  ["6.7.3", "first 3-byte sequence U+0800", hex("e0 a0 80")],
  ["6.7.4", "first 4-byte sequence U+10000", hex("f0 90 80 80")],
  ["6.9.1", "last 1-byte sequence U+007F", hex("7f")],
  ["6.9.2", "last 2-byte sequence U+07FF", hex("df bf")],
  ["6.9.3", "last 3-byte sequence U+FFFF", hex("ef bf bf")],
  ["6.9.4", "last 4-byte sequence U+10FFFF", hex("f4 8f bf bf")],
  ["6.11.1", "U+D7FF (just below the surrogates)", hex("ed 9f bf")],
  ["6.11.2", "U+E000 (just above the surrogates)", hex("ee 80 80")],
  ["6.11.3", "U+FFFD replacement character", hex("ef bf bd")],
  ["6.22.1", "noncharacter U+FFFE", hex("ef bf be")],
  ["6.22.2", "noncharacter U+10FFFE", hex("f4 8f bf be")],
  ["6.23.1", "a leading BOM U+FEFF (kept, not stripped)", hex("ef bb bf 61 62 63")],
  ["6.23.2", "a BOM alone", hex("ef bb bf")],
];

for (const [id, what, bytes] of VALID) {
  conformance(id, `valid UTF-8, ${what}, is echoed byte for byte`, async (c) => {
    await c.send(clientFrame(Op.Text, bytes));
    await c.expectText(bytes);
  });
}

// --- Invalid UTF-8 in one frame: 1007, nothing echoed ---

const INVALID: [string, string, Uint8Array][] = [
  [
    "6.3.1",
    '"κόσμε" + a surrogate ED A0 80 + "edited"',
    concat(KOSME, hex("ed a0 80"), utf8("edited")),
  ],
  ["6.8.1", "5-byte sequence F8 88 80 80 80", hex("f8 88 80 80 80")],
  ["6.8.2", "6-byte sequence FC 84 80 80 80 80", hex("fc 84 80 80 80 80")],
  ["6.10.1", "F7 BF BF BF (U+1FFFFF, above U+10FFFF)", hex("f7 bf bf bf")],
  ["6.11.4", "F4 90 80 80 (U+110000, above U+10FFFF)", hex("f4 90 80 80")],
  ["6.11.5", "F5 80 80 80 (lead byte above F4)", hex("f5 80 80 80")],
  ["6.12.1", "a stray continuation byte 80", hex("80")],
  ["6.12.2", "a stray continuation byte BF", hex("bf")],
  ["6.12.3", "a stray continuation byte between ASCII", hex("61 80 62")],
  ["6.12.4", "a 2-byte sequence followed by an extra continuation", hex("c3 a9 80")],
  ["6.13.1", "a lone 2-byte lead C3 followed by a space", hex("c3 20")],
  ["6.13.2", "a lone 3-byte lead E2 followed by a space", hex("e2 20")],
  ["6.13.3", "a lone 4-byte lead F0 followed by a space", hex("f0 20")],
  ["6.14.1", "a 2-byte sequence truncated at the end of the message", hex("61 62 63 c3")],
  ["6.14.2", "a 3-byte sequence truncated at the end of the message", hex("61 62 63 e2 82")],
  ["6.14.3", "a 4-byte sequence truncated at the end of the message", hex("61 62 63 f0 9d 84")],
  ["6.15.1", "truncated sequences one after another", hex("c3 e2 82 f0 9d 84")],
  ["6.16.1", "impossible byte FE", hex("fe")],
  ["6.16.2", "impossible byte FF", hex("ff")],
  ["6.16.3", "impossible bytes FE FE FF FF", hex("fe fe ff ff")],
  ["6.17.1", "overlong 2-byte '/' C0 AF", hex("c0 af")],
  ["6.17.2", "overlong 3-byte '/' E0 80 AF", hex("e0 80 af")],
  ["6.17.3", "overlong 4-byte '/' F0 80 80 AF", hex("f0 80 80 af")],
  ["6.18.1", "maximum overlong 2-byte C1 BF", hex("c1 bf")],
  ["6.18.2", "maximum overlong 3-byte E0 9F BF", hex("e0 9f bf")],
  ["6.18.3", "maximum overlong 4-byte F0 8F BF BF", hex("f0 8f bf bf")],
  ["6.19.1", "overlong NUL C0 80", hex("c0 80")],
  ["6.19.2", "overlong NUL E0 80 80", hex("e0 80 80")],
  ["6.19.3", "overlong NUL F0 80 80 80", hex("f0 80 80 80")],
  ["6.20.1", "high surrogate U+D800 ED A0 80", hex("ed a0 80")],
  ["6.20.2", "high surrogate U+DB7F ED AD BF", hex("ed ad bf")],
  ["6.20.3", "low surrogate U+DC00 ED B0 80", hex("ed b0 80")],
  ["6.20.4", "low surrogate U+DFFF ED BF BF", hex("ed bf bf")],
  ["6.21.1", "a surrogate pair encoded as two 3-byte sequences", hex("ed a0 80 ed b0 80")],
];

for (const [id, what, bytes] of INVALID) {
  conformance(id, `invalid UTF-8, ${what}, fails the connection with 1007`, async (c) => {
    await c.send(clientFrame(Op.Text, bytes));
    await c.expectFailure(1007);
  });
}

conformance(
  "6.3.2",
  '"κόσμε" + a surrogate + "edited" in fragments of 1 byte fails with 1007',
  async (c) => {
    const bytes = concat(KOSME, hex("ed a0 80"), utf8("edited"));
    await c.send(fragmented(Op.Text, chunks(bytes, 1)));
    await c.expectFailure(1007);
  },
);

conformance(
  "6.3.3",
  "invalid UTF-8 followed by a valid text in the same write: 1007, the valid one not echoed",
  async (c) => {
    await c.send(clientFrame(Op.Text, hex("c0 af")), clientFrame(Op.Text, "valid"));
    await c.expectFailure(1007);
  },
);

// --- Fail fast: 1007 as soon as the invalid byte arrives, inside a frame or across fragments ---

conformance(
  "6.4.1",
  "fragments κόσμε | F4 90 80 80 | edited: 1007 after the 2nd, before the 3rd is sent",
  async (c) => {
    await c.send(clientFrame(Op.Text, KOSME, false), clientFrame(Op.Ping, "alive?"));
    await c.expectPong("alive?"); // the valid first fragment does not fail the connection
    await c.send(clientFrame(Op.Continuation, hex("f4 90 80 80"), false));
    await c.expectFailure(1007); // the third fragment is never sent
  },
);

conformance(
  "6.4.2",
  "fragments κόσμε F4 | 90 | 80 80 edited: 1007 after the 2nd, before the 3rd is sent",
  async (c) => {
    // F4 alone is a valid prefix; F4 90 can never become valid (U+110000 and above).
    await c.send(
      clientFrame(Op.Text, concat(KOSME, hex("f4")), false),
      clientFrame(Op.Ping, "alive?"),
    );
    await c.expectPong("alive?");
    await c.send(clientFrame(Op.Continuation, hex("90"), false));
    await c.expectFailure(1007);
  },
);

conformance(
  "6.4.3",
  "one frame κόσμε | F4 90 80 80 | edited in chops: 1007 after the 2nd chop, before the 3rd",
  async (c) => {
    // Autobahn 6.4.3: the frame announces the whole payload; its bytes are checked as they
    // arrive, so the invalid ones fail the connection while the frame is still unfinished.
    const frame = clientFrame(Op.Text, concat(KOSME, hex("f4 90 80 80"), utf8("edited")));
    await c.sendEach(frame.subarray(0, 6 + 11), frame.subarray(6 + 11, 6 + 15));
    await c.expectFailure(1007); // "edited" is never sent
  },
);

conformance(
  "6.4.4",
  "one frame κόσμε F4 | 90 | 80 80 edited in chops: 1007 after the 2nd chop, before the 3rd",
  async (c) => {
    // Autobahn 6.4.4: F4 alone is a valid prefix; the chop with 90 makes it invalid.
    const frame = clientFrame(Op.Text, concat(KOSME, hex("f4 90 80 80"), utf8("edited")));
    await c.sendEach(frame.subarray(0, 6 + 12), frame.subarray(6 + 12, 6 + 13));
    await c.expectFailure(1007); // 80 80 edited is never sent
  },
);

conformance(
  "6.4.5",
  "a stray continuation byte at the start of the 2nd fragment gets 1007 before the 3rd",
  async (c) => {
    await c.send(clientFrame(Op.Text, "valid start ", false));
    await c.send(clientFrame(Op.Continuation, hex("80 61"), false));
    await c.expectFailure(1007);
  },
);

conformance(
  "6.4.6",
  "a surrogate split across fragments (ED | A0 80) fails with 1007",
  async (c) => {
    await c.send(fragmented(Op.Text, [hex("61 ed"), hex("a0 80 62")]));
    await c.expectFailure(1007);
  },
);

conformance(
  "6.4.7",
  "a 4-byte sequence split across fragments with a bad last byte (F0 90 | 80 28) fails with 1007",
  async (c) => {
    await c.send(fragmented(Op.Text, [hex("f0 90"), hex("80 28")]));
    await c.expectFailure(1007);
  },
);

conformance(
  "6.4.8",
  "a sequence left unfinished by the final (empty) fragment fails with 1007",
  async (c) => {
    await c.send(fragmented(Op.Text, [hex("61 62 63 e2 82"), new Uint8Array(0)]));
    await c.expectFailure(1007);
  },
);

conformance(
  "6.4.9",
  "a valid 4-byte sequence split over 4 fragments is echoed (no false 1007)",
  async (c) => {
    await c.send(fragmented(Op.Text, chunks(hex("f0 9d 84 9e"), 1)));
    await c.expectText("𝄞");
  },
);

conformance(
  "6.4.10",
  "binary messages are not UTF-8 checked: invalid UTF-8 bytes in binary are echoed",
  async (c) => {
    const bytes = hex("c0 af ed a0 80 ff fe");
    await c.send(clientFrame(Op.Binary, bytes));
    await c.expectBinary(bytes);
  },
);

conformance(
  "6.4.11",
  "a first fragment (FIN = 0) with invalid bytes gets 1007 before the final fragment is sent",
  async (c) => {
    await c.send(clientFrame(Op.Text, hex("61 c0 af 62"), false));
    await c.expectFailure(1007); // no more fragments are sent
  },
);

conformance(
  "6.4.12",
  "a text frame announcing 512 KiB with an invalid byte early gets 1007 before the rest is sent",
  async (c) => {
    // Only the header and 8 bytes of the payload, FF among them; the other 524,280 bytes are
    // never sent, so a server that checks text only when the frame is complete stays silent.
    const payload = concat(utf8("valid "), hex("ff 61"));
    const masked = payload.map((b, i) => b ^ TEST_MASK[i & 3]);
    await c.send(concat(rawHeader(Op.Text, 512 * 1024), masked));
    await c.expectFailure(1007);
  },
);
