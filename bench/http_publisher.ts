/**
 * A minimal HTTP/1.1 keep-alive client for `POST /publish`. `fetch` would do, but a raw
 * connection costs the load client a fraction of the CPU and lets it stamp the message right
 * before the bytes leave.
 *
 * @module
 */
import { writeAll } from "./ws_handshake.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The answer to one publish. */
export interface PublishResult {
  /** The HTTP status. */
  status: number;
  /** The response body as text. */
  body: string;
}

/**
 * One keep-alive connection that sends one request at a time (several of them give several
 * publishes in flight).
 *
 * @example
 * ```ts
 * const publisher = await Publisher.connect(8080);
 * const { status, body } = await publisher.post("/publish?channel=a", "application/json", "{}");
 * publisher.close();
 * ```
 */
export class Publisher {
  readonly #conn: Deno.TcpConn;
  readonly #port: number;
  #buffer = new Uint8Array(4096);
  #length = 0;

  private constructor(conn: Deno.TcpConn, port: number) {
    this.#conn = conn;
    this.#port = port;
  }

  /** Opens a connection to `127.0.0.1:port`. */
  static async connect(port: number): Promise<Publisher> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.setNoDelay(true);
    return new Publisher(conn, port);
  }

  /** Sends a POST and reads the whole response. `body()` is called just before sending. */
  async post(target: string, type: string, body: () => string): Promise<PublishResult> {
    const payload = encoder.encode(body());
    const head = encoder.encode(
      `POST ${target} HTTP/1.1\r\nHost: 127.0.0.1:${this.#port}\r\nContent-Type: ${type}\r\n` +
        `Content-Length: ${payload.length}\r\n\r\n`,
    );
    const request = new Uint8Array(head.length + payload.length);
    request.set(head);
    request.set(payload, head.length);
    await writeAll(this.#conn, request);
    return await this.#readResponse();
  }

  /** Closes the connection. */
  close(): void {
    try {
      this.#conn.close();
    } catch {
      // Already closed.
    }
  }

  async #readResponse(): Promise<PublishResult> {
    let end: number;
    while ((end = findHeadEnd(this.#buffer, this.#length)) < 0) await this.#fill();
    const head = decoder.decode(this.#buffer.subarray(0, end));
    const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0);
    const lengthMatch = /\r\ncontent-length:\s*(\d+)/i.exec(head);
    this.#consume(end);
    let body: Uint8Array;
    if (lengthMatch) {
      body = await this.#take(Number(lengthMatch[1]));
    } else if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) {
      body = await this.#readChunked();
    } else {
      throw new Error(`A response without a length: ${head}`);
    }
    return { status, body: decoder.decode(body) };
  }

  async #readChunked(): Promise<Uint8Array> {
    const parts: Uint8Array[] = [];
    while (true) {
      let lineEnd: number;
      while ((lineEnd = findCrlf(this.#buffer, this.#length)) < 0) await this.#fill();
      const size = parseInt(decoder.decode(this.#buffer.subarray(0, lineEnd)), 16);
      this.#consume(lineEnd + 2);
      const chunk = await this.#take(size + 2); // the chunk and its CRLF
      if (size === 0) break;
      parts.push(chunk.subarray(0, size));
    }
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const part of parts) {
      out.set(part, at);
      at += part.length;
    }
    return out;
  }

  /** Removes and returns the next `n` buffered bytes, reading more as needed. */
  async #take(n: number): Promise<Uint8Array> {
    while (this.#length < n) await this.#fill();
    const out = this.#buffer.slice(0, n);
    this.#consume(n);
    return out;
  }

  #consume(n: number): void {
    this.#buffer.copyWithin(0, n, this.#length);
    this.#length -= n;
  }

  async #fill(): Promise<void> {
    if (this.#length === this.#buffer.length) {
      const grown = new Uint8Array(this.#buffer.length * 2);
      grown.set(this.#buffer);
      this.#buffer = grown;
    }
    const n = await this.#conn.read(this.#buffer.subarray(this.#length));
    if (n === null) throw new Error("The server closed the publish connection.");
    this.#length += n;
  }
}

function findHeadEnd(b: Uint8Array, length: number): number {
  for (let i = 0; i + 3 < length; i++) {
    if (b[i] === 13 && b[i + 1] === 10 && b[i + 2] === 13 && b[i + 3] === 10) return i + 4;
  }
  return -1;
}

function findCrlf(b: Uint8Array, length: number): number {
  for (let i = 0; i + 1 < length; i++) if (b[i] === 13 && b[i + 1] === 10) return i;
  return -1;
}
