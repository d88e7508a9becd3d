/**
 * The load client's frame scanner must see the same frames however the stream is split, or the
 * benchmark would report phantom gaps. Run with `deno test bench/`.
 */
import { assertEquals } from "@std/assert";
import { encodeFrame, encodeTextFrame } from "../src/protocol/frame_encoder.ts";
import { FrameScanner, type FrameSink, parseNumber } from "./frame_scanner.ts";
import { deflatedFrame } from "../src/net/outbox/deflate_frames.ts";
import { Metrics } from "../src/metrics.ts";

class Recorder implements FrameSink {
  events: string[] = [];
  onText(id: number, ts: number, length: number, seq: number) {
    this.events.push(`text ${id} ${ts} ${length} ${seq}`);
  }
  onClose(code: number, reason: string) {
    this.events.push(`close ${code} ${reason}`);
  }
  onPing(payload: Uint8Array) {
    this.events.push(`ping ${payload.length}`);
  }
  onOther(opcode: number) {
    this.events.push(`other ${opcode}`);
  }
}

function message(id: number, ts: string, pad: number, seq = 1): string {
  return `{"channel":"bench","epoch":"Ab_9","id":${id},"data":{"ts":${ts},"seq":${seq},"pad":"${
    "x".repeat(pad)
  }"}}`;
}

function stream(): Uint8Array {
  const frames = [
    encodeTextFrame(message(1, "1795618277335.837", 10)),
    encodeTextFrame(message(2, "17.5", 300, 40_017)), // 16-bit length, longer than the peek
    encodeFrame(9, new Uint8Array(5)),
    encodeTextFrame(message(123456, "3", 70_000)), // 64-bit length
    encodeTextFrame(`{"no":"id"}`),
    encodeFrame(2, new Uint8Array(3)),
    encodeFrame(8, new Uint8Array([0x03, 0xf0, 0x73, 0x6c, 0x6f, 0x77])),
  ];
  const out = new Uint8Array(frames.reduce((n, f) => n + f.length, 0));
  let at = 0;
  for (const f of frames) {
    out.set(f, at);
    at += f.length;
  }
  return out;
}

const EXPECTED = [
  `text 1 1795618277335.837 ${message(1, "1795618277335.837", 10).length} 1`,
  `text 2 17.5 ${message(2, "17.5", 300, 40_017).length} 40017`,
  "ping 5",
  `text 123456 3 ${message(123456, "3", 70_000).length} 1`,
  "text -1 NaN 11 -1",
  "other 2",
  "close 1008 slow",
];

Deno.test("FrameScanner reads ids, timestamps, send order and control frames from one chunk", () => {
  const r = new Recorder();
  const bytes = stream();
  new FrameScanner(r).push(bytes, bytes.length);
  assertEquals(r.events, EXPECTED);
});

Deno.test("FrameScanner gives the same frames for a stream split at every offset", () => {
  const bytes = stream();
  for (let cut = 1; cut < 600; cut++) {
    const r = new Recorder();
    const scanner = new FrameScanner(r);
    for (let at = 0; at < bytes.length; at += cut) {
      const chunk = bytes.slice(at, Math.min(bytes.length, at + cut));
      scanner.push(chunk, chunk.length);
    }
    assertEquals(r.events.length, EXPECTED.length, `cut ${cut}`);
    assertEquals(r.events[0].split(" ")[1], "1");
    assertEquals(r.events.slice(1), EXPECTED.slice(1), `cut ${cut}`);
  }
});

Deno.test("parseNumber reads JSON numbers without exponent", () => {
  const bytes = new TextEncoder().encode("-12.25,");
  assertEquals(parseNumber(bytes, 0, bytes.length), -12.25);
  assertEquals(parseNumber(bytes, 6, bytes.length), NaN);
});

Deno.test("FrameScanner reads compressed (RSV1) frames from their inflated start, at every split", () => {
  const params = {
    serverNoContextTakeover: true as const,
    clientNoContextTakeover: false,
    serverMaxWindowBits: 15,
    clientMaxWindowBits: 15,
  };
  // Varied padding, as the realistic bodies: the message start lies past the first 192 bytes
  // of a dynamic Huffman block's payload only for the compressed form.
  const pad = Array.from({ length: 400 }, (_, i) => `S${i % 7} ${100 + (i * 37) % 900}`).join(
    " ",
  );
  const text =
    `{"channel":"bench","epoch":"Ab_9","id":7,"data":{"ts":12.5,"seq":3,"pad":"${pad}"}}`;
  const frame = deflatedFrame(encodeTextFrame(text), params, 0, new Metrics(), false);
  assertEquals(frame[0], 0xc1, "the frame is compressed");
  const bytes = new Uint8Array([...frame, ...frame]);
  for (let at = 0; at <= bytes.length; at++) {
    const events: string[] = [];
    const scanner = new FrameScanner({
      onText: (id, ts, _length, seq, compressed) => events.push(`${id} ${ts} ${seq} ${compressed}`),
      onClose: () => events.push("close"),
      onPing: () => events.push("ping"),
      onOther: (opcode) => events.push(`other ${opcode}`),
    });
    scanner.push(bytes.slice(0, at), at);
    scanner.push(bytes.slice(at), bytes.length - at);
    assertEquals(events, ["7 12.5 3 true", "7 12.5 3 true"], `split at ${at}`);
  }
});
