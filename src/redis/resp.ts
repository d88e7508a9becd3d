/**
 * RESP2, the Redis serialization protocol (https://redis.io/docs/latest/develop/reference/protocol-spec/):
 * commands out, replies in, no I/O.
 *
 * - {@linkcode encodeCommand} turns one command into the bytes Redis expects (an array of bulk
 *   strings, binary safe).
 * - {@linkcode RespParser} is an incremental parser: feed it whatever the socket delivered, split
 *   anywhere, and it hands out complete values in order. Every length it reads is checked against
 *   a limit before anything is allocated for it.
 *
 * @module
 */

/** A decoded RESP2 value. Bulk strings stay bytes: only the caller knows whether they are text. */
export type RespValue = string | number | Uint8Array | null | RespError | RespValue[];

/**
 * An error reply from Redis (`-ERR unknown command`, `-WRONGTYPE ...`). It is a value, not a
 * failure of the connection: the client rejects the one command it answers with it.
 */
export class RespError extends Error {
  /** The first word of the reply, by Redis convention its kind: "ERR", "WRONGTYPE", "NOAUTH"... */
  readonly code: string;

  /** Creates the error from the reply's text (without the leading `-`). */
  constructor(message: string) {
    super(message);
    this.name = "RespError";
    this.code = /^\S*/.exec(message)![0];
  }
}

/**
 * Thrown by {@linkcode RespParser} when the bytes are not RESP2 or break a limit. The stream cannot
 * be resynchronised after it: the connection must be dropped.
 */
export class RespProtocolError extends Error {
  /** Creates the error; `message` says what was wrong with the stream. */
  constructor(message: string) {
    super(message);
    this.name = "RespProtocolError";
  }
}

const CR = 0x0d;
const LF = 0x0a;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The ASCII bytes of `text` (headers and numbers only, so one byte per character). */
function writeAscii(out: Uint8Array, at: number, text: string): number {
  for (let i = 0; i < text.length; i++) out[at + i] = text.charCodeAt(i);
  return at + text.length;
}

/**
 * Encodes one command as a RESP array of bulk strings. Strings are sent as UTF-8, numbers in
 * decimal, byte arrays as they are.
 *
 * @throws {RangeError} when `args` is empty (Redis answers nothing to an empty array, so every
 * later reply would be matched to the wrong command) or a number is not finite.
 *
 * @example
 * ```ts
 * encodeCommand(["SET", "k", 1]); // bytes of "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\n1\r\n"
 * ```
 */
export function encodeCommand(args: readonly (string | number | Uint8Array)[]): Uint8Array {
  if (args.length === 0) throw new RangeError("A Redis command needs at least one argument.");
  const parts: Uint8Array[] = new Array(args.length);
  let total = 1 + String(args.length).length + 2;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    let bytes: Uint8Array;
    if (typeof arg === "string") {
      bytes = encoder.encode(arg);
    } else if (typeof arg === "number") {
      if (!Number.isFinite(arg)) {
        throw new RangeError(`Redis argument ${i} is ${arg}: pass "+inf"/"-inf" as strings.`);
      }
      bytes = encoder.encode(String(arg));
    } else {
      bytes = arg;
    }
    parts[i] = bytes;
    total += 1 + String(bytes.length).length + 2 + bytes.length + 2;
  }
  const out = new Uint8Array(total);
  let at = writeAscii(out, 0, `*${args.length}\r\n`);
  for (const bytes of parts) {
    at = writeAscii(out, at, `$${bytes.length}\r\n`);
    out.set(bytes, at);
    at = writeAscii(out, at + bytes.length, "\r\n");
  }
  return out;
}

/** Limits of {@linkcode RespParser}; each guards memory against a broken or hostile peer. */
export interface RespParserOptions {
  /** The longest bulk string accepted, in bytes (default 512 MiB, Redis's own maximum). */
  maxBulkBytes?: number;
  /** The most elements an array may announce (default 1,048,576). */
  maxArrayLength?: number;
  /** The longest simple string, error or integer line, in bytes (default 1 MiB). */
  maxLineBytes?: number;
  /** How deeply arrays may nest (default 64; Redis's own replies nest a handful of levels). */
  maxDepth?: number;
}

/** The defaults of {@linkcode RespParserOptions}. */
export const RESP_PARSER_DEFAULTS: Readonly<Required<RespParserOptions>> = {
  maxBulkBytes: 512 * 1024 * 1024,
  maxArrayLength: 1024 * 1024,
  maxLineBytes: 1024 * 1024,
  maxDepth: 64,
};

const enum State {
  /** Reading a `<type><text>\r\n` line. */
  Line,
  /** Reading the payload of a bulk string. */
  Bulk,
  /** Reading the `\r\n` after a bulk payload. */
  BulkEnd,
  /** A protocol error happened; the parser refuses more input. */
  Failed,
}

/** Bulk payloads start with a buffer this size (or their length if smaller) and grow as they arrive. */
const INITIAL_BULK_BYTES = 64 * 1024;

/** An array still collecting its elements. */
interface OpenArray {
  items: RespValue[];
  remaining: number;
}

/**
 * Parses RESP2 values from a byte stream split in any way. Call {@linkcode RespParser.push} with
 * each chunk read from the socket; every complete top-level value is handed to `onValue`
 * synchronously, in order.
 *
 * Integers beyond ±2^53 lose precision (they become JavaScript numbers). The input chunk is never
 * retained, so the caller may reuse its read buffer; bulk strings handed out are fresh copies.
 * A bulk string announced as large grows its buffer as bytes arrive, so a length that is never
 * followed by data does not cost its size in memory.
 *
 * @example
 * ```ts
 * const parser = new RespParser((value) => console.log(value)); // "OK", then 42
 * parser.push(new TextEncoder().encode("+OK\r\n:4"));
 * parser.push(new TextEncoder().encode("2\r\n"));
 * ```
 */
export class RespParser {
  readonly #onValue: (value: RespValue) => void;
  readonly #limits: Required<RespParserOptions>;
  #state = State.Line;
  /** A line split across chunks, assembled here (empty while lines arrive whole). */
  #line = new Uint8Array(0);
  #lineLength = 0;
  #bulk = new Uint8Array(0);
  #bulkLength = 0;
  #bulkOffset = 0;
  #bulkEndSeen = 0;
  readonly #stack: OpenArray[] = [];

  /** Creates a parser that hands each complete value to `onValue`. */
  constructor(onValue: (value: RespValue) => void, options: RespParserOptions = {}) {
    this.#onValue = onValue;
    this.#limits = { ...RESP_PARSER_DEFAULTS, ...options };
  }

  /** Bytes held for values not yet complete (a partial line or bulk string). */
  get bufferedBytes(): number {
    return this.#lineLength + this.#bulkOffset;
  }

  /**
   * Feeds the next chunk of the stream. Throws {@linkcode RespProtocolError} when the stream is
   * not RESP2 or breaks a limit; the parser is unusable afterwards. An exception thrown by
   * `onValue` also leaves it unusable (the stream position is lost), so `onValue` should not throw.
   */
  push(chunk: Uint8Array): void {
    if (this.#state === State.Failed) throw new Error("RespParser used after a protocol error.");
    try {
      let i = 0;
      while (i < chunk.length) {
        switch (this.#state) {
          case State.Line:
            i = this.#readLine(chunk, i);
            break;
          case State.Bulk:
            i = this.#readBulk(chunk, i);
            break;
          case State.BulkEnd:
            i = this.#readBulkEnd(chunk, i);
            break;
        }
      }
    } catch (err) {
      this.#state = State.Failed;
      this.#line = this.#bulk = new Uint8Array(0);
      this.#stack.length = 0;
      throw err;
    }
  }

  #readLine(chunk: Uint8Array, i: number): number {
    const lf = chunk.indexOf(LF, i);
    const end = lf === -1 ? chunk.length : lf;
    // +2: the type byte and the CR; the limit is on the text between them.
    if (this.#lineLength + (end - i) > this.#limits.maxLineBytes + 2) {
      throw new RespProtocolError(
        `A RESP line is longer than the limit of ${this.#limits.maxLineBytes} bytes.`,
      );
    }
    if (lf === -1) {
      this.#appendLine(chunk.subarray(i));
      return chunk.length;
    }
    if (this.#lineLength === 0) {
      this.#onLine(chunk.subarray(i, lf)); // the common case: the whole line in one chunk
    } else {
      this.#appendLine(chunk.subarray(i, lf));
      const line = this.#line.subarray(0, this.#lineLength);
      this.#lineLength = 0;
      this.#onLine(line);
    }
    return lf + 1;
  }

  #appendLine(part: Uint8Array): void {
    const needed = this.#lineLength + part.length;
    if (needed > this.#line.length) {
      const grown = new Uint8Array(Math.max(needed, this.#line.length * 2, 64));
      grown.set(this.#line.subarray(0, this.#lineLength));
      this.#line = grown;
    }
    this.#line.set(part, this.#lineLength);
    this.#lineLength = needed;
  }

  /** Handles one line without its LF (`line` ends with the CR). */
  #onLine(line: Uint8Array): void {
    if (line.length < 2 || line[line.length - 1] !== CR) {
      throw new RespProtocolError("A RESP line does not end with CRLF or has no type byte.");
    }
    const body = line.subarray(1, line.length - 1);
    switch (line[0]) {
      case 0x2b: // '+' simple string
        return this.#emit(decoder.decode(body));
      case 0x2d: // '-' error
        return this.#emit(new RespError(decoder.decode(body)));
      case 0x3a: // ':' integer
        return this.#emit(parseInteger(body));
      case 0x24: // '$' bulk string
        return this.#startBulk(parseLength(body, "bulk string", this.#limits.maxBulkBytes));
      case 0x2a: // '*' array
        return this.#startArray(parseLength(body, "array", this.#limits.maxArrayLength));
      default:
        throw new RespProtocolError(
          `Unknown RESP type byte 0x${line[0].toString(16).padStart(2, "0")} ` +
            "(only RESP2 is spoken: do not send HELLO 3).",
        );
    }
  }

  #startBulk(length: number): void {
    if (length === -1) return this.#emit(null);
    this.#bulkLength = length;
    this.#bulkOffset = 0;
    this.#bulk = new Uint8Array(Math.min(length, INITIAL_BULK_BYTES));
    this.#bulkEndSeen = 0;
    this.#state = length === 0 ? State.BulkEnd : State.Bulk;
  }

  #startArray(length: number): void {
    if (length === -1) return this.#emit(null);
    if (length === 0) return this.#emit([]);
    if (this.#stack.length >= this.#limits.maxDepth) {
      throw new RespProtocolError(`RESP arrays nest deeper than ${this.#limits.maxDepth} levels.`);
    }
    // Elements are pushed as they arrive: the announced length sizes nothing up front.
    this.#stack.push({ items: [], remaining: length });
  }

  #readBulk(chunk: Uint8Array, i: number): number {
    const take = Math.min(this.#bulkLength - this.#bulkOffset, chunk.length - i);
    const needed = this.#bulkOffset + take;
    if (needed > this.#bulk.length) {
      const grown = new Uint8Array(
        Math.min(this.#bulkLength, Math.max(needed, this.#bulk.length * 2)),
      );
      grown.set(this.#bulk.subarray(0, this.#bulkOffset));
      this.#bulk = grown;
    }
    this.#bulk.set(chunk.subarray(i, i + take), this.#bulkOffset);
    this.#bulkOffset = needed;
    if (needed === this.#bulkLength) this.#state = State.BulkEnd;
    return i + take;
  }

  #readBulkEnd(chunk: Uint8Array, i: number): number {
    while (i < chunk.length && this.#bulkEndSeen < 2) {
      const expected = this.#bulkEndSeen === 0 ? CR : LF;
      if (chunk[i] !== expected) {
        throw new RespProtocolError("A RESP bulk string is not followed by CRLF.");
      }
      this.#bulkEndSeen++;
      i++;
    }
    if (this.#bulkEndSeen === 2) {
      const value = this.#bulk;
      this.#bulk = new Uint8Array(0);
      this.#bulkOffset = 0;
      this.#state = State.Line;
      this.#emit(value);
    }
    return i;
  }

  /** Completes `value`: into the innermost open array, or out to the caller when top-level. */
  #emit(value: RespValue): void {
    while (true) {
      const top = this.#stack.at(-1);
      if (top === undefined) return this.#onValue(value);
      top.items.push(value);
      if (--top.remaining > 0) return;
      this.#stack.pop();
      value = top.items;
    }
  }
}

/** Digits of the largest length we ever accept fit well within a safe integer. */
const MAX_LENGTH_DIGITS = 15;

/** Parses a `$`/`*` length: decimal digits or exactly `-1` (null), at most `max`. */
function parseLength(body: Uint8Array, what: string, max: number): number {
  if (body.length === 2 && body[0] === 0x2d && body[1] === 0x31) return -1;
  if (body.length === 0 || body.length > MAX_LENGTH_DIGITS) {
    throw new RespProtocolError(`A RESP ${what} length is missing or too long.`);
  }
  let n = 0;
  for (const b of body) {
    if (b < 0x30 || b > 0x39) throw new RespProtocolError(`A RESP ${what} length is not a number.`);
    n = n * 10 + (b - 0x30);
  }
  if (n > max) {
    throw new RespProtocolError(`A RESP ${what} of ${n} exceeds the limit of ${max}.`);
  }
  return n;
}

/** Parses a `:` integer: an optional minus sign and decimal digits. */
function parseInteger(body: Uint8Array): number {
  const text = decoder.decode(body);
  if (!/^-?\d{1,20}$/.test(text)) {
    throw new RespProtocolError(`A RESP integer is malformed: ${JSON.stringify(text)}.`);
  }
  return Number(text);
}
