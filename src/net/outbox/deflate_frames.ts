/**
 * The permessage-deflate (RFC 7692) variant of an outgoing frame: what a connection that
 * negotiated deflate sends instead of the plain frame.
 *
 * A broadcast is encoded once into one plain frame, queued to every subscriber (the encode-once
 * rule). We always negotiate `server_no_context_takeover`, so a message compresses to the same
 * bytes for every client: the compressed frame is made once, the first time a deflate client
 * is given that plain frame, and remembered in a `WeakMap` keyed by the plain frame's identity
 * (the cache is keyed by (message, deflate): the plain frame is the message, and its key lives
 * exactly as long as whoever holds the plain frame: the fan-out loop, a queue, the history).
 * Clients without deflate keep getting the plain frame; the queues never learn the difference.
 *
 * @module
 */
import type { Metrics } from "../../metrics.ts";
import type { DeflateParams } from "../../protocol/deflate.ts";
import { RSV1 } from "../../protocol/deflate.ts";
import { encodeFrame } from "../../protocol/frame_encoder.ts";
import { compressMessage } from "../deflate_codec.ts";

/** The compressed frame of each plain frame seen, by the window bits it was compressed for. */
const compressedByBits = new Map<number, WeakMap<Uint8Array, Uint8Array>>();

/** The payload offset of a server (unmasked) frame, from its second header byte. */
function payloadOffset(frame: Uint8Array): number {
  const len7 = frame[1] & 0x7f;
  return len7 < 126 ? 2 : len7 === 126 ? 4 : 10;
}

/**
 * The frame to send to a client that negotiated `params`, for the plain frame `frame`: the
 * plain frame itself when it is not a whole unfragmented text/binary message (control frames
 * and fragments are never compressed), when its payload is under `minBytes`, or when
 * compression does not make it smaller; otherwise the compressed frame (RSV1 set). `shared`:
 * the frame goes to many clients (a broadcast): its compressed form is remembered and reused;
 * a frame made for one client (a notice, an echo) is compressed without being remembered.
 * Counts the compression and the delivered bytes in `metrics`.
 */
export function deflatedFrame(
  frame: Uint8Array,
  params: DeflateParams,
  minBytes: number,
  metrics: Metrics,
  shared: boolean,
): Uint8Array {
  const b0 = frame[0];
  // FIN + Text or FIN + Binary, no RSV bit: a whole data message.
  if (b0 !== 0x81 && b0 !== 0x82) return frame;
  const offset = payloadOffset(frame);
  const plainLength = frame.length - offset;
  if (plainLength < minBytes) return frame;
  let out: Uint8Array | undefined;
  let cache: WeakMap<Uint8Array, Uint8Array> | undefined;
  if (shared) {
    cache = compressedByBits.get(params.serverMaxWindowBits);
    if (cache === undefined) {
      compressedByBits.set(params.serverMaxWindowBits, cache = new WeakMap());
    }
    out = cache.get(frame);
  }
  if (out === undefined) {
    out = compress(frame, offset, params.serverMaxWindowBits, metrics);
    cache?.set(frame, out);
  }
  if (out !== frame) {
    metrics.deflate.outPlainBytes += plainLength;
    metrics.deflate.outCompressedBytes += out.length - payloadOffset(out);
  }
  return out;
}

/** Compresses one plain frame's payload into a new frame, or returns it if that does not help. */
function compress(frame: Uint8Array, offset: number, windowBits: number, metrics: Metrics) {
  metrics.deflate.compressions++;
  const payload = compressMessage(frame.subarray(offset), { windowBits });
  if (payload.length >= frame.length - offset) return frame;
  const out = encodeFrame(frame[0] & 0x0f, payload);
  out[0] |= RSV1;
  return out;
}
