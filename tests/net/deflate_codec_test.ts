import { assert, assertEquals, assertLess, assertThrows } from "@std/assert";
import zlib from "node:zlib";
import {
  compressMessage,
  DeflateError,
  Inflater,
  windowBitsFor,
} from "../../src/net/deflate_codec.ts";
import { stripDeflateTail } from "../../src/protocol/deflate.ts";
import { bytesEqual, concat, hex, toHex, utf8 } from "../support/bytes.ts";

const decoder = new TextDecoder();
const MIB = 1024 * 1024;
const TAKEOVER = { clientMaxWindowBits: 15, clientNoContextTakeover: false };
const NO_TAKEOVER = { clientMaxWindowBits: 15, clientNoContextTakeover: true };

/** Inflates one message given as the payloads of its frames. */
function inflate(inflater: Inflater, ...frames: Uint8Array[]): string {
  for (const frame of frames) inflater.push(frame);
  return decoder.decode(inflater.finish());
}

/**
 * A client compressor WITH context takeover (what a browser does by default): one zlib stream
 * sync-flushed after each message. node:zlib only offers that asynchronously, fine for tests.
 */
function takeoverCompressor(windowBits = 15): (message: Uint8Array) => Promise<Uint8Array> {
  const stream = zlib.createDeflateRaw({ windowBits });
  const out: Uint8Array[] = [];
  stream.on("data", (chunk: Uint8Array) => out.push(chunk));
  return (message) =>
    new Promise((resolve) => {
      stream.write(message);
      stream.flush(zlib.constants.Z_SYNC_FLUSH, () =>
        resolve(stripDeflateTail(concat(...out.splice(0)))));
    });
}

/** A JSON-ish payload that compresses like real traffic. */
function json(bytes: number): Uint8Array {
  const items: string[] = [];
  for (let i = 0; items.join(",").length < bytes; i++) {
    items.push(JSON.stringify({ id: i, channel: `news-${i % 7}`, price: (i * 37) % 1000 / 10 }));
  }
  return utf8(`[${items.join(",")}]`.slice(0, bytes));
}

Deno.test("RFC 7692 §7.2.3.1: 'Hello' in one compressed block, whole and fragmented", () => {
  assertEquals(toHex(compressMessage(utf8("Hello"))), "f2 48 cd c9 c9 07 00");
  const inflater = new Inflater(TAKEOVER, 1024);
  assertEquals(inflate(inflater, hex("f2 48 cd c9 c9 07 00")), "Hello");
  // The fragmented example: 0x41 0x03 f2 48 cd, then 0x80 0x04 c9 c9 07 00.
  assertEquals(inflate(new Inflater(TAKEOVER, 1024), hex("f2 48 cd"), hex("c9 c9 07 00")), "Hello");
});

Deno.test("RFC 7692 §7.2.3.2: sharing the LZ77 window needs context takeover", () => {
  const inflater = new Inflater(TAKEOVER, 1024);
  assertEquals(inflate(inflater, hex("f2 48 cd c9 c9 07 00")), "Hello");
  assertEquals(inflate(inflater, hex("f2 00 11 00 00")), "Hello");
  assertEquals(inflater.retainedBytes, 10);
  // With client_no_context_takeover nothing is kept: the back-reference has nothing to hit.
  const reset = new Inflater(NO_TAKEOVER, 1024);
  assertEquals(inflate(reset, hex("f2 48 cd c9 c9 07 00")), "Hello");
  assertEquals(reset.retainedBytes, 0);
  const error = assertThrows(() => inflate(reset, hex("f2 00 11 00 00")), DeflateError);
  assertEquals([error.failure, error.closeCode], ["bad-deflate-data", 1007]);
});

Deno.test("RFC 7692 §7.2.3.2: our compressor has no context takeover (same bytes twice)", () => {
  assertEquals(toHex(compressMessage(utf8("Hello"))), toHex(compressMessage(utf8("Hello"))));
});

Deno.test("RFC 7692 §7.2.3.3–5: stored block, BFINAL block, two blocks", () => {
  const inflater = new Inflater(TAKEOVER, 1024);
  assertEquals(inflate(inflater, hex("00 05 00 fa ff 48 65 6c 6c 6f 00")), "Hello");
  assertEquals(inflate(inflater, hex("f3 48 cd c9 c9 07 00 00")), "Hello");
  assertEquals(inflate(inflater, hex("f2 48 05 00 00 00 ff ff ca c9 c9 07 00")), "Hello");
  // The window carries over a BFINAL message too: "Hello" again as a back-reference.
  assertEquals(inflate(inflater, hex("f2 00 11 00 00")), "Hello");
});

Deno.test("RFC 7692 §7.2.3.6: an empty message and an empty final fragment", () => {
  assertEquals(toHex(compressMessage(new Uint8Array(0))), "00");
  const inflater = new Inflater(TAKEOVER, 1024);
  assertEquals(inflate(inflater, hex("00")), "");
  assertEquals(inflate(inflater, hex("f2 48 cd c9 c9 07 00"), new Uint8Array(0)), "Hello");
});

Deno.test("Inflater: a compressed message split at every byte, with and without takeover", async () => {
  const compress = takeoverCompressor();
  const messages = [json(2000), json(3000), utf8("Hello"), json(2000)];
  const payloads: Uint8Array[] = [];
  for (const message of messages) payloads.push(await compress(message));
  assert(payloads[3].length < 100, "the repeat must be a back-reference into the window");
  for (const [params, only] of [[TAKEOVER, payloads.length], [NO_TAKEOVER, 1]] as const) {
    for (let m = 0; m < only; m++) {
      const payload = payloads[m];
      for (let split = 0; split <= payload.length; split++) {
        const inflater = new Inflater(params, 64 * 1024);
        for (let k = 0; k < m; k++) inflater.push(payloads[k]), inflater.finish();
        inflater.push(payload.subarray(0, split));
        inflater.push(payload.subarray(split));
        assert(bytesEqual(inflater.finish(), messages[m]), `message ${m} split at ${split}`);
      }
    }
  }
  // One byte per frame.
  const inflater = new Inflater(TAKEOVER, 64 * 1024);
  for (let m = 0; m < payloads.length; m++) {
    for (const byte of payloads[m]) inflater.push(new Uint8Array([byte]));
    assert(bytesEqual(inflater.finish(), messages[m]), `message ${m} byte by byte`);
  }
});

Deno.test("Inflater: copies pushed payloads (the caller reuses its read buffer)", () => {
  const inflater = new Inflater(NO_TAKEOVER, 1024);
  const buffer = hex("f2 48 cd c9 c9 07 00");
  inflater.push(buffer);
  buffer.fill(0xff);
  assertEquals(decoder.decode(inflater.finish()), "Hello");
});

Deno.test("Inflater: a back-reference beyond client_max_window_bits is invalid data", async () => {
  const compress = takeoverCompressor(15);
  const first = json(4000);
  // The second message repeats the start of the first, 4000 bytes back: over a 512-byte window.
  const second = first.subarray(0, 200);
  const payloads = [await compress(first), await compress(second)];
  const wide = new Inflater({ clientMaxWindowBits: 15, clientNoContextTakeover: false }, MIB);
  wide.push(payloads[0]), wide.finish();
  assert(bytesEqual(inflate2(wide, payloads[1]), second));
  const narrow = new Inflater({ clientMaxWindowBits: 9, clientNoContextTakeover: false }, MIB);
  narrow.push(payloads[0]), narrow.finish();
  assertEquals(narrow.retainedBytes, 512);
  const error = assertThrows(() => inflate2(narrow, payloads[1]), DeflateError);
  assertEquals(error.closeCode, 1007);
});

function inflate2(inflater: Inflater, payload: Uint8Array): Uint8Array {
  inflater.push(payload);
  return inflater.finish();
}

Deno.test("Inflater: invalid DEFLATE data closes 1007", () => {
  const error = assertThrows(
    () => inflate(new Inflater(TAKEOVER, 1024), hex("ff ff ff")),
    DeflateError,
  );
  assertEquals([error.failure, error.closeCode], ["bad-deflate-data", 1007]);
});

Deno.test("Inflater: a payload cut inside a block is invalid, not a truncated message", () => {
  const payload = compressMessage(json(2000));
  for (let length = 1; length < payload.length; length++) {
    const error = assertThrows(
      () => inflate2(new Inflater(NO_TAKEOVER, MIB), payload.subarray(0, length)),
      DeflateError,
      undefined,
      `cut at ${length}`,
    );
    assertEquals(error.closeCode, 1007);
  }
});

Deno.test("Inflater: an empty compressed payload is the empty message, window untouched", () => {
  const inflater = new Inflater(TAKEOVER, 1024);
  assertEquals(inflate(inflater, hex("f2 48 cd c9 c9 07 00")), "Hello");
  assertEquals(inflater.finish().length, 0);
  assertEquals(inflate(inflater, hex("f2 00 11 00 00")), "Hello");
});

Deno.test("Inflater: the inflated size is capped exactly at max-message-bytes", () => {
  const message = json(5000);
  const payload = compressMessage(message);
  assertEquals(inflate2(new Inflater(TAKEOVER, 5000), payload).length, 5000);
  const error = assertThrows(() => inflate2(new Inflater(TAKEOVER, 4999), payload), DeflateError);
  assertEquals([error.failure, error.closeCode], ["inflated-too-big", 1009]);
  // The cap counts the message only, not the window kept from the previous one.
  const inflater = new Inflater(TAKEOVER, 5000);
  inflate2(inflater, payload);
  assertEquals(inflate2(inflater, payload).length, 5000);
});

Deno.test("Inflater: compressed bytes are capped too (empty blocks inflate to nothing)", () => {
  const inflater = new Inflater(NO_TAKEOVER, 1024);
  const emptyBlocks = new Uint8Array(5 * 1000);
  for (let i = 0; i < 1000; i++) emptyBlocks.set([0, 0, 0, 0xff, 0xff], 5 * i);
  const error = assertThrows(() => inflater.push(emptyBlocks), DeflateError);
  assertEquals([error.failure, error.closeCode], ["compressed-too-big", 1009]);
  assertEquals(inflater.pendingBytes, 0);
});

Deno.test("Inflater: a 60 KB message inflating to 60 MiB stops at the cap, memory bounded", () => {
  // Sync-flushed raw DEFLATE streams concatenate: 60 × (1 MiB of zeros) without a 60 MiB input.
  const chunk = zlib.deflateRawSync(new Uint8Array(MIB), {
    finishFlush: zlib.constants.Z_SYNC_FLUSH,
    level: 9,
  });
  const bomb = stripDeflateTail(concat(...Array.from({ length: 60 }, () => chunk)));
  assertLess(bomb.length, 64 * 1024);
  const inflater = new Inflater(TAKEOVER, MIB);
  // The payload arrives as several frames (a fragmented compressed message).
  const frames = [bomb.subarray(0, 1000), bomb.subarray(1000, 30_000), bomb.subarray(30_000)];
  const before = Deno.memoryUsage().rss;
  const started = performance.now();
  const error = assertThrows(() => inflate(inflater, ...frames), DeflateError);
  const grew = Deno.memoryUsage().rss - before;
  assertEquals([error.failure, error.closeCode], ["inflated-too-big", 1009]);
  assertLess(grew, 20 * MIB, `RSS grew ${(grew / MIB).toFixed(1)} MiB`);
  // Inflating all 60 MiB takes tens of ms; stopping at 1 MiB takes a few.
  assertLess(performance.now() - started, 1000);
  assertEquals(inflater.retainedBytes, 0, "a failed message drops the window");
  // The bomb is real: with a 64 MiB cap it inflates to 60 MiB.
  assertEquals(inflate2(new Inflater(NO_TAKEOVER, 64 * MIB), bomb).length, 60 * MIB);
});

Deno.test("Inflater: idle state is empty; the window is kept only under context takeover", () => {
  const payload = compressMessage(json(60_000));
  const idle = new Inflater(TAKEOVER, MIB);
  assertEquals([idle.retainedBytes, idle.pendingBytes], [0, 0]);
  inflate2(idle, payload);
  assertEquals(idle.retainedBytes, 32 * 1024);
  idle.release();
  assertEquals(idle.retainedBytes, 0);
  const reset = new Inflater(NO_TAKEOVER, MIB);
  inflate2(reset, payload);
  assertEquals(reset.retainedBytes, 0);
});

Deno.test("compressMessage: round trip through a browser-like inflater, window bits honoured", () => {
  for (const size of [64, 1024, 4096, 65536]) {
    const message = json(size);
    for (const windowBits of [9, 12, 15]) {
      const payload = compressMessage(message, { windowBits });
      // A client with exactly that window (fresh per message: we have no context takeover).
      const inflated = zlib.inflateRawSync(concat(payload, [0, 0, 0xff, 0xff]), {
        windowBits,
        finishFlush: zlib.constants.Z_SYNC_FLUSH,
      });
      assert(bytesEqual(new Uint8Array(inflated), message), `${size} B, window ${windowBits}`);
    }
    if (size >= 1024) assertLess(compressMessage(message).length, message.length / 2);
  }
});

Deno.test("compressMessage: a window sized to the message gives the 32 KiB window's bytes", () => {
  assertEquals(
    [
      windowBitsFor(0, 15),
      windowBitsFor(64, 15),
      windowBitsFor(1000, 15),
      windowBitsFor(60_000, 15),
    ],
    [9, 9, 11, 15],
  );
  assertEquals(windowBitsFor(60_000, 10), 10, "never over server_max_window_bits");
  for (const size of [64, 250, 251, 1024, 4096, 20_000, 65536]) {
    const message = json(size);
    const full = zlib.deflateRawSync(message, { finishFlush: zlib.constants.Z_SYNC_FLUSH });
    assertEquals(toHex(compressMessage(message)), toHex(stripDeflateTail(full)), `${size} B`);
  }
});
