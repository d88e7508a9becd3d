/**
 * A ping flood against the real process (issue 11, item 2): a client sends 200,000 pings and
 * reads nothing. RFC 6455 §5.5.3 lets the server answer only the most recent ping, so at most
 * one pong waits per client, and the server's memory must not grow with the flood while a
 * healthy subscriber keeps getting publications. The server runs as a child process so its RSS
 * is its own (/proc/PID/status).
 */
import { assert, assertEquals, assertGreater, assertLess } from "@std/assert";
import { Opcode } from "../../src/protocol/opcode.ts";
import { readMemory } from "../../bench/proc.ts";
import { FREE_PORTS_NO_DEMO, spawnServer, START_ARGS } from "../support/child_server.ts";
import { concat } from "../support/bytes.ts";
import { clientFrame, RawClient } from "../support/raw_client.ts";
import { TestSocket } from "../support/ws_client.ts";
import { withDeadline } from "../support/async.ts";

const PINGS = 200_000;
/** The largest control payload (§5.5): each pong the server holds costs it the most. */
const PAYLOAD_BYTES = 125;
/** Pings per client write. */
const PINGS_PER_WRITE = 1000;

/** A ping payload carrying its index in its first 4 bytes (big-endian). */
function pingPayload(index: number): Uint8Array {
  const payload = new Uint8Array(PAYLOAD_BYTES).fill(0x70);
  new DataView(payload.buffer).setUint32(0, index);
  return payload;
}

function payloadIndex(payload: Uint8Array): number {
  assertEquals(payload.length, PAYLOAD_BYTES, "a pong carries its ping's whole payload");
  return new DataView(payload.buffer, payload.byteOffset, 4).getUint32(0);
}

Deno.test("200,000 pings from a client that does not read: memory stays flat, others are served, the last ping is answered", async () => {
  await using server = await spawnServer(Deno.execPath(), [
    ...START_ARGS,
    ...FREE_PORTS_NO_DEMO,
  ]);
  const pid = server.process.pid;
  const base = `http://127.0.0.1:${server.httpPort}`;

  await using healthy = new TestSocket(`ws://127.0.0.1:${server.wsPort}/?channels=feed&demo=false`);
  await withDeadline(healthy.opened, 5000, "the healthy client's handshake");
  await withDeadline(healthy.nextMatching(/"subscribed"/), 5000, "the subscribed notice");

  let published = 0;
  let slowest = 0;
  const publishOne = async () => {
    const t0 = performance.now();
    const response = await fetch(`${base}/publish?channel=feed`, {
      method: "POST",
      body: `message ${published}`,
      headers: { "content-type": "text/plain" },
    });
    await response.body?.cancel();
    assertEquals(response.status, 200, "a publish succeeds during the flood");
    const message = JSON.parse(
      await withDeadline(healthy.next() as Promise<string>, 5000, `delivery ${published}`),
    );
    assertEquals(message.data, `message ${published}`, "the healthy client gets every message");
    published++;
    slowest = Math.max(slowest, performance.now() - t0);
  };
  // Warm up (code paths, the HTTP server) before the baseline.
  for (let i = 0; i < 20; i++) await publishOne();
  const baseline = (await readMemory(pid)).rssKiB;
  slowest = 0;
  const before = published;

  // Encoded beforehand, so the flood leaves at socket speed and the test's own publisher runs.
  const flood: Uint8Array[] = [];
  for (let i = 0; i < PINGS; i += PINGS_PER_WRITE) {
    const frames: Uint8Array[] = [];
    for (let j = i; j < i + PINGS_PER_WRITE; j++) {
      frames.push(clientFrame(Opcode.Ping, pingPayload(j)));
    }
    flood.push(concat(...frames));
  }
  await using flooder = await RawClient.open(server.wsPort, "/?demo=false");
  let peak = baseline;
  let flooding = true;
  // A healthy subscriber and its publisher keep working all along; RSS is sampled between them.
  const healthyLoop = (async () => {
    while (flooding) {
      await publishOne();
      peak = Math.max(peak, (await readMemory(pid)).rssKiB);
    }
  })();
  const started = performance.now();
  try {
    for (const bytes of flood) {
      await withDeadline(flooder.write(bytes), 30_000, "a write of the flooder");
    }
    // The server may still be reading the last pings: keep sampling a little longer.
    const settle = published + 20;
    while (published < settle) await new Promise((resolve) => setTimeout(resolve, 10));
  } finally {
    flooding = false;
    await healthyLoop;
  }
  const floodMs = performance.now() - started;
  const during = published - before;
  peak = Math.max(peak, (await readMemory(pid)).rssKiB);
  const growthMiB = (peak - baseline) / 1024;

  // Now the flooder reads: the pongs that reached its socket, in ping order, the last of them
  // answering the most recent ping.
  let pongs = 0;
  let last = -1;
  while (last !== PINGS - 1) {
    const event = await withDeadline(flooder.next(), 10_000, `the pong of ping ${PINGS - 1}`);
    if (event.type !== "pong") {
      throw new Error(`expected pongs only, got ${event.type} after pong ${last}`);
    }
    const index = payloadIndex(event.payload);
    assertGreater(index, last, "pongs answer pings in order");
    last = index;
    pongs++;
  }
  console.log(
    `ping flood: ${PINGS} pings in ${Math.round(floodMs)} ms; server RSS ` +
      `${(baseline / 1024).toFixed(1)} MiB → peak ${(peak / 1024).toFixed(1)} MiB ` +
      `(+${growthMiB.toFixed(1)} MiB); ${during} publishes delivered meanwhile, the slowest ` +
      `in ${Math.round(slowest)} ms; ` +
      `${pongs} pongs received`,
  );
  assertLess(growthMiB, 40, `the server grew by ${growthMiB.toFixed(1)} MiB during the flood`);
  assertLess(pongs, PINGS, "pongs were coalesced: fewer pongs than pings");
  assertGreater(published, 20, "publications were delivered during the flood");

  // The flooder is still a working client afterwards.
  await flooder.write(clientFrame(Opcode.Ping, "after"));
  const after = await withDeadline(flooder.nextOf("pong"), 5000, "the pong after the flood");
  assertEquals(new TextDecoder().decode(after.payload), "after");
  assert(healthy.socket.readyState === WebSocket.OPEN, "the healthy client is still connected");
});
