import { assertEquals, assertLessOrEqual } from "@std/assert";
import {
  CloseCode,
  encodeClosePayload,
  isValidCloseCode,
  parseClosePayload,
} from "../../src/protocol/close.ts";
import { concat, hex, utf8 } from "../support/bytes.ts";

const decoder = new TextDecoder("utf-8", { fatal: true });

// isValidCloseCode, one class of codes at a time (RFC 6455 §7.4).

Deno.test("isValidCloseCode rejects codes below 1000", () => {
  for (const code of [0, 1, 999]) assertEquals(isValidCloseCode(code), false, `${code}`);
});

Deno.test("isValidCloseCode accepts 1000-1003", () => {
  for (const code of [1000, 1001, 1002, 1003]) {
    assertEquals(isValidCloseCode(code), true, `${code}`);
  }
});

Deno.test("isValidCloseCode rejects the reserved 1004, 1005 and 1006", () => {
  for (const code of [1004, 1005, 1006]) assertEquals(isValidCloseCode(code), false, `${code}`);
});

Deno.test("isValidCloseCode accepts 1007-1011", () => {
  for (const code of [1007, 1008, 1009, 1010, 1011]) {
    assertEquals(isValidCloseCode(code), true, `${code}`);
  }
});

Deno.test("isValidCloseCode rejects 1012-2999, including the reserved 1015", () => {
  for (const code of [1012, 1013, 1014, 1015, 1016, 2000, 2999]) {
    assertEquals(isValidCloseCode(code), false, `${code}`);
  }
});

Deno.test("isValidCloseCode accepts the registered and private ranges 3000-4999", () => {
  for (const code of [3000, 3999, 4000, 4999]) {
    assertEquals(isValidCloseCode(code), true, `${code}`);
  }
});

Deno.test("isValidCloseCode rejects 5000 and above", () => {
  for (const code of [5000, 65535]) assertEquals(isValidCloseCode(code), false, `${code}`);
});

Deno.test("CloseCode constants are valid on the wire except the reserved 1005 and 1006", () => {
  for (const [name, code] of Object.entries(CloseCode)) {
    const reserved = code === 1005 || code === 1006;
    assertEquals(isValidCloseCode(code), !reserved, name);
  }
});

// parseClosePayload.

Deno.test("parseClosePayload reads an empty payload as 1005 with no reason", () => {
  assertEquals(parseClosePayload(new Uint8Array(0)), { code: 1005, reason: "" });
});

Deno.test("parseClosePayload rejects a 1-byte payload as bad-close-payload", () => {
  assertEquals(parseClosePayload(hex("03")), { error: "bad-close-payload" });
});

Deno.test("parseClosePayload rejects invalid close codes as bad-close-code", () => {
  for (const code of [0, 999, 1004, 1005, 1006, 1015, 2999, 5000, 65535]) {
    const payload = new Uint8Array([code >> 8, code & 0xff]);
    assertEquals(parseClosePayload(payload), { error: "bad-close-code" }, `${code}`);
  }
});

Deno.test("parseClosePayload rejects a reason that is not valid UTF-8 as bad-utf8", () => {
  for (const reason of ["ff", "c3", "e2 82", "ed a0 80", "c0 af", "f4 90 80 80"]) {
    assertEquals(
      parseClosePayload(concat(hex("03 e8"), hex(reason))),
      { error: "bad-utf8" },
      reason,
    );
  }
});

Deno.test("parseClosePayload reads a code with an empty reason", () => {
  assertEquals(parseClosePayload(hex("03 e8")), { code: 1000, reason: "" });
  assertEquals(parseClosePayload(hex("0f a0")), { code: 4000, reason: "" });
});

Deno.test("parseClosePayload reads a code with a multi-byte UTF-8 reason", () => {
  assertEquals(
    parseClosePayload(concat(hex("03 e9"), utf8("au revoir, ça va 👋"))),
    { code: 1001, reason: "au revoir, ça va 👋" },
  );
});

Deno.test("parseClosePayload keeps a leading byte order mark in the reason", () => {
  assertEquals(
    parseClosePayload(concat(hex("03 e8"), utf8("\uFEFFbye"))),
    { code: 1000, reason: "\uFEFFbye" },
  );
});

// encodeClosePayload.

Deno.test("encodeClosePayload writes the code big-endian followed by the UTF-8 reason", () => {
  assertEquals(encodeClosePayload(1000, "bye"), hex("03 e8 62 79 65"));
  assertEquals(encodeClosePayload(4999), hex("13 87"));
  assertEquals(encodeClosePayload(1001, "é"), hex("03 e9 c3 a9"));
});

Deno.test("encodeClosePayload yields an empty payload for 1005", () => {
  assertEquals(encodeClosePayload(1005), new Uint8Array(0));
  assertEquals(encodeClosePayload(1005, "reason"), new Uint8Array(0));
});

Deno.test("encodeClosePayload keeps a reason that fits exactly 125 bytes", () => {
  const payload = encodeClosePayload(1000, "x".repeat(123));
  assertEquals(payload.length, 125);
  assertEquals(decoder.decode(payload.subarray(2)), "x".repeat(123));
});

Deno.test("encodeClosePayload cuts a long multi-byte reason without splitting a character", () => {
  for (const char of ["é", "€", "👋"]) {
    const bytesPerChar = utf8(char).length;
    const payload = encodeClosePayload(1000, char.repeat(200));
    assertLessOrEqual(payload.length, 125, char);
    const reason = decoder.decode(payload.subarray(2)); // throws on a split character
    assertEquals(reason, char.repeat(Math.floor(123 / bytesPerChar)), char);
    assertEquals(parseClosePayload(payload), { code: 1000, reason }, char);
  }
});

Deno.test("encodeClosePayload cuts a mixed-width reason at the last whole character", () => {
  // 122 ASCII bytes leave one byte free: not enough for "€" (3 bytes), which is dropped.
  const payload = encodeClosePayload(1000, "a".repeat(122) + "€€");
  assertEquals(payload.length, 124);
  assertEquals(decoder.decode(payload.subarray(2)), "a".repeat(122));
});

Deno.test("encodeClosePayload round-trips through parseClosePayload", () => {
  for (const code of [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4999]) {
    assertEquals(parseClosePayload(encodeClosePayload(code, "why")), { code, reason: "why" });
  }
});
