/**
 * Generators of client frame streams that know the outcome a server-role reader must reach:
 * the events, or the failure and the bytes where it must be detected.
 *
 * @module
 */
import type { ProtocolFailure } from "../../src/protocol/errors.ts";
import type { WebSocketEvent } from "../../src/protocol/message.ts";
import {
  encodeSpec,
  type FrameSpec,
  INVALID_CLOSE_CODES,
  INVALID_UTF8,
  pickSize,
  randomMask,
  randomText,
  RESERVED_OPCODES,
  specHeaderLength,
  splitInto,
  TRUNCATED_UTF8,
  VALID_CLOSE_CODE,
  VALID_CLOSE_CODES,
} from "./fuzz_frames.ts";
import type { Rng } from "./rng.ts";
import { Utf8Validator } from "./utf8_oracle.ts";

const encoder = new TextEncoder();

/** What a server-role reader must make of a generated stream. */
export interface Expected {
  /** Every event, in order (before the failure, if any). */
  events: WebSocketEvent[];
  /** The failure the stream must end with, if any. */
  failure?: ProtocolFailure;
  /** The byte offsets [first, last] (inclusive) between which the failure must be detected. */
  failAt?: [number, number];
}

/** A generated client byte stream and what must come of it. */
export interface GeneratedStream {
  /** The bytes a client sends after the handshake. */
  bytes: Uint8Array;
  /** What the reader must yield. */
  expected: Expected;
  /** A short description of what was generated, for failure messages. */
  notes: string[];
}

/**
 * The fragment limit the fuzzed readers run with: low enough that a generated fault reaches it
 * in a few frames, above the 8 frames a generated message has before its fault (7 when valid).
 */
export const FUZZ_MAX_FRAGMENTS = 16;

/** Builds a stream frame by frame, tracking offsets and the events each frame yields. */
class StreamBuilder {
  readonly parts: Uint8Array[] = [];
  readonly events: WebSocketEvent[] = [];
  readonly notes: string[] = [];
  length = 0;
  /** The fragmented message in progress. */
  open: { opcode: number; bytes: number; utf8: Utf8Validator; parts: Uint8Array[] } | null = null;

  constructor(readonly rng: Rng, readonly limit: number) {}

  /** Appends a frame; returns its start offset and header end (exclusive). */
  frame(spec: FrameSpec): { start: number; end: number } {
    const bytes = encodeSpec({ mask: randomMask(this.rng), ...spec });
    const start = this.length;
    this.parts.push(bytes);
    this.length += bytes.length;
    return { start, end: start + specHeaderLength(spec) };
  }

  raw(bytes: Uint8Array): void {
    this.parts.push(bytes);
    this.length += bytes.length;
  }

  /** A valid ping or pong. */
  control(): void {
    const opcode = this.rng.chance(0.6) ? 0x9 : 0xa;
    const payload = this.rng.bytes(
      this.rng.chance(0.3) ? this.rng.pick([0, 125]) : this.rng.int(126),
    );
    this.frame({ fin: true, opcode, payload });
    this.events.push(opcode === 0x9 ? { type: "ping", payload } : { type: "pong", payload });
    this.notes.push(`${opcode === 0x9 ? "ping" : "pong"}(${payload.length})`);
  }

  /** A valid close frame; later bytes must be ignored. */
  close(): void {
    if (this.rng.chance(0.2)) {
      this.frame({ fin: true, opcode: 0x8, payload: new Uint8Array(0) });
      this.events.push({ type: "close", code: 1005, reason: "" });
      this.notes.push("close()");
      return;
    }
    const code = this.rng.pick(VALID_CLOSE_CODES);
    const reason = randomText(this.rng, this.rng.chance(0.2) ? 123 : this.rng.int(40));
    const payload = new Uint8Array(2 + encoder.encode(reason).length);
    new DataView(payload.buffer).setUint16(0, code);
    payload.set(encoder.encode(reason), 2);
    this.frame({ fin: true, opcode: 0x8, payload });
    this.events.push({ type: "close", code, reason });
    this.notes.push(`close(${code}, ${payload.length - 2} bytes)`);
  }

  /**
   * A valid data message of `size` bytes, whole or fragmented, with controls between fragments.
   * With `leaveOpen`, the last fragment is not sent and the message stays in progress.
   */
  message(size: number, leaveOpen = false): void {
    const rng = this.rng;
    const opcode = rng.chance(0.5) ? 0x1 : 0x2;
    const text = opcode === 0x1 ? randomText(rng, size) : "";
    const data = opcode === 0x1 ? encoder.encode(text) : rng.bytes(size);
    const count = leaveOpen ? rng.range(1, 4) : rng.chance(0.5) ? 1 : rng.range(2, 7);
    const parts = splitInto(rng, data, count);
    this.notes.push(
      `${opcode === 1 ? "text" : "binary"}(${size} in ${count}${leaveOpen ? "+" : ""})`,
    );
    const utf8 = new Utf8Validator();
    for (let i = 0; i < parts.length; i++) {
      const fin = !leaveOpen && i === parts.length - 1;
      this.frame({ fin, opcode: i === 0 ? opcode : 0x0, payload: parts[i] });
      utf8.feed(parts[i]);
      if (!fin && rng.chance(0.3)) this.control();
    }
    if (leaveOpen) {
      this.open = { opcode, bytes: size, utf8, parts };
    } else {
      this.events.push(opcode === 0x1 ? { type: "text", data: text } : { type: "binary", data });
    }
  }

  /** A valid item: a message (biased sizes, never over the limit) or a ping/pong. */
  item(): void {
    if (this.rng.chance(0.7)) this.message(pickSize(this.rng, this.limit));
    else this.control();
  }

  /** Random trailing bytes: junk, or frames (valid or not). */
  trailer(): void {
    const rng = this.rng;
    if (rng.chance(0.5)) {
      this.raw(rng.bytes(rng.range(1, 64)));
    } else {
      this.raw(encodeSpec({
        fin: rng.chance(0.8),
        opcode: rng.pick([0, 1, 2, 3, 8, 9, 0xa, 0xf]),
        payload: rng.bytes(rng.int(200)),
        masked: rng.chance(0.8),
        mask: rng.bytes(4),
        rsv: rng.chance(0.8) ? 0 : rng.range(1, 7),
      }));
    }
    this.notes.push("trailer");
  }

  bytes(): Uint8Array {
    const out = new Uint8Array(this.length);
    let at = 0;
    for (const p of this.parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }
}

/**
 * A valid client stream: messages (text with edge characters, binary, whole or fragmented with
 * pings and pongs between the fragments, sizes biased to 0/125/126/127/65535/65536 and the
 * limit), standalone pings and pongs, and maybe a close frame followed by bytes to ignore.
 */
export function generateValidStream(rng: Rng, limit: number): GeneratedStream {
  const b = new StreamBuilder(rng, limit);
  const items = rng.range(0, 8);
  for (let i = 0; i < items; i++) b.item();
  if (rng.chance(0.3)) {
    b.close();
    if (rng.chance(0.5)) b.trailer();
  }
  return { bytes: b.bytes(), expected: { events: b.events }, notes: b.notes };
}

type FaultKind =
  | "reserved-bits"
  | "unknown-opcode"
  | "control-fragmented"
  | "control-too-long"
  | "unmasked-frame"
  | "length-top-bit"
  | "message-too-big"
  | "unexpected-continuation"
  | "expected-continuation"
  | "bad-utf8-text"
  | "bad-close-payload"
  | "bad-close-code"
  | "bad-utf8-close"
  | "too-many-fragments";

const FAULTS: readonly FaultKind[] = [
  "reserved-bits",
  "unknown-opcode",
  "control-fragmented",
  "control-too-long",
  "unmasked-frame",
  "length-top-bit",
  "message-too-big",
  "unexpected-continuation",
  "expected-continuation",
  "bad-utf8-text",
  "bad-close-payload",
  "bad-close-code",
  "bad-utf8-close",
  "too-many-fragments",
];

/**
 * A stream that is valid up to exactly one fault, with the failure it must end in and the
 * bytes where it must be detected: a header fault no later than the end of that frame's header
 * (so nothing of an oversized payload is buffered), a frame fault on the frame's last byte.
 */
export function generateFaultyStream(rng: Rng, limit: number): GeneratedStream {
  const b = new StreamBuilder(rng, limit);
  const items = rng.range(0, 4);
  for (let i = 0; i < items; i++) b.item();
  if (rng.chance(0.4)) b.message(pickSize(rng, limit), true);
  const open = b.open;
  let kind = rng.pick(FAULTS);
  const remaining = limit - (open?.bytes ?? 0);
  if (kind === "expected-continuation" && !open) kind = "unexpected-continuation";
  else if (kind === "unexpected-continuation" && open) kind = "expected-continuation";
  if (kind === "bad-utf8-text" && ((open && open.opcode !== 0x1) || remaining < 5)) {
    kind = "bad-utf8-close"; // the invalid bytes must fit the message budget
  }
  b.notes.push(`fault:${kind}`);
  const small = () => rng.bytes(Math.min(remaining, rng.int(40)));
  /** A valid frame of a random kind that fits here (data type depends on the open message). */
  const anyFrame = (): FrameSpec => {
    const which = rng.int(3);
    if (which === 0) {
      return { fin: true, opcode: rng.pick([0x8, 0x9, 0xa]), payload: new Uint8Array(0) };
    }
    return { fin: rng.chance(0.5), opcode: open ? 0x0 : rng.pick([0x1, 0x2]), payload: small() };
  };
  let failure: ProtocolFailure;
  let failAt: [number, number];
  const headerFault = (spec: FrameSpec) => {
    const { start, end } = b.frame(spec);
    failAt = [start, end - 1];
  };
  const frameFault = (spec: FrameSpec) => {
    b.frame(spec);
    failAt = [b.length - 1, b.length - 1];
  };
  switch (kind) {
    case "reserved-bits":
      failure = kind;
      headerFault({ ...anyFrame(), rsv: rng.range(1, 7) });
      break;
    case "unknown-opcode":
      failure = kind;
      headerFault({ fin: rng.chance(0.7), opcode: rng.pick(RESERVED_OPCODES), payload: small() });
      break;
    case "control-fragmented":
      failure = kind;
      headerFault({
        fin: false,
        opcode: rng.pick([0x8, 0x9, 0xa]),
        payload: rng.bytes(rng.int(126)),
      });
      break;
    case "control-too-long": {
      failure = kind;
      const opcode = rng.pick([0x8, 0x9, 0xa]);
      if (rng.chance(0.5)) {
        headerFault({ fin: true, opcode, payload: rng.bytes(rng.range(126, 300)) });
      } else {headerFault({
          fin: true,
          opcode,
          payload: new Uint8Array(0),
          claimedLength: 1n << 40n,
        });}
      break;
    }
    case "unmasked-frame":
      failure = kind;
      headerFault({ ...anyFrame(), masked: false });
      break;
    case "length-top-bit":
      failure = kind;
      headerFault({
        fin: rng.chance(0.5),
        opcode: open ? 0x0 : rng.pick([0x1, 0x2]),
        payload: new Uint8Array(0),
        claimedLength: (1n << 63n) | BigInt(rng.int(0x7fffffff)),
      });
      break;
    case "message-too-big": {
      failure = kind;
      const opcode = open ? 0x0 : rng.pick([0x1, 0x2]);
      const fin = rng.chance(0.5);
      const over = remaining + 1 + (rng.chance(0.5) ? 0 : rng.int(100));
      if (rng.chance(0.5) && over <= 70_000) {
        headerFault({ fin, opcode, payload: rng.bytes(over) });
      } else {
        const claimed = rng.pick([BigInt(over), 65536n, 1n << 32n, 1n << 62n, (1n << 63n) - 1n]);
        headerFault({
          fin,
          opcode,
          payload: new Uint8Array(0),
          claimedLength: claimed > BigInt(remaining) ? claimed : BigInt(over),
        });
      }
      break;
    }
    // The fragmentation rules are checked on the header: the payload of a frame that cannot
    // belong where it stands is never buffered.
    case "unexpected-continuation":
      failure = kind;
      headerFault({ fin: rng.chance(0.5), opcode: 0x0, payload: small() });
      break;
    case "expected-continuation":
      failure = kind;
      headerFault({ fin: rng.chance(0.5), opcode: rng.pick([0x1, 0x2]), payload: small() });
      break;
    case "too-many-fragments": {
      failure = kind;
      // Frames valid on their own up to the limit (tiny or empty payloads within the budget),
      // then one more: its header is the fault.
      const opcode = open?.opcode ?? rng.pick([0x1, 0x2]);
      let frames = open ? open.parts.length : 0;
      let budget = remaining;
      while (frames < FUZZ_MAX_FRAGMENTS) {
        // Binary fragments carry a byte or two (so the growing buffer is exercised); text ones
        // are empty, as the open text may stop inside a character.
        const size = opcode === 0x2 ? Math.min(budget, rng.int(3)) : 0;
        budget -= size;
        b.frame({ fin: false, opcode: frames === 0 ? opcode : 0x0, payload: rng.bytes(size) });
        frames++;
        if (rng.chance(0.1)) b.control();
      }
      headerFault({
        fin: rng.chance(0.5),
        opcode: 0x0,
        payload: rng.bytes(Math.min(budget, rng.int(40))),
      });
      break;
    }
    case "bad-utf8-text": {
      failure = "bad-utf8";
      const truncated = rng.chance(0.3);
      const bad = Uint8Array.from(rng.pick(truncated ? TRUNCATED_UTF8 : INVALID_UTF8));
      const room = Math.max(0, remaining - bad.length);
      const before = encoder.encode(randomText(rng, rng.int(Math.min(room, 60) + 1)));
      const after = truncated
        ? new Uint8Array(0)
        : encoder.encode(randomText(rng, rng.int(Math.min(room - before.length, 60) + 1)));
      const data = new Uint8Array(before.length + bad.length + after.length);
      data.set(before);
      data.set(bad, before.length);
      data.set(after, before.length + bad.length);
      const utf8 = open?.utf8 ?? new Utf8Validator();
      const parts = splitInto(rng, data, rng.range(1, 4));
      for (let i = 0; i < parts.length; i++) {
        const fin = i === parts.length - 1;
        const opcode = open || i > 0 ? 0x0 : 0x1;
        const bad = utf8.feed(parts[i]);
        if (bad !== -1 || (fin && !utf8.complete)) {
          // Text is checked as its bytes arrive: detected on the first invalid byte itself,
          // in the middle of the frame if need be; a character cut short by the end of the
          // message, on the frame's last byte.
          const { end } = b.frame({ fin, opcode, payload: parts[i] });
          const at = bad !== -1 ? end + bad : b.length - 1;
          failAt = [at, at];
          break;
        }
        b.frame({ fin, opcode, payload: parts[i] });
        if (!fin && rng.chance(0.3)) b.control();
      }
      if (!failAt!) throw new Error("generator bug: the invalid UTF-8 was not detected");
      break;
    }
    case "bad-close-payload":
      failure = kind;
      frameFault({ fin: true, opcode: 0x8, payload: rng.bytes(1) });
      break;
    case "bad-close-code": {
      failure = kind;
      const code = rng.chance(0.7) ? rng.pick(INVALID_CLOSE_CODES) : rng.int(0x10000);
      if (VALID_CLOSE_CODE(code)) {
        // A random code that happens to be valid: make it a bad payload instead.
        failure = "bad-close-payload";
        frameFault({ fin: true, opcode: 0x8, payload: Uint8Array.of(code >> 8) });
        break;
      }
      const reason = encoder.encode(randomText(rng, rng.int(20)));
      const payload = new Uint8Array(2 + reason.length);
      new DataView(payload.buffer).setUint16(0, code);
      payload.set(reason, 2);
      frameFault({ fin: true, opcode: 0x8, payload });
      break;
    }
    case "bad-utf8-close": {
      failure = "bad-utf8";
      const bad = rng.pick([...INVALID_UTF8, ...TRUNCATED_UTF8]);
      const before = encoder.encode(randomText(rng, rng.int(60)));
      const payload = new Uint8Array(2 + before.length + bad.length);
      new DataView(payload.buffer).setUint16(0, rng.pick(VALID_CLOSE_CODES));
      payload.set(before, 2);
      payload.set(bad, 2 + before.length);
      frameFault({ fin: true, opcode: 0x8, payload });
      break;
    }
  }
  if (rng.chance(0.5)) b.trailer();
  return {
    bytes: b.bytes(),
    expected: { events: b.events, failure: failure!, failAt: failAt! },
    notes: b.notes,
  };
}
