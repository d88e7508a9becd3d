/**
 * A decompression bomb against the real process (`--deflate`, `deno task start`'s flags): a
 * 60 KB compressed message that inflates to 60 MiB must close 1009 while the server's memory
 * stays bounded, since zlib is stopped as soon as the output would pass `--max-message-bytes`.
 * Inflating it whole would grow the process by 60+ MiB; the threshold (24 MiB) is several times
 * what bounded inflating costs and far under the bomb, so a lazy collector cannot make it flake.
 */
import { assertEquals, assertLess } from "@std/assert";
import { readSystemFile } from "../../bench/proc.ts";
import { compressMessage } from "../../src/net/deflate_codec.ts";
import { Opcode } from "../../src/protocol/opcode.ts";
import { spawnServer, START_ARGS } from "../support/child_server.ts";
import { clientFrame, RawClient, upgradeRequest } from "../support/raw_client.ts";
import { withDeadline } from "../support/async.ts";

const MIB = 1024 * 1024;

/** VmRSS and VmHWM (peak) of `pid`, in bytes. */
async function memory(pid: number): Promise<{ rss: number; peak: number }> {
  const status = await readSystemFile(`/proc/${pid}/status`);
  const field = (name: string) =>
    Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status)![1]) * 1024;
  return { rss: field("VmRSS"), peak: field("VmHWM") };
}

async function openDeflate(port: number): Promise<RawClient> {
  const client = await RawClient.connect(port);
  await client.write(upgradeRequest("/echo", { "Sec-WebSocket-Extensions": "permessage-deflate" }));
  const response = await client.readResponse();
  assertEquals(
    response.headers.get("sec-websocket-extensions"),
    "permessage-deflate; server_no_context_takeover",
  );
  client.useDeflate();
  return client;
}

function compressedFrame(opcode: number, payload: Uint8Array): Uint8Array {
  const frame = clientFrame(opcode, payload);
  frame[0] |= 0x40;
  return frame;
}

Deno.test("a 60 KB message inflating to 60 MiB closes 1009 and grows the server by little", async () => {
  await using server = await spawnServer(Deno.execPath(), [
    ...START_ARGS,
    "--ws-port",
    "0",
    "--http-port",
    "0",
    "--deflate",
    "--max-message-bytes",
    "1MiB",
  ]);
  const pid = server.process.pid;
  // Warm up the inflate path (code compiled, zlib loaded) with a message under the cap.
  await using warm = await openDeflate(server.wsPort);
  const half = new Uint8Array(512 * 1024).fill(0x61);
  await warm.write(compressedFrame(Opcode.Binary, compressMessage(half)));
  const echo = await withDeadline(warm.next(), 10_000, "the warm-up echo");
  assertEquals(echo.type, "binary");
  assertEquals((echo as { data: Uint8Array }).data.length, half.length);

  const bomb = compressMessage(new Uint8Array(60 * MIB));
  assertLess(bomb.length, 80_000, `the bomb is ${bomb.length} bytes on the wire`);
  await using client = await openDeflate(server.wsPort);
  const before = await memory(pid);
  await client.write(compressedFrame(Opcode.Binary, bomb));
  const close = await withDeadline(client.nextOf("close"), 10_000, "the close");
  const after = await memory(pid);
  assertEquals(close.code, 1009, close.reason);
  const grew = after.rss - before.rss;
  const peakGrew = after.peak - before.peak;
  console.log(
    `60 KB -> 60 MiB bomb: RSS ${(before.rss / MIB).toFixed(1)} -> ${
      (after.rss / MIB).toFixed(1)
    } MiB, ` +
      `peak +${(peakGrew / MIB).toFixed(1)} MiB`,
  );
  assertLess(grew, 24 * MIB, `RSS grew by ${(grew / MIB).toFixed(1)} MiB`);
  assertLess(peakGrew, 24 * MIB, `peak RSS grew by ${(peakGrew / MIB).toFixed(1)} MiB`);
  // The other connection is unaffected.
  await warm.write(clientFrame(Opcode.Text, "still here"));
  const still = await withDeadline(warm.nextOf("text"), 10_000, "the echo after the bomb");
  assertEquals(still.data, "still here");
});
