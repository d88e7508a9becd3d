/**
 * Predicting a server from its own sans-I/O reader (for the socket fuzz), and splitting what a
 * server sent back into frames.
 *
 * @module
 */
import { ProtocolError } from "../../src/protocol/errors.ts";
import { type Frame, FrameParser } from "../../src/protocol/frame_parser.ts";
import { MessageReader, type WebSocketEvent } from "../../src/protocol/message.ts";

/** The frames a byte stream holds: the end offset of each complete frame, and any remainder. */
export function frameEnds(bytes: Uint8Array): { ends: number[]; rest: number } {
  const ends: number[] = [];
  let at = 0;
  while (at < bytes.length) {
    if (bytes.length - at < 2) break;
    const len7 = bytes[at + 1] & 0x7f;
    const ext = len7 === 126 ? 2 : len7 === 127 ? 8 : 0;
    const head = 2 + ext + (bytes[at + 1] & 0x80 ? 4 : 0);
    if (bytes.length - at < head) break;
    let length = len7;
    if (len7 === 126) length = (bytes[at + 2] << 8) | bytes[at + 3];
    if (len7 === 127) {
      const view = new DataView(bytes.buffer, bytes.byteOffset + at + 2, 8);
      length = Number(view.getBigUint64(0));
    }
    if (bytes.length - at - head < length) break;
    at += head + length;
    ends.push(at);
  }
  return { ends, rest: bytes.length - at };
}

/** What a `/echo` connection must do with a stream, according to the sans-I/O reader. */
export interface Prediction {
  /** The reader's events up to the failure or the close. */
  events: WebSocketEvent[];
  /** The protocol error the stream ends in, if any. */
  error: ProtocolError | null;
  /** The offset just past the client's close frame, when the stream holds a valid one. */
  closedAt: number | null;
  /** Whether the stream ends exactly between frames (the server then waits for the next). */
  atBoundary: boolean;
  /** Whether a fragmented data message is still in progress at the end. */
  messageOpen: boolean;
}

/**
 * Runs `bytes` through a server-role reader frame by frame, with the server's limits (the
 * fragment limit defaults to the server's `--max-fragments` default). Rethrows non-protocol
 * errors.
 */
export function predict(
  bytes: Uint8Array,
  maxMessageBytes: number,
  maxFragments = 1024,
): Prediction {
  const events: WebSocketEvent[] = [];
  const reader = new MessageReader(
    { role: "server", maxMessageBytes, maxFragments },
    (e) => events.push(e),
  );
  const { ends, rest } = frameEnds(bytes);
  let from = 0;
  let messageOpen = false;
  const pieces = rest > 0 ? [...ends, bytes.length] : ends;
  for (const end of pieces) {
    try {
      reader.push(bytes.subarray(from, end));
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      return { events, error: err, closedAt: null, atBoundary: false, messageOpen };
    }
    if (reader.closed) return { events, error: null, closedAt: end, atBoundary: true, messageOpen };
    if (end - from >= 2 && (end !== bytes.length || rest === 0)) {
      const opcode = bytes[from] & 0x0f;
      const fin = (bytes[from] & 0x80) !== 0;
      if (opcode === 0x1 || opcode === 0x2) messageOpen = !fin;
      else if (opcode === 0x0 && fin) messageOpen = false;
    }
    from = end;
  }
  return { events, error: null, closedAt: null, atBoundary: rest === 0, messageOpen };
}

/** Every frame in a server's (unmasked) byte stream, close frames and what follows included. */
export function serverFrames(bytes: Uint8Array): Frame[] {
  const frames: Frame[] = [];
  new FrameParser({ role: "client", maxPayloadBytes: 1 << 30 }, (f) => frames.push(f)).push(bytes);
  return frames;
}
