/**
 * Fuzz mutators and chunkings: random damage to a byte stream, and the random ways a socket
 * might deliver it.
 *
 * @module
 */
import { concat } from "./bytes.ts";
import type { Rng } from "./rng.ts";

/** Applies 1–4 random mutations: bit flips, truncation, insertions, deletions, overwrites. */
export function mutate(rng: Rng, input: Uint8Array): { bytes: Uint8Array; notes: string[] } {
  let bytes: Uint8Array = input.slice();
  const notes: string[] = [];
  const count = rng.range(1, 4);
  for (let m = 0; m < count; m++) {
    const at = rng.int(bytes.length + 1);
    const op = bytes.length === 0 ? "insert" : rng.pick([
      "flip",
      "flip",
      "flip-header",
      "truncate",
      "insert",
      "delete",
      "overwrite",
      "duplicate",
    ]);
    notes.push(`${op}@${at}`);
    switch (op) {
      case "flip": {
        const i = Math.min(at, bytes.length - 1);
        bytes[i] ^= 1 << rng.int(8);
        break;
      }
      case "flip-header": {
        // The first two bytes of a frame decide the most: flip a bit there.
        const i = rng.int(Math.min(2, bytes.length));
        bytes[i] ^= 1 << rng.int(8);
        break;
      }
      case "truncate":
        bytes = bytes.slice(0, at);
        break;
      case "insert": {
        const extra = rng.bytes(rng.range(1, 16));
        bytes = concat(bytes.subarray(0, at), extra, bytes.subarray(at));
        break;
      }
      case "delete":
        bytes = concat(bytes.subarray(0, at), bytes.subarray(at + rng.range(1, 16)));
        break;
      case "overwrite":
        bytes.set(rng.bytes(Math.min(rng.range(1, 8), bytes.length - at)), at);
        break;
      case "duplicate": {
        const end = Math.min(bytes.length, at + rng.range(1, 64));
        bytes = concat(bytes.subarray(0, end), bytes.subarray(at, end), bytes.subarray(end));
        break;
      }
    }
  }
  return { bytes, notes };
}

/** Splits `bytes` into random chunks (mostly small, some large, some empty). */
export function randomChunks(rng: Rng, bytes: Uint8Array): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  let at = 0;
  while (at < bytes.length) {
    const size = rng.weighted<() => number>([
      [1, () => 0],
      [6, () => rng.range(1, 4)],
      [6, () => rng.range(1, 64)],
      [3, () => rng.range(1, 2048)],
      [1, () => bytes.length - at],
    ])();
    chunks.push(bytes.subarray(at, at + size));
    at += size;
  }
  return chunks;
}
