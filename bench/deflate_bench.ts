/**
 * permessage-deflate codec benchmark: `CompressionStream("deflate-raw")` against `node:zlib`
 * (`deflateRawSync` with a sync flush, what {@linkcode compressMessage} does) for one message,
 * and the same for inflating. A plain script, a few seconds in all:
 *
 *     deno run --allow-read=. bench/deflate_bench.ts [--ms=250]
 *
 * Each case runs for `--ms` of wall time after a short warm-up and prints ops/s and µs per
 * message. Payloads are JSON like a push broadcast. A fresh context per message in both, as
 * we negotiate `server_no_context_takeover`: `CompressionStream` has no flush, so the only way
 * to end a message there is to close the stream (a BFINAL block, §7.2.3.4), i.e. a new stream
 * per message, and it is asynchronous.
 *
 * @module
 */
import zlib from "node:zlib";
import { compressMessage, Inflater } from "../src/net/deflate_codec.ts";
import { appendDeflateTail, stripDeflateTail } from "../src/protocol/deflate.ts";

const encoder = new TextEncoder();
const msArg = Deno.args.find((a) => a.startsWith("--ms="));
const RUN_MS = msArg ? Number(msArg.slice(5)) : 250;
const SIZES = [64, 1024, 4096, 65536];

/** A JSON payload of `bytes` bytes, shaped like a broadcast. */
function json(bytes: number): Uint8Array {
  const items: string[] = [];
  for (let i = 0; items.join(",").length < bytes; i++) {
    items.push(JSON.stringify({ id: 1000 + i, channel: `prices-${i % 5}`, bid: (i * 37) % 997 }));
  }
  return encoder.encode(`[${items.join(",")}]`.slice(0, bytes));
}

/** Concatenates the chunks of a readable stream. */
async function readAll(readable: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of readable) {
    chunks.push(chunk);
    total += chunk.length;
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (const chunk of chunks) out.set(chunk, at), at += chunk.length;
  return out;
}

/** One message through a fresh `CompressionStream`, framed as §7.2.1 says. */
async function compressWithStream(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new CompressionStream("deflate-raw");
  const writer = stream.writable.getWriter();
  writer.write(bytes as Uint8Array<ArrayBuffer>);
  writer.close();
  // Ends with a BFINAL block: stripDeflateTail adds the empty block's header octet.
  return stripDeflateTail(await readAll(stream.readable));
}

/** One message through a fresh `DecompressionStream` (tail appended, §7.2.2). */
async function inflateWithStream(payload: Uint8Array): Promise<Uint8Array> {
  const stream = new DecompressionStream("deflate-raw");
  const writer = stream.writable.getWriter();
  writer.write(appendDeflateTail(payload) as Uint8Array<ArrayBuffer>);
  writer.close();
  return await readAll(stream.readable);
}

interface Result {
  name: string;
  opsPerSecond: number;
  microsPerOp: number;
}

/** Runs `op` repeatedly for RUN_MS (after a warm-up of RUN_MS / 5). */
async function measure(name: string, op: () => unknown): Promise<Result> {
  for (const budget of [RUN_MS / 5, RUN_MS]) {
    let count = 0;
    const start = performance.now();
    let now = start;
    while (now - start < budget) {
      // Batches of 16 keep the clock reads out of the figure for small messages.
      for (let i = 0; i < 16; i++) {
        const result = op();
        if (result instanceof Promise) await result;
      }
      count += 16;
      now = performance.now();
    }
    if (budget === RUN_MS) {
      const elapsed = now - start;
      return {
        name,
        opsPerSecond: (count / elapsed) * 1000,
        microsPerOp: (elapsed * 1000) / count,
      };
    }
  }
  throw new Error("unreachable");
}

function label(size: number): string {
  return size < 1024 ? `${size} B` : `${size / 1024} KiB`;
}

const results: Result[] = [];
for (const size of SIZES) {
  const message = json(size);
  const compressed = compressMessage(message);
  const viaStream = await compressWithStream(message);
  const level1 = compressMessage(message, { level: 1 });
  // Sanity: both decode to the message, each way.
  for (const payload of [compressed, viaStream]) {
    const back = new Inflater({ clientMaxWindowBits: 15, clientNoContextTakeover: true }, 1 << 20);
    back.push(payload);
    if (back.finish().length !== size) throw new Error(`round trip failed at ${size}`);
  }
  // DecompressionStream cannot take the CompressionStream payload back: Deno's rejects any
  // byte after a BFINAL block ("failed to write whole buffer"), and §7.2.2 appends four.
  if ((await inflateWithStream(compressed)).length !== size) throw new Error("stream inflate");
  console.log(
    `${label(size)} JSON: node:zlib ${compressed.length} B, level 1 ${level1.length} B, ` +
      `CompressionStream ${viaStream.length} B`,
  );
  const noTakeover = new Inflater(
    { clientMaxWindowBits: 15, clientNoContextTakeover: true },
    1 << 20,
  );
  const takeover = new Inflater(
    { clientMaxWindowBits: 15, clientNoContextTakeover: false },
    1 << 20,
  );
  const takeover12 = new Inflater(
    { clientMaxWindowBits: 12, clientNoContextTakeover: false },
    1 << 20,
  );
  // Fill the takeover windows (32 KiB, 4 KiB) first: the steady state of a chatty client.
  for (const inflater of [takeover, takeover12]) {
    inflater.push(compressMessage(json(65536)));
    inflater.finish();
  }
  const cases: Array<[string, () => unknown]> = [
    ["deflate node:zlib deflateRawSync sync flush", () => compressMessage(message)],
    ["deflate node:zlib level 1", () => compressMessage(message, { level: 1 })],
    ["deflate CompressionStream(deflate-raw)", () => compressWithStream(message)],
    ["inflate node:zlib Inflater, no takeover", () => {
      noTakeover.push(compressed);
      return noTakeover.finish();
    }],
    ["inflate node:zlib Inflater, takeover 32 KiB", () => {
      takeover.push(compressed);
      return takeover.finish();
    }],
    ["inflate node:zlib Inflater, takeover 4 KiB", () => {
      takeover12.push(compressed);
      return takeover12.finish();
    }],
    [
      "inflate node:zlib inflateRawSync bare",
      () => zlib.inflateRawSync(appendDeflateTail(compressed), { finishFlush: 2 }),
    ],
    ["inflate DecompressionStream(deflate-raw)", () => inflateWithStream(compressed)],
  ];
  for (const [name, op] of cases) {
    const result = await measure(`${label(size).padEnd(6)} ${name}`, op);
    results.push(result);
    console.log(
      `  ${result.name.padEnd(56)} ${result.opsPerSecond.toFixed(0).padStart(9)} ops/s ` +
        `${result.microsPerOp.toFixed(2).padStart(9)} µs/msg`,
    );
  }
}
