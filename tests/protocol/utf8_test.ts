import { assert, assertEquals, assertNotEquals } from "@std/assert";
import { UTF8_BOUNDARY, UTF8_INVALID, validateUtf8 } from "../../src/protocol/utf8.ts";
import { everyFeeding, hex, toHex, utf8 } from "../support/bytes.ts";

/** Runs `chunks` through the validator; returns the final state and the chunk that failed. */
function run(chunks: Uint8Array[]): { state: number; failedChunk: number } {
  let state = UTF8_BOUNDARY;
  for (let i = 0; i < chunks.length; i++) {
    state = validateUtf8(state, chunks[i], 0, chunks[i].length);
    if (state === UTF8_INVALID) return { state, failedChunk: i };
  }
  return { state, failedChunk: -1 };
}

/** The chunk of `chunks` that holds byte `at` of their concatenation. */
function chunkHolding(chunks: Uint8Array[], at: number): number {
  let offset = 0;
  for (let i = 0; i < chunks.length; i++) {
    if (at < offset + chunks[i].length) return i;
    offset += chunks[i].length;
  }
  return -1;
}

// Well-formed text, fed whole, split in two at every offset and byte by byte: never rejected,
// and the state is a boundary exactly at the end.

const VALID = [
  "",
  "Hello",
  "κόσμε",
  "a€b😀",
  "\u0000\u007f\u0080\u07ff\u0800\ud7ff\ue000\ufeff\ufffd\uffff",
  "\u{10000}\u{1f600}\u{10ffff}",
];

Deno.test("validateUtf8 accepts well-formed text however it is split", () => {
  for (const text of VALID) {
    for (const { label, chunks } of everyFeeding(utf8(text))) {
      assertEquals(run(chunks).state, UTF8_BOUNDARY, `${JSON.stringify(text)} ${label}`);
    }
  }
});

Deno.test("validateUtf8 reports a state inside a character when text stops mid-sequence", () => {
  for (const prefix of ["c3", "e2", "e2 82", "f0", "f0 9f", "f0 9f 98", "ed 9f", "f4 8f bf"]) {
    const { state } = run([hex(prefix)]);
    assertNotEquals(state, UTF8_BOUNDARY, prefix);
    assertNotEquals(state, UTF8_INVALID, prefix);
  }
});

Deno.test("validateUtf8 continues a sequence split across calls at every point", () => {
  const bytes = utf8("x😀€é");
  for (let cut = 0; cut <= bytes.length; cut++) {
    const first = validateUtf8(UTF8_BOUNDARY, bytes, 0, cut);
    assertNotEquals(first, UTF8_INVALID, `cut ${cut}`);
    assertEquals(validateUtf8(first, bytes, cut, bytes.length), UTF8_BOUNDARY, `cut ${cut}`);
  }
});

// Ill-formed text: rejected on the first byte that no well-formed text can have there (the
// offset given with each vector), in the chunk that holds it, however the bytes are split.

const INVALID: [string, number][] = [
  ["80", 0], // a continuation byte with no lead
  ["61 bf", 1],
  ["c0 80", 0], // overlong lead bytes C0 and C1 are never valid
  ["c1 bf", 0],
  ["e0 80 80", 1], // E0 must be followed by A0-BF (shorter forms are overlong)
  ["e0 9f bf", 1],
  ["ed a0 80", 1], // ED A0-BF would be a surrogate
  ["ed bf bf", 1],
  ["f0 80 80 80", 1], // F0 must be followed by 90-BF
  ["f0 8f bf bf", 1],
  ["f4 90 80 80", 1], // above U+10FFFF
  ["f5 80 80 80", 0],
  ["f8 88 80 80 80", 0],
  ["fe", 0],
  ["ff", 0],
  ["e2 41", 1], // a sequence cut short by an ASCII byte
  ["f0 9f 41", 2],
  ["f0 9f 98 41", 3],
  ["c3 c3", 1],
  ["ce ba e1 bd b9 cf 83 ce bc ce b5 ed a0 80 65 64", 12], // Autobahn 6.3.1
  ["ce ba e1 bd b9 cf 83 ce bc ce b5 f4 90 80 80 65", 12], // Autobahn 6.4.1-6.4.4
];

Deno.test("validateUtf8 rejects ill-formed text on its first invalid byte however it is split", () => {
  for (const [digits, at] of INVALID) {
    const bytes = hex(digits);
    for (const { label, chunks } of everyFeeding(bytes)) {
      const { state, failedChunk } = run(chunks);
      assertEquals(state, UTF8_INVALID, `${digits} ${label}`);
      assertEquals(failedChunk, chunkHolding(chunks, at), `${digits} ${label}: failing chunk`);
    }
  }
});

Deno.test("validateUtf8 accepts every prefix of an ill-formed sequence before its invalid byte", () => {
  // Failing fast must not mean failing early: the bytes before the invalid one are still fine.
  for (const [digits, at] of INVALID) {
    const bytes = hex(digits);
    const state = validateUtf8(UTF8_BOUNDARY, bytes, 0, at);
    assert(state !== UTF8_INVALID, `${toHex(bytes.subarray(0, at))} is a valid prefix`);
  }
});

Deno.test("validateUtf8 only reads bytes[from, to)", () => {
  const bytes = hex("ff 61 62 ff");
  assertEquals(validateUtf8(UTF8_BOUNDARY, bytes, 1, 3), UTF8_BOUNDARY);
  assertEquals(validateUtf8(UTF8_BOUNDARY, bytes, 1, 4), UTF8_INVALID);
});
