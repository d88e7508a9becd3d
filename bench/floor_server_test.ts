/**
 * The floor server's framing must echo what the load client sends byte for byte, whatever the
 * split of the reads, or the echo floor it measures would be a broken server's. Run with
 * `deno test bench/`.
 */
import { assertEquals } from "@std/assert";
import { encodeFrame, encodeMaskedFrame } from "../src/protocol/frame_encoder.ts";
import { Opcode } from "../src/protocol/opcode.ts";
import { echoFrames } from "./floor_server.ts";
import { concatBytes } from "../src/bytes.ts";

const MASK = new Uint8Array([0x37, 0xfa, 0x21, 0x3d]);
const bytes = (n: number) => Uint8Array.from({ length: n }, (_, i) => (i * 7) & 0xff);

const concat = (...parts: Uint8Array[]) => concatBytes(parts);

Deno.test("each masked frame comes back unmasked, of every length form, in one buffer", () => {
  const payloads = [bytes(0), bytes(64), bytes(125), bytes(126), bytes(70_000)];
  const input = concat(...payloads.map((p) => encodeMaskedFrame(Opcode.Binary, p, MASK)));
  const { out, used, closed } = echoFrames(input, true);
  assertEquals(used, input.length);
  assertEquals(closed, false);
  assertEquals(out, concat(...payloads.map((p) => encodeFrame(Opcode.Binary, p))));
});

Deno.test("a frame split at any offset is echoed once it is complete", () => {
  const frame = encodeMaskedFrame(Opcode.Text, bytes(200), MASK);
  for (let split = 0; split < frame.length; split++) {
    const first = echoFrames(frame.subarray(0, split), true);
    assertEquals([first.out, first.used], [null, 0]);
  }
  assertEquals(echoFrames(frame, true).out, encodeFrame(Opcode.Text, bytes(200)));
});

Deno.test("a ping is answered with a pong, a close echoed and the rest ignored", () => {
  const input = concat(
    encodeMaskedFrame(Opcode.Ping, bytes(3), MASK),
    encodeMaskedFrame(Opcode.Close, new Uint8Array([0x03, 0xe8]), MASK),
    encodeMaskedFrame(Opcode.Text, bytes(5), MASK),
  );
  const { out, closed } = echoFrames(input, true);
  assertEquals(closed, true);
  assertEquals(
    out,
    concat(encodeFrame(Opcode.Pong, bytes(3)), encodeFrame(Opcode.Close, new Uint8Array([3, 232]))),
  );
});

Deno.test("off /echo only the close is answered", () => {
  const input = concat(
    encodeMaskedFrame(Opcode.Text, bytes(5), MASK),
    encodeMaskedFrame(Opcode.Close, new Uint8Array([0x03, 0xe8]), MASK),
  );
  const { out, used, closed } = echoFrames(input, false);
  assertEquals([used, closed], [input.length, true]);
  assertEquals(out, encodeFrame(Opcode.Close, new Uint8Array([3, 232])));
});
