/**
 * `deflatedFrame`: what a deflate connection sends for a plain frame, on bytes. The compressed
 * form of a broadcast is made once and shared by identity; small, incompressible, control and
 * fragment frames stay plain.
 */
import { assert, assertEquals, assertStrictEquals } from "@std/assert";
import { Metrics } from "../../../src/metrics.ts";
import { Inflater } from "../../../src/net/deflate_codec.ts";
import { deflatedFrame } from "../../../src/net/outbox/deflate_frames.ts";
import type { DeflateParams } from "../../../src/protocol/deflate.ts";
import { encodeFrame, encodeTextFrame } from "../../../src/protocol/frame_encoder.ts";
import { Opcode } from "../../../src/protocol/opcode.ts";

const PARAMS: DeflateParams = {
  serverNoContextTakeover: true,
  clientNoContextTakeover: false,
  serverMaxWindowBits: 15,
  clientMaxWindowBits: 15,
};

const json = (n: number) =>
  JSON.stringify(Array.from({ length: n }, (_, i) => ({ id: i, ok: true })));

/** The payload of an unmasked server frame. */
function payloadOf(frame: Uint8Array): Uint8Array {
  const len7 = frame[1] & 0x7f;
  return frame.subarray(len7 < 126 ? 2 : len7 === 126 ? 4 : 10);
}

function inflate(frame: Uint8Array, bits = 15): string {
  const inflater = new Inflater(
    { clientMaxWindowBits: bits, clientNoContextTakeover: true },
    1 << 24,
  );
  inflater.push(payloadOf(frame));
  return new TextDecoder().decode(inflater.finish());
}

Deno.test("deflatedFrame: a shared frame is compressed once, RSV1 set, and inflates back", () => {
  const metrics = new Metrics();
  const text = json(200);
  const plain = encodeTextFrame(text);
  const first = deflatedFrame(plain, PARAMS, 256, metrics, true);
  const second = deflatedFrame(plain, PARAMS, 256, metrics, true);
  assertStrictEquals(first, second, "the same bytes for every subscriber");
  assertEquals(first[0], 0xc1);
  assert(first.length < plain.length / 3, `${first.length} vs ${plain.length}`);
  assertEquals(inflate(first), text);
  assertEquals(metrics.deflate.compressions, 1);
  assertEquals(metrics.deflate.outPlainBytes, 2 * text.length, "each delivery counts");
  assertEquals(metrics.deflate.outCompressedBytes, 2 * payloadOf(first).length);
  // Another plain frame with the same text is another message: compressed again.
  deflatedFrame(encodeTextFrame(text), PARAMS, 256, metrics, true);
  assertEquals(metrics.deflate.compressions, 2);
});

Deno.test("deflatedFrame: unicast frames are compressed each time, not remembered", () => {
  const metrics = new Metrics();
  const plain = encodeTextFrame(json(50));
  const a = deflatedFrame(plain, PARAMS, 256, metrics, false);
  const b = deflatedFrame(plain, PARAMS, 256, metrics, false);
  assert(a !== b);
  assertEquals(a, b);
  assertEquals(metrics.deflate.compressions, 2);
});

Deno.test("deflatedFrame: under the threshold, incompressible, control and fragment frames stay plain", () => {
  const metrics = new Metrics();
  const small = encodeTextFrame("x".repeat(255));
  assertStrictEquals(deflatedFrame(small, PARAMS, 256, metrics, true), small);
  const random = encodeFrame(Opcode.Binary, crypto.getRandomValues(new Uint8Array(4000)));
  assertStrictEquals(deflatedFrame(random, PARAMS, 256, metrics, true), random, "not smaller");
  assertStrictEquals(deflatedFrame(random, PARAMS, 256, metrics, true), random, "remembered");
  assertEquals(metrics.deflate.compressions, 1);
  const ping = encodeFrame(Opcode.Ping, new Uint8Array(100).fill(0x61));
  assertStrictEquals(deflatedFrame(ping, PARAMS, 0, metrics, true), ping);
  const fragment = encodeFrame(Opcode.Text, new Uint8Array(1000).fill(0x61), false);
  assertStrictEquals(deflatedFrame(fragment, PARAMS, 0, metrics, true), fragment);
  assertEquals(metrics.deflate.outPlainBytes, 0, "nothing compressed was delivered");
  // At the threshold exactly: compressed; a binary frame becomes 0xC2.
  const binary = encodeFrame(Opcode.Binary, new Uint8Array(256).fill(0x61));
  assertEquals(deflatedFrame(binary, PARAMS, 256, metrics, true)[0], 0xc2);
});

Deno.test("deflatedFrame: each server_max_window_bits has its own compressed form", () => {
  const metrics = new Metrics();
  // 64 KiB with repeats 4 KiB apart: a 1 KiB window cannot use them, a 32 KiB one can.
  const block = json(180).slice(0, 4096);
  const text = block.repeat(16);
  const plain = encodeTextFrame(text);
  const wide = deflatedFrame(plain, PARAMS, 256, metrics, true);
  const narrow = deflatedFrame(plain, { ...PARAMS, serverMaxWindowBits: 10 }, 256, metrics, true);
  assert(narrow !== wide && narrow.length > wide.length, `${narrow.length} vs ${wide.length}`);
  assertEquals(inflate(narrow, 10), text, "a 10-bit inflater reads the narrow one");
  assertEquals(metrics.deflate.compressions, 2);
});
