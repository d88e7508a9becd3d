/**
 * The load client's bookkeeping: send-order reorders, targets learned at the end of a timed
 * phase, and echo messages the frame scanner can read. Run with `deno test bench/`.
 */
import { assertEquals } from "@std/assert";
import { encodeTextFrame } from "../src/protocol/frame_encoder.ts";
import { BenchClient, Tally } from "./bench_client.ts";
import { echoText } from "./echo_client.ts";
import { FrameScanner, type FrameSink } from "./frame_scanner.ts";

/** onText never touches the connection, so these clients need none. */
const noConn = null as unknown as Deno.TcpConn;

function client(tally: Tally): BenchClient {
  const c = new BenchClient(noConn, new Uint8Array(0), tally);
  c.measureFrom(0);
  return c;
}

Deno.test("a delivery whose publish was sent before an earlier-delivered one counts as reordered", () => {
  const tally = new Tally(1, 4, 4);
  const c = client(tally);
  // Ids in order (the server's), seqs in the order the POSTs were written: 3 overtook 2.
  c.onText(1, 0, 0, 1);
  c.onText(2, 0, 0, 3);
  c.onText(3, 0, 0, 2);
  c.onText(4, 0, 0, 4);
  assertEquals([tally.sendReorders, tally.gaps, tally.duplicates], [1, 0, 0]);
  assertEquals(tally.completed, 1);
});

Deno.test("a timed phase completes clients when its target is set, or later", async () => {
  const tally = new Tally(2, Infinity, 8);
  const a = client(tally);
  const b = client(tally);
  for (let id = 1; id <= 3; id++) a.onText(id, 0, 0, id);
  b.onText(1, 0, 0, 1);
  tally.setTarget(3, [a, b]);
  assertEquals(tally.completed, 1);
  b.onText(2, 0, 0, 2);
  b.onText(3, 0, 0, 3);
  assertEquals(tally.completed, 2);
  await tally.allDone;
});

Deno.test("echo messages are the requested size and carry an id and timestamp", () => {
  const text = echoText(123, 1795618277335.837, 64);
  assertEquals(new TextEncoder().encode(text).length, 64);
  const seen: number[] = [];
  const sink: FrameSink = {
    onText: (id, ts) => seen.push(id, ts),
    onClose: () => {},
    onPing: () => {},
    onOther: () => {},
  };
  const frame = encodeTextFrame(text);
  new FrameScanner(sink).push(frame, frame.length);
  assertEquals(seen, [123, 1795618277335.837]);
});
