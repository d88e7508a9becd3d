import { assert, assertEquals, assertInstanceOf, assertThrows } from "@std/assert";
import {
  encodeCommand,
  RespError,
  RespParser,
  type RespParserOptions,
  RespProtocolError,
  type RespValue,
} from "../../src/redis/resp.ts";
import { byteByByte, concat, everyFeeding, patternBytes, utf8 } from "../support/bytes.ts";

/** Feeds `chunks` to a new parser and returns the values it emitted. */
function parse(chunks: Uint8Array[], options?: RespParserOptions): RespValue[] {
  const values: RespValue[] = [];
  const parser = new RespParser((value) => values.push(value), options);
  for (const chunk of chunks) parser.push(chunk);
  return values;
}

/** Asserts that `text` (or bytes), however it is split, parses to exactly `expected`. */
function assertParsesTo(input: string | Uint8Array, expected: RespValue[]): void {
  const bytes = typeof input === "string" ? utf8(input) : input;
  for (const { label, chunks } of everyFeeding(bytes)) {
    assertEquals(parse(chunks), expected, label);
  }
}

/** Asserts that parsing fails with a RespProtocolError, whole and byte by byte. */
function assertRejected(
  input: string | Uint8Array,
  messageIncludes: string,
  options?: RespParserOptions,
): void {
  const bytes = typeof input === "string" ? utf8(input) : input;
  assertThrows(() => parse([bytes], options), RespProtocolError, messageIncludes);
  assertThrows(() => parse(byteByByte(bytes).chunks, options), RespProtocolError, messageIncludes);
}

// encodeCommand

Deno.test("encodeCommand encodes a command as an array of bulk strings", () => {
  assertEquals(
    encodeCommand(["SET", "key", "value"]),
    utf8("*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n"),
  );
});

Deno.test("encodeCommand sends numbers in decimal", () => {
  assertEquals(
    encodeCommand(["EXPIRE", "k", 10, -3, 1.5]),
    utf8("*5\r\n$6\r\nEXPIRE\r\n$1\r\nk\r\n$2\r\n10\r\n$2\r\n-3\r\n$3\r\n1.5\r\n"),
  );
});

Deno.test("encodeCommand counts UTF-8 bytes, not characters, in bulk lengths", () => {
  assertEquals(encodeCommand(["ECHO", "héllo €"]), utf8("*2\r\n$4\r\nECHO\r\n$10\r\nhéllo €\r\n"));
});

Deno.test("encodeCommand sends byte arrays as they are, CRLF and zero bytes included", () => {
  const value = new Uint8Array([0, 13, 10, 255, 36, 42]);
  assertEquals(
    encodeCommand(["SET", "k", value]),
    concat(utf8("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$6\r\n"), value, utf8("\r\n")),
  );
});

Deno.test("encodeCommand encodes an empty string argument as a zero-length bulk string", () => {
  assertEquals(encodeCommand(["GET", ""]), utf8("*2\r\n$3\r\nGET\r\n$0\r\n\r\n"));
});

Deno.test("encodeCommand refuses an empty command, which Redis would never answer", () => {
  assertThrows(() => encodeCommand([]), RangeError, "at least one argument");
});

Deno.test("encodeCommand refuses numbers that are not finite", () => {
  assertThrows(() => encodeCommand(["ZADD", "z", Infinity, "m"]), RangeError, "+inf");
  assertThrows(() => encodeCommand(["ZADD", "z", NaN, "m"]), RangeError, "NaN");
});

Deno.test("encodeCommand output parses back to its arguments as bulk strings", () => {
  const args = ["HSET", "h", "f", 42, new Uint8Array([1, 2, 3])];
  assertParsesTo(encodeCommand(args), [[
    utf8("HSET"),
    utf8("h"),
    utf8("f"),
    utf8("42"),
    new Uint8Array([1, 2, 3]),
  ]]);
});

// RespParser: each value type, fed whole, split at every offset and byte by byte

Deno.test("RespParser parses a simple string", () => {
  assertParsesTo("+OK\r\n", ["OK"]);
  assertParsesTo("+\r\n", [""]);
});

Deno.test("RespParser parses an error reply into a RespError with its message and code", () => {
  for (const { label, chunks } of everyFeeding(utf8("-WRONGTYPE Operation against a key\r\n"))) {
    const [value] = parse(chunks);
    assertInstanceOf(value, RespError, label);
    assertEquals(value.message, "WRONGTYPE Operation against a key", label);
    assertEquals(value.code, "WRONGTYPE", label);
  }
});

Deno.test("RespParser parses integers, negative and zero included", () => {
  assertParsesTo(":1000\r\n:-42\r\n:0\r\n", [1000, -42, 0]);
});

Deno.test("RespParser parses bulk strings as bytes, binary content included", () => {
  assertParsesTo("$5\r\nhello\r\n", [utf8("hello")]);
  assertParsesTo("$4\r\n\r\n\r\n\r\n", [utf8("\r\n\r\n")]);
  assertParsesTo(concat(utf8("$3\r\n"), [0, 255, 10], utf8("\r\n")), [
    new Uint8Array([0, 255, 10]),
  ]);
});

Deno.test("RespParser parses an empty bulk string and a null bulk string", () => {
  assertParsesTo("$0\r\n\r\n$-1\r\n", [new Uint8Array(0), null]);
});

Deno.test("RespParser parses flat, nested, empty and null arrays", () => {
  assertParsesTo("*2\r\n$3\r\nfoo\r\n:7\r\n", [[utf8("foo"), 7]]);
  assertParsesTo("*2\r\n*1\r\n+a\r\n*2\r\n:1\r\n*0\r\n", [[["a"], [1, []]]]);
  assertParsesTo("*0\r\n*-1\r\n", [[], null]);
});

Deno.test("RespParser keeps null bulk strings and errors inside arrays (EXEC replies)", () => {
  for (const { label, chunks } of everyFeeding(utf8("*3\r\n$-1\r\n-ERR bad\r\n+OK\r\n"))) {
    const [value] = parse(chunks) as RespValue[][];
    assertEquals(value.length, 3, label);
    assertEquals(value[0], null, label);
    assertInstanceOf(value[1], RespError, label);
    assertEquals(value[2], "OK", label);
  }
});

Deno.test("RespParser hands out several values of one stream in order", () => {
  assertParsesTo(
    "+OK\r\n:1\r\n$1\r\nx\r\n*1\r\n:2\r\n$-1\r\n",
    ["OK", 1, utf8("x"), [2], null],
  );
});

Deno.test("RespParser parses a pub/sub message array", () => {
  assertParsesTo(
    "*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nhello\r\n",
    [[utf8("message"), utf8("news"), utf8("hello")]],
  );
});

Deno.test("RespParser assembles a large bulk string delivered in many chunks", () => {
  const payload = patternBytes(300_000);
  const stream = concat(utf8(`$${payload.length}\r\n`), payload, utf8("\r\n+after\r\n"));
  for (const size of [1, 1000, 65_536, 100_003]) {
    const chunks: Uint8Array[] = [];
    for (let at = 0; at < stream.length; at += size) chunks.push(stream.subarray(at, at + size));
    const values = parse(chunks);
    assertEquals(values.length, 2, `chunks of ${size}`);
    assertEquals(values[0], payload, `chunks of ${size}`);
    assertEquals(values[1], "after", `chunks of ${size}`);
  }
});

Deno.test("RespParser never hands out views of the caller's read buffer", () => {
  const values: RespValue[] = [];
  const parser = new RespParser((value) => values.push(value));
  const buffer = new Uint8Array(64);
  const first = utf8("$3\r\nabc\r\n");
  buffer.set(first);
  parser.push(buffer.subarray(0, first.length));
  buffer.fill(0x7a); // the caller reuses its buffer for the next read
  assertEquals(values, [utf8("abc")]);
});

Deno.test("RespParser reports the bytes it holds for an incomplete value", () => {
  const parser = new RespParser(() => {});
  parser.push(utf8("$10\r\nhello"));
  assertEquals(parser.bufferedBytes, 5);
  parser.push(utf8("world\r\n"));
  assertEquals(parser.bufferedBytes, 0);
  parser.push(utf8("+partial"));
  assertEquals(parser.bufferedBytes, 8);
});

// RespParser: broken streams and limits

Deno.test("RespParser rejects an unknown type byte, RESP3 types included", () => {
  assertRejected("?what\r\n", "Unknown RESP type byte 0x3f");
  assertRejected("%1\r\n+a\r\n+b\r\n", "only RESP2");
});

Deno.test("RespParser rejects a line ended by LF alone", () => {
  assertRejected("+OK\n", "CRLF");
});

Deno.test("RespParser rejects a bulk string not followed by CRLF", () => {
  assertRejected("$3\r\nabcX\r\n", "not followed by CRLF");
  assertRejected("$3\r\nabc\rX", "not followed by CRLF");
});

Deno.test("RespParser rejects malformed lengths: negative but -1, signs, letters, empty", () => {
  for (const line of ["$-2", "$+3", "$3a", "$", "*-5", "*x", "$99999999999999999999"]) {
    assertRejected(`${line}\r\n`, "length");
  }
});

Deno.test("RespParser rejects a malformed integer", () => {
  assertRejected(":12a\r\n", "integer is malformed");
  assertRejected(":\r\n", "integer is malformed");
});

Deno.test("RespParser rejects a bulk length over the limit before reading or allocating it", () => {
  // Only the header is fed: the announced size alone must fail.
  assertRejected("$536870913\r\n", "exceeds the limit of 536870912");
  assertRejected("$11\r\n", "exceeds the limit of 10", { maxBulkBytes: 10 });
  assertEquals(parse([utf8("$10\r\n0123456789\r\n")], { maxBulkBytes: 10 }), [utf8("0123456789")]);
});

Deno.test("RespParser rejects an array length over the limit", () => {
  assertRejected("*1048577\r\n", "exceeds the limit of 1048576");
  assertRejected("*4\r\n", "exceeds the limit of 3", { maxArrayLength: 3 });
});

Deno.test("RespParser rejects a simple line over the limit, even before its CRLF arrives", () => {
  const long = "+" + "a".repeat(100);
  assertRejected(long, "longer than the limit of 64 bytes", { maxLineBytes: 64 });
  assertEquals(parse([utf8(`+${"a".repeat(64)}\r\n`)], { maxLineBytes: 64 }), ["a".repeat(64)]);
});

Deno.test("RespParser rejects arrays nested deeper than the limit", () => {
  assertRejected("*1\r\n".repeat(4) + ":1\r\n", "deeper than 3", { maxDepth: 3 });
  assertEquals(parse([utf8("*1\r\n".repeat(3) + ":1\r\n")], { maxDepth: 3 }), [[[[1]]]]);
});

Deno.test("RespParser refuses input after a protocol error", () => {
  const parser = new RespParser(() => {});
  assertThrows(() => parser.push(utf8("!\r\n")), RespProtocolError);
  const err = assertThrows(() => parser.push(utf8("+OK\r\n")), Error, "after a protocol error");
  assert(!(err instanceof RespProtocolError));
});
