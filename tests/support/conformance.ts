/**
 * Helpers of the RFC 6455 conformance suite (tests/conformance/): a client that wraps
 * {@linkcode RawClient} and reads the server's bytes with its OWN strict frame decoder — not the
 * project's parser — so a bug shared by both sides cannot hide, and one
 * `Deno.test` per case with a server started and disposed around it (the hand-crafted frames
 * are in conformance_frames.ts).
 *
 * Every read has a deadline, so a server that stays silent fails the case instead of hanging
 * the suite.
 *
 * @module
 */
import { assert, assertEquals, fail } from "@std/assert";
import { delay } from "./async.ts";
import { concat, utf8 } from "./bytes.ts";
import { expectedAccept, Op } from "./conformance_frames.ts";
import { RawClient, upgradeRequest } from "./raw_client.ts";
import { startTestServer, type TestServer } from "./server.ts";

const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const latin1 = new TextDecoder("latin1");

/** How long one read may wait for the server before the case fails. */
export const READ_TIMEOUT_MS = 5000;

/** What the server sent, as the suite sees it: whole messages, control frames, or TCP EOF. */
export type ConformanceEvent =
  | { type: "text"; data: string }
  | { type: "binary"; data: Uint8Array }
  | { type: "ping"; payload: Uint8Array }
  | { type: "pong"; payload: Uint8Array }
  /** `code` is null when the close frame had an empty payload. */
  | { type: "close"; code: number | null; reason: string }
  | { type: "eof" };

/** One frame from the server, decoded by the suite. */
export interface ServerFrame {
  fin: boolean;
  opcode: number;
  payload: Uint8Array;
}

/** An HTTP response to an upgrade request. */
export interface HttpResponse {
  status: number;
  /** The status line and header lines as received. */
  head: string;
  /** Header values by lower-cased name. */
  headers: Map<string, string>;
  body: string;
}

/** A short description of an event, for assertion diffs that say what the server did. */
export function describe(event: ConformanceEvent): string {
  switch (event.type) {
    case "text":
      return `text ${
        JSON.stringify(event.data.length > 40 ? event.data.slice(0, 40) + "…" : event.data)
      } (${utf8(event.data).length} bytes)`;
    case "binary":
      return `binary (${event.data.length} bytes)`;
    case "ping":
    case "pong":
      return `${event.type} (${event.payload.length} bytes)`;
    case "close":
      return `close ${event.code ?? "(no code)"}`;
    case "eof":
      return "eof";
  }
}

/** Asserts two byte arrays are equal, naming the first difference (no megabyte-long diffs). */
export function assertBytes(actual: Uint8Array, expected: Uint8Array, what = "bytes"): void {
  if (actual.length !== expected.length) {
    fail(`${what}: expected ${expected.length} bytes, got ${actual.length}`);
  }
  for (let i = 0; i < actual.length; i++) {
    if (actual[i] !== expected[i]) {
      fail(`${what}: byte ${i} is ${actual[i]}, expected ${expected[i]}`);
    }
  }
}

/**
 * A raw conformance client: a {@linkcode RawClient} for the socket and writes, and its own
 * reader for the HTTP response and the server's frames, which it checks against RFC 6455
 * (unmasked, RSV clear, known opcodes, shortest length form, control frames FIN and ≤ 125 bytes).
 */
export class ConformanceClient implements AsyncDisposable {
  readonly raw: RawClient;
  #buf = new Uint8Array(64 * 1024);
  #start = 0;
  #end = 0;
  #eof = false;
  #message: { opcode: number; parts: Uint8Array[]; length: number } | null = null;
  #closed = false;

  private constructor(raw: RawClient) {
    this.raw = raw;
  }

  /** Opens a TCP connection to 127.0.0.1:`port`, Nagle off so small writes go out at once. */
  static async connect(port: number): Promise<ConformanceClient> {
    const raw = await RawClient.connect(port);
    (raw.conn as Partial<Deno.TcpConn>).setNoDelay?.(true);
    return new ConformanceClient(raw);
  }

  /** Writes all of `bytes` in one write call (several frames in one TCP write). */
  send(...frames: (Uint8Array | string)[]): Promise<void> {
    return this.raw.write(concat(...frames.map((f) => typeof f === "string" ? utf8(f) : f)));
  }

  /** Writes `bytes` one byte per write, yielding to the server between bytes. */
  async sendByteByByte(...frames: Uint8Array[]): Promise<void> {
    const bytes = concat(...frames);
    for (let i = 0; i < bytes.length; i++) {
      await this.raw.write(bytes.subarray(i, i + 1));
      await delay(0); // one macrotask: the in-process server reads what was written
    }
  }

  /** Writes each of `frames` with its own write call, yielding to the server in between. */
  async sendEach(...frames: Uint8Array[]): Promise<void> {
    for (const frame of frames) {
      await this.raw.write(frame);
      await delay(0); // one macrotask: the in-process server reads what was written
    }
  }

  /** Reads more bytes; false at EOF. A read with no answer within the deadline fails the case. */
  async #fill(): Promise<boolean> {
    if (this.#eof) return false;
    if (this.#end === this.#buf.length) {
      const live = this.#end - this.#start;
      const size = live * 2 > this.#buf.length ? this.#buf.length * 2 : this.#buf.length;
      const next = new Uint8Array(size);
      next.set(this.#buf.subarray(this.#start, this.#end));
      this.#buf = next;
      this.#start = 0;
      this.#end = live;
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), READ_TIMEOUT_MS);
    });
    let n: number | null | "timeout";
    try {
      n = await Promise.race([
        this.raw.conn.read(this.#buf.subarray(this.#end)).catch(() => null),
        timeout,
      ]);
    } finally {
      clearTimeout(timer);
    }
    if (n === "timeout") {
      this.raw.close();
      fail(`the server sent nothing for ${READ_TIMEOUT_MS} ms (and did not close TCP)`);
    }
    if (n === null) {
      this.#eof = true;
      return false;
    }
    this.#end += n;
    return true;
  }

  /** Reads the HTTP response head and its Content-Length body. */
  async readResponse(): Promise<HttpResponse> {
    let end = -1;
    while (true) {
      const view = this.#buf.subarray(this.#start, this.#end);
      for (let i = 0; i + 3 < view.length; i++) {
        if (view[i] === 13 && view[i + 1] === 10 && view[i + 2] === 13 && view[i + 3] === 10) {
          end = i + 4;
          break;
        }
      }
      if (end !== -1) break;
      if (!(await this.#fill())) fail(`TCP closed before a response head: ${latin1.decode(view)}`);
    }
    const head = latin1.decode(this.#buf.subarray(this.#start, this.#start + end));
    this.#start += end;
    const headers = new Map<string, string>();
    for (const line of head.split("\r\n").slice(1)) {
      const colon = line.indexOf(":");
      if (colon > 0) headers.set(line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim());
    }
    const length = Number(headers.get("content-length") ?? 0);
    while (this.#end - this.#start < length) {
      if (!(await this.#fill())) break;
    }
    const body = new TextDecoder().decode(this.#buf.subarray(this.#start, this.#start + length));
    this.#start += Math.min(length, this.#end - this.#start);
    const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(head)?.[1] ?? NaN);
    return { status, head, headers, body };
  }

  /**
   * Sends the upgrade request for `path` (with `extra` bytes in the same write) and asserts a
   * valid 101 response (§4.2.2): Upgrade, Connection and the right Sec-WebSocket-Accept.
   */
  async handshake(path = "/echo", extra?: Uint8Array): Promise<HttpResponse> {
    const request = upgradeRequest(path);
    await this.raw.write(extra ? concat(request, extra) : request);
    const response = await this.readResponse();
    await assertAccepted(response, "dGhlIHNhbXBsZSBub25jZQ==");
    return response;
  }

  /** The next frame from the server, or null at EOF. Throws when a frame breaks RFC 6455. */
  async nextFrame(): Promise<ServerFrame | null> {
    while (true) {
      const frame = this.#parseFrame();
      if (frame) return frame;
      if (!(await this.#fill())) {
        if (this.#end > this.#start) {
          fail(`TCP closed inside a frame (${this.#end - this.#start} bytes of it received)`);
        }
        return null;
      }
    }
  }

  #parseFrame(): ServerFrame | null {
    const b = this.#buf.subarray(this.#start, this.#end);
    if (b.length < 2) return null;
    const fin = (b[0] & 0x80) !== 0;
    const rsv = (b[0] >> 4) & 7;
    const opcode = b[0] & 0x0f;
    const masked = (b[1] & 0x80) !== 0;
    let length = b[1] & 0x7f;
    let at = 2;
    if (length === 126) {
      if (b.length < 4) return null;
      length = (b[2] << 8) | b[3];
      at = 4;
      if (length < 126) fail(`server frame: length ${length} not in its shortest form (§5.2)`);
    } else if (length === 127) {
      if (b.length < 10) return null;
      const big = new DataView(b.buffer, b.byteOffset + 2, 8).getBigUint64(0);
      if (big >> 63n) fail("server frame: 64-bit length with its top bit set (§5.2)");
      length = Number(big);
      at = 10;
      if (length < 0x10000) fail(`server frame: length ${length} not in its shortest form (§5.2)`);
    }
    if (masked) fail("server frame is masked: a server MUST NOT mask (§5.1)");
    if (rsv !== 0) fail(`server frame has RSV bits ${rsv} with no extension negotiated (§5.2)`);
    if (![0, 1, 2, 8, 9, 10].includes(opcode)) fail(`server frame has reserved opcode ${opcode}`);
    if (opcode >= 8 && (!fin || length > 125)) {
      fail(`server control frame fragmented or over 125 bytes (§5.5)`);
    }
    if (b.length < at + length) return null;
    const payload = b.slice(at, at + length);
    this.#start += at + length;
    if (this.#start === this.#end) this.#start = this.#end = 0;
    return { fin, opcode, payload };
  }

  /**
   * The next event: a whole message (fragments joined), a control frame, or `eof`. Nothing may
   * follow a close frame but EOF.
   */
  async next(): Promise<ConformanceEvent> {
    while (true) {
      const frame = await this.nextFrame();
      if (frame === null) {
        if (this.#message) fail("TCP closed inside a fragmented message from the server");
        return { type: "eof" };
      }
      if (this.#closed) fail(`the server sent opcode ${frame.opcode} after its close frame`);
      const event = this.#assemble(frame);
      if (event) return event;
    }
  }

  #assemble(frame: ServerFrame): ConformanceEvent | null {
    const { opcode, payload } = frame;
    switch (opcode) {
      case Op.Ping:
      case Op.Pong:
        return { type: opcode === Op.Ping ? "ping" : "pong", payload };
      case Op.Close:
        this.#closed = true;
        return parseClose(payload);
      case Op.Continuation:
        if (!this.#message) fail("server sent a continuation frame with no message started");
        break;
      default:
        if (this.#message) fail("server started a message inside a fragmented one");
        this.#message = { opcode, parts: [], length: 0 };
    }
    const m = this.#message!;
    m.parts.push(payload);
    m.length += payload.length;
    if (!frame.fin) return null;
    this.#message = null;
    const data = m.parts.length === 1 ? m.parts[0] : concat(...m.parts);
    if (m.opcode === Op.Binary) return { type: "binary", data };
    try {
      return { type: "text", data: strictUtf8.decode(data) };
    } catch {
      fail("the server sent a text message that is not valid UTF-8");
    }
  }

  /** Reads every event up to and including `eof`. */
  async drain(): Promise<ConformanceEvent[]> {
    const events: ConformanceEvent[] = [];
    while (true) {
      const event = await this.next();
      events.push(event);
      if (event.type === "eof") return events;
    }
  }

  /** Asserts the next event is the text message `text` (byte for byte). */
  async expectText(text: string | Uint8Array): Promise<void> {
    const expected = typeof text === "string" ? text : strictUtf8.decode(text);
    const event = await this.next();
    if (event.type !== "text") fail(`expected a text message, got ${describe(event)}`);
    if (event.data.length > 1000) assertBytes(utf8(event.data), utf8(expected), "echoed text");
    else assertEquals(event.data, expected);
  }

  /** Asserts the next event is the binary message `data`. */
  async expectBinary(data: Uint8Array): Promise<void> {
    const event = await this.next();
    if (event.type !== "binary") fail(`expected a binary message, got ${describe(event)}`);
    assertBytes(event.data, data, "echoed binary message");
  }

  /** Asserts the next event is a pong carrying `payload`. */
  async expectPong(payload: Uint8Array | string): Promise<void> {
    const event = await this.next();
    if (event.type !== "pong") fail(`expected a pong, got ${describe(event)}`);
    assertBytes(event.payload, typeof payload === "string" ? utf8(payload) : payload, "pong");
  }

  /**
   * Asserts the answer to pings sent together, with distinct `payloads`: pongs in ping order
   * ending with the pong of the last ping. The server may skip pings whose pong it had not yet
   * written when a newer ping came: §5.5.3 lets an endpoint answer only the most recent one
   * (Autobahn 2.10 and 2.11 count that as "non-strict", not as a failure). Returns how many
   * pongs came.
   */
  async expectPongsOf(...payloads: (Uint8Array | string)[]): Promise<number> {
    const wanted = payloads.map((p) => typeof p === "string" ? utf8(p) : p);
    const same = (a: Uint8Array, b: Uint8Array) =>
      a.length === b.length && a.every((byte, i) => byte === b[i]);
    let at = -1;
    let pongs = 0;
    while (at < wanted.length - 1) {
      const event = await this.next();
      if (event.type !== "pong") fail(`expected a pong, got ${describe(event)}`);
      pongs++;
      const index = wanted.findIndex((p, i) => i > at && same(p, event.payload));
      if (index === -1) fail(`a pong of ${event.payload.length} bytes answers no later ping`);
      at = index;
    }
    return pongs;
  }

  /**
   * Asserts the server echoes our close (§5.5.1) with exactly `code` and `reason` (code null:
   * an empty payload) and then closes TCP, sending nothing else.
   */
  async expectCloseEcho(code: number | null, reason = ""): Promise<void> {
    assertEquals(await this.drain(), [{ type: "close", code, reason }, { type: "eof" }]);
  }

  /**
   * Asserts the server _failed the connection_ (§7.1.7): everything it sends from now on is one
   * close frame with `code`, then TCP EOF — no echo, no pong.
   */
  async expectFailure(code: number): Promise<void> {
    assertEquals((await this.drain()).map(describe), [`close ${code}`, "eof"]);
  }

  /** Asserts TCP is closed with nothing more sent. */
  async expectEof(): Promise<void> {
    const event = await this.next();
    if (event.type !== "eof") fail(`expected TCP EOF, got ${describe(event)}`);
  }

  /** Closes the socket. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.raw[Symbol.asyncDispose]();
  }
}

function parseClose(payload: Uint8Array): ConformanceEvent {
  if (payload.length === 0) return { type: "close", code: null, reason: "" };
  if (payload.length === 1) fail("server close frame with a 1-byte payload (§5.5.1)");
  try {
    return {
      type: "close",
      code: (payload[0] << 8) | payload[1],
      reason: strictUtf8.decode(payload.subarray(2)),
    };
  } catch {
    fail("server close reason is not valid UTF-8 (§5.5.1)");
  }
}

/** Asserts `response` accepts the upgrade for `key` (§4.2.2). */
export async function assertAccepted(response: HttpResponse, key: string): Promise<void> {
  assertEquals(response.status, 101, `expected 101, got:\n${response.head}${response.body}`);
  assertEquals(response.headers.get("upgrade")?.toLowerCase(), "websocket");
  assert(
    response.headers.get("connection")?.toLowerCase().split(/\s*,\s*/).includes("upgrade"),
    `Connection must contain "upgrade": ${response.head}`,
  );
  assertEquals(response.headers.get("sec-websocket-accept"), await expectedAccept(key));
}

/** Options of {@linkcode conformance}. */
export interface CaseOptions {
  /** Server flags. */
  args?: string[];
  /** Skip the handshake (handshake cases do their own). Default: handshake on `/echo`. */
  handshake?: boolean;
}

/**
 * Registers one conformance case as its own `Deno.test`, named `conformance <id>: <title>`,
 * with a fresh server and a client (handshake done on `/echo` unless turned off), both disposed.
 */
export function conformance(
  id: string,
  title: string,
  body: (client: ConformanceClient, server: TestServer) => Promise<void>,
  options: CaseOptions = {},
): void {
  Deno.test(`conformance ${id}: ${title}`, async () => {
    await using server = await startTestServer(options.args ?? []);
    await using client = await ConformanceClient.connect(server.wsAddr.port);
    if (options.handshake !== false) await client.handshake("/echo");
    await body(client, server);
  });
}
