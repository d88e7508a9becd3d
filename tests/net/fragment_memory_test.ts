/**
 * What hostile framing costs the real process: the server runs as a child (`deno task start`'s
 * flags) and its memory is read from /proc/PID/status before and after.
 *
 * - A message of 200,000 one-byte continuation frames (7 bytes each on the wire) used to keep
 *   one array per fragment: the process grew by about 110 MiB for 200 KB of payload. Assembled
 *   in one growing buffer it grows by a few MiB.
 * - A 14-byte header announcing 1 MiB used to allocate the 1 MiB at once. Those pages are
 *   zero-filled lazily, so RSS hardly shows it, but VmData (private memory committed to the
 *   process) does: about 1 MiB per connection. Now nothing is allocated until payload arrives.
 *
 * The thresholds are wide (a fifth or less of the old growth, several times the new one) so a
 * lazy garbage collector cannot make them flake.
 */
import { assert, assertEquals, assertLess } from "@std/assert";
import { readSystemFile } from "../../bench/proc.ts";
import { spawnServer, START_ARGS } from "../support/child_server.ts";
import { RawClient, TEST_MASK } from "../support/raw_client.ts";
import { withDeadline } from "../support/async.ts";

const MIB = 1024 * 1024;
const runArgs = [...START_ARGS, "--ws-port", "0", "--http-port", "0"];

/** VmRSS, VmHWM and VmData of `pid`, in bytes. */
async function memory(pid: number): Promise<{ rss: number; peak: number; data: number }> {
  const status = await readSystemFile(`/proc/${pid}/status`);
  const field = (name: string) => {
    const kib = new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status)?.[1];
    if (kib === undefined) throw new Error(`no ${name} in /proc/${pid}/status`);
    return Number(kib) * 1024;
  };
  return { rss: field("VmRSS"), peak: field("VmHWM"), data: field("VmData") };
}

const mib = (bytes: number) => `${(bytes / MIB).toFixed(1)} MiB`;

/** A binary message of `count` one-byte masked frames: 7 bytes each, 0 then continuations. */
function oneByteFragments(count: number): { wire: Uint8Array; data: Uint8Array } {
  const wire = new Uint8Array(count * 7);
  const data = new Uint8Array(count);
  for (let i = 0; i < count; i++) {
    const at = i * 7;
    data[i] = (i * 31) & 0xff;
    wire[at] = (i === 0 ? 0x02 : 0x00) | (i === count - 1 ? 0x80 : 0);
    wire[at + 1] = 0x80 | 1;
    wire.set(TEST_MASK, at + 2);
    wire[at + 6] = data[i] ^ TEST_MASK[0];
  }
  return { wire, data };
}

/** Reads the next message and asserts it is `data`, byte for byte. */
async function expectBinaryEcho(client: RawClient, data: Uint8Array, what: string) {
  const event = await withDeadline(client.next(), 20_000, what);
  assertEquals(event.type, "binary", `${what}: got ${event.type}`);
  const echoed = (event as { data: Uint8Array }).data;
  assertEquals(echoed.length, data.length, `${what}: length`);
  for (let i = 0; i < data.length; i++) {
    if (echoed[i] !== data[i]) throw new Error(`${what}: byte ${i} differs`);
  }
}

Deno.test("a message of 200,000 one-byte fragments grows the server by a few MiB, not 100+", async () => {
  await using server = await spawnServer(Deno.execPath(), [
    ...runArgs,
    "--max-fragments",
    "1000000", // so the assembly path is measured, not the fragment limit
  ]);
  const pid = server.process.pid;
  await using client = await RawClient.open(server.wsPort, "/echo");
  // Warm up the same path (code compiled, read buffer grown) so the figures are the message's.
  const warm = oneByteFragments(5_000);
  await client.write(warm.wire);
  await expectBinaryEcho(client, warm.data, "the warm-up echo");

  const { wire, data } = oneByteFragments(200_000);
  const before = await memory(pid);
  await client.write(wire);
  await expectBinaryEcho(client, data, "the echo of 200,000 fragments");
  const after = await memory(pid);
  const grew = after.rss - before.rss;
  const peakGrew = after.peak - before.peak;
  console.log(
    `200,000 one-byte fragments: RSS ${mib(before.rss)} -> ${mib(after.rss)} (+${mib(grew)}), ` +
      `peak +${mib(peakGrew)}`,
  );
  assertLess(grew, 40 * MIB, `RSS grew by ${mib(grew)}`);
  assertLess(peakGrew, 40 * MIB, `peak RSS grew by ${mib(peakGrew)}`);
});

Deno.test("200 connections that each send only a header announcing 1 MiB commit no 1 MiB each", async () => {
  const connections = 200;
  await using server = await spawnServer(Deno.execPath(), runArgs);
  const pid = server.process.pid;
  const clients: RawClient[] = [];
  try {
    for (let i = 0; i < connections; i++) {
      clients.push(await RawClient.open(server.wsPort, "/echo"));
    }
    // A ping and, in the same write, the 14-byte header of a binary frame announcing 1 MiB
    // (64-bit length form, masked): the pong says the server has read the write.
    const ping = new Uint8Array([0x89, 0x80, ...TEST_MASK]);
    const header = new Uint8Array([0x82, 0xff, 0, 0, 0, 0, 0, 0x10, 0, 0, ...TEST_MASK]);
    const write = new Uint8Array([...ping, ...header]);
    const before = await memory(pid);
    for (const client of clients) await client.write(write);
    for (const client of clients) {
      const pong = await withDeadline(client.next(), 10_000, "the pong");
      assertEquals(pong.type, "pong");
    }
    const after = await memory(pid);
    const committed = after.data - before.data;
    const grew = after.rss - before.rss;
    console.log(
      `${connections} headers announcing 1 MiB: VmData +${mib(committed)}, RSS +${mib(grew)} ` +
        `(${mib(before.rss)} -> ${mib(after.rss)})`,
    );
    assertLess(committed, 50 * MIB, `VmData grew by ${mib(committed)}`);
    assertLess(grew, 50 * MIB, `RSS grew by ${mib(grew)}`);
    // The connections are still open, waiting for their payload: nothing was refused.
    assert(server.logs.every((line) => !line.includes("protocol_error")), "no protocol error");
  } finally {
    for (const client of clients) client.close();
  }
});
