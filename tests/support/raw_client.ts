/**
 * A raw TCP WebSocket client for tests: sends exactly the bytes a test gives it (malformed
 * handshakes, unmasked or hand-crafted frames) and parses what the server sends back with the
 * project's own client-role reader.
 *
 * @module
 */
import { encodeMaskedFrame } from "../../src/protocol/frame_encoder.ts";
import { MessageReader, type WebSocketEvent } from "../../src/protocol/message.ts";
import { Inflater } from "../../src/net/deflate_codec.ts";
import { findHeaderEnd } from "../../src/protocol/handshake.ts";
import { concat, utf8 } from "./bytes.ts";

const decoder = new TextDecoder();

/** A fixed masking key, so frames are reproducible byte for byte. */
export const TEST_MASK = new Uint8Array([0x37, 0xfa, 0x21, 0x3d]);
/** The RFC 6455 example key. */
export const TEST_KEY = "dGhlIHNhbXBsZSBub25jZQ==";

/** Builds an upgrade request head for `path` with optional header overrides (null removes one). */
export function upgradeRequest(
  path = "/",
  overrides: Record<string, string | null> = {},
  requestLine = `GET ${path} HTTP/1.1`,
): Uint8Array {
  const headers: Record<string, string | null> = {
    Host: "127.0.0.1",
    Upgrade: "websocket",
    Connection: "Upgrade",
    "Sec-WebSocket-Key": TEST_KEY,
    "Sec-WebSocket-Version": "13",
    ...overrides,
  };
  let head = requestLine + "\r\n";
  for (const [name, value] of Object.entries(headers)) {
    if (value !== null) head += `${name}: ${value}\r\n`;
  }
  return utf8(head + "\r\n");
}

/** Encodes a masked client frame with {@linkcode TEST_MASK}. */
export function clientFrame(opcode: number, payload: Uint8Array | string, fin = true): Uint8Array {
  const bytes = typeof payload === "string" ? utf8(payload) : payload;
  return encodeMaskedFrame(opcode, bytes, TEST_MASK, fin);
}

/** What a raw client saw after the handshake. */
export type ServerEvent = WebSocketEvent | { type: "eof" };

/**
 * A raw client over one TCP connection. Read the HTTP response with
 * {@linkcode RawClient.readResponse}, then frames with {@linkcode RawClient.next}.
 */
export class RawClient implements AsyncDisposable {
  readonly conn: Deno.TcpConn;
  #buffer = new Uint8Array(0);
  #events: ServerEvent[] = [];
  #reader = new MessageReader(
    { role: "client", maxMessageBytes: 64 * 1024 * 1024 },
    (e) => this.#events.push(e),
  );
  #eof = false;
  /** Compressed messages received since {@linkcode RawClient.useDeflate}. */
  compressedReceived = 0;

  private constructor(conn: Deno.TcpConn) {
    this.conn = conn;
  }

  /** Wraps an open connection (e.g. a `Deno.connectTls` one); the caller writes the handshake. */
  static fromConn(conn: Deno.TlsConn): RawClient {
    // Typed as TCP for the tests that tune TCP options; a TLS connection reads and writes alike.
    return new RawClient(conn as unknown as Deno.TcpConn);
  }

  /** Connects to 127.0.0.1:`port`. */
  static async connect(port: number): Promise<RawClient> {
    return new RawClient(await Deno.connect({ hostname: "127.0.0.1", port }));
  }

  /** Connects and completes a valid handshake on `path`; throws unless the answer is 101. */
  static async open(port: number, path = "/", extra?: Uint8Array): Promise<RawClient> {
    const client = await RawClient.connect(port);
    await client.write(extra ? concat(upgradeRequest(path), extra) : upgradeRequest(path));
    const response = await client.readResponse();
    if (response.status !== 101) throw new Error(`expected 101, got ${response.head}`);
    return client;
  }

  /**
   * From here on, reads the server's frames as a permessage-deflate client does: RSV1 marks a
   * compressed message, inflated with `windowBits` and no context takeover (we always agree
   * `server_no_context_takeover`). Counts them in {@linkcode RawClient.compressedReceived}.
   */
  useDeflate(windowBits = 15): void {
    const inflater = new Inflater(
      { clientMaxWindowBits: windowBits, clientNoContextTakeover: true },
      64 * 1024 * 1024,
    );
    this.#reader = new MessageReader(
      { role: "client", maxMessageBytes: 64 * 1024 * 1024 },
      (e) => this.#events.push(e),
      {
        inflateMessage: (compressed) => {
          this.compressedReceived++;
          inflater.push(compressed);
          return inflater.finish();
        },
      },
    );
  }

  /** Writes all of `bytes`. */
  async write(bytes: Uint8Array | string): Promise<void> {
    let data = typeof bytes === "string" ? utf8(bytes) : bytes;
    while (data.length > 0) data = data.subarray(await this.conn.write(data));
  }

  async #fill(): Promise<boolean> {
    const chunk = new Uint8Array(65536);
    const n = await this.conn.read(chunk).catch(() => null);
    if (n === null) return false;
    const merged = new Uint8Array(this.#buffer.length + n);
    merged.set(this.#buffer);
    merged.set(chunk.subarray(0, n), this.#buffer.length);
    this.#buffer = merged;
    return true;
  }

  /**
   * Reads the HTTP response head (and a body of Content-Length bytes). Bytes after it stay
   * buffered for {@linkcode RawClient.next}.
   */
  async readResponse(): Promise<
    { status: number; head: string; headers: Map<string, string>; body: string }
  > {
    let end: number;
    while ((end = findHeaderEnd(this.#buffer)) === -1) {
      if (!(await this.#fill())) {
        throw new Error(`connection closed before a response: ${decoder.decode(this.#buffer)}`);
      }
    }
    const head = decoder.decode(this.#buffer.subarray(0, end));
    const headers = new Map<string, string>();
    for (const line of head.split("\r\n").slice(1)) {
      const colon = line.indexOf(":");
      if (colon > 0) headers.set(line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim());
    }
    const length = Number(headers.get("content-length") ?? 0);
    while (this.#buffer.length < end + length) {
      if (!(await this.#fill())) break;
    }
    const body = decoder.decode(this.#buffer.subarray(end, end + length));
    this.#buffer = this.#buffer.slice(end + length);
    return { status: Number(head.split(" ")[1]), head, headers, body };
  }

  /** The next event from the server: a message, a control frame, or `eof` when TCP closed. */
  async next(): Promise<ServerEvent> {
    while (this.#events.length === 0) {
      if (this.#buffer.length > 0) {
        const bytes = this.#buffer;
        // With deflate the reader may stop early (it bounds what one push inflates).
        this.#buffer = bytes.subarray(this.#reader.push(bytes));
        continue;
      }
      if (this.#eof || !(await this.#fill())) {
        this.#eof = true;
        return { type: "eof" };
      }
    }
    return this.#events.shift()!;
  }

  /** Reads events until one of `type` arrives (returning it) or TCP closes (throws). */
  async nextOf<T extends ServerEvent["type"]>(type: T): Promise<Extract<ServerEvent, { type: T }>> {
    while (true) {
      const event = await this.next();
      if (event.type === type) return event as Extract<ServerEvent, { type: T }>;
      if (event.type === "eof") throw new Error(`connection closed while waiting for ${type}`);
    }
  }

  /** Reads until TCP closes; returns true when it did (false is impossible: it waits). */
  async waitForEof(): Promise<void> {
    while ((await this.next()).type !== "eof") { /* skip */ }
  }

  /** Closes the socket (idempotent). */
  close(): void {
    try {
      this.conn.close();
    } catch {
      // Already closed.
    }
  }

  /** Closes the socket. */
  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return Promise.resolve();
  }
}

/** Reads `conn` until EOF (or a reset), up to `maxBytes`; returns the bytes and how it ended. */
export async function readToEnd(
  conn: Deno.Conn,
  maxBytes = 1 << 20,
): Promise<{ bytes: Uint8Array; end: "eof" | "reset" | "limit"; at: number }> {
  const parts: Uint8Array[] = [];
  const buffer = new Uint8Array(16 * 1024);
  let total = 0;
  while (total < maxBytes) {
    let n: number | null;
    try {
      n = await conn.read(buffer);
    } catch {
      return { bytes: concat(...parts), end: "reset", at: performance.now() };
    }
    if (n === null) return { bytes: concat(...parts), end: "eof", at: performance.now() };
    parts.push(buffer.slice(0, n));
    total += n;
  }
  return { bytes: concat(...parts), end: "limit", at: performance.now() };
}
