/**
 * Microbenchmarks of the protocol core: `deno task bench:micro`.
 *
 * Every benchmark processes 1 MiB of payload per iteration (as many 64 B or 64 KiB frames as
 * that takes), so the "iter/s" column reads directly as MiB/s of payload, and "avg" is the time
 * per MiB.
 *
 * @module
 */
import { encodeFrame, encodeMaskedFrame, encodeTextFrame } from "../src/protocol/frame_encoder.ts";
import { FrameParser } from "../src/protocol/frame_parser.ts";
import { MessageReader } from "../src/protocol/message.ts";
import { Opcode } from "../src/protocol/opcode.ts";

const MIB = 1024 * 1024;
const MASK = new Uint8Array([0x37, 0xfa, 0x21, 0x3d]);
const SIZES = [64, 64 * 1024] as const;

/** ASCII payload (valid UTF-8, so MessageReader's text path accepts it). */
function payload(size: number): Uint8Array {
  return new Uint8Array(size).map((_, i) => 0x61 + (i % 26));
}

/** 1 MiB of payload as masked client frames, in one buffer (as a large read would deliver). */
function maskedStream(size: number, opcode: number): Uint8Array {
  const frame = encodeMaskedFrame(opcode, payload(size), MASK);
  const count = MIB / size;
  const out = new Uint8Array(frame.length * count);
  for (let i = 0; i < count; i++) out.set(frame, i * frame.length);
  return out;
}

function label(size: number): string {
  return size < 1024 ? `${size} B` : `${size / 1024} KiB`;
}

for (const size of SIZES) {
  const stream = maskedStream(size, Opcode.Binary);
  Deno.bench({
    name: `FrameParser: 1 MiB as ${label(size)} masked frames`,
    group: `parse ${label(size)}`,
    baseline: true,
    fn() {
      let frames = 0;
      const parser = new FrameParser({ role: "server", maxPayloadBytes: MIB }, () => frames++);
      parser.push(stream);
      if (frames !== MIB / size) throw new Error(`parsed ${frames} frames`);
    },
  });
  // The same bytes in 16 KiB reads: what a socket read loop with a modest buffer feeds it.
  Deno.bench({
    name: `FrameParser: 1 MiB as ${label(size)} masked frames, in 16 KiB chunks`,
    group: `parse ${label(size)}`,
    fn(b) {
      const chunks: Uint8Array[] = [];
      for (let at = 0; at < stream.length; at += 16384) {
        chunks.push(stream.subarray(at, at + 16384));
      }
      let frames = 0;
      const parser = new FrameParser({ role: "server", maxPayloadBytes: MIB }, () => frames++);
      b.start();
      for (const chunk of chunks) parser.push(chunk);
      b.end();
      if (frames !== MIB / size) throw new Error(`parsed ${frames} frames`);
    },
  });
}

for (const size of SIZES) {
  const data = payload(size);
  const text = new TextDecoder().decode(data);
  const count = MIB / size;
  Deno.bench({
    name: `encodeFrame: 1 MiB as ${label(size)} binary frames`,
    group: `encode ${label(size)}`,
    baseline: true,
    fn() {
      for (let i = 0; i < count; i++) encodeFrame(Opcode.Binary, data);
    },
  });
  Deno.bench({
    name: `encodeTextFrame: 1 MiB as ${label(size)} text frames (includes UTF-8 encoding)`,
    group: `encode ${label(size)}`,
    fn() {
      for (let i = 0; i < count; i++) encodeTextFrame(text);
    },
  });
}

for (const size of SIZES) {
  for (const [kind, opcode] of [["text", Opcode.Text], ["binary", Opcode.Binary]] as const) {
    const stream = maskedStream(size, opcode);
    Deno.bench({
      name: `MessageReader: 1 MiB as ${label(size)} masked ${kind} messages`,
      group: `read messages ${label(size)}`,
      baseline: kind === "text",
      fn() {
        let messages = 0;
        const reader = new MessageReader(
          { role: "server", maxMessageBytes: MIB },
          () => messages++,
        );
        reader.push(stream);
        if (messages !== MIB / size) throw new Error(`read ${messages} messages`);
      },
    });
  }
}
