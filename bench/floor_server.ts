/**
 * The floor of a `Deno.listen` WebSocket server, for the benchmark (`--servers=…,floor`): the
 * least JavaScript any server on `Deno.Conn` must run, so what it measures bounds what ours can
 * reach on this runtime. It is not a server to use: no limits, no validation beyond what the load
 * client sends, no publish API (`POST /publish` answers 404, so the fan-out scenarios skip it).
 *
 * Per connection: the request head is read, `Sec-WebSocket-Accept` computed with Web Crypto (as
 * ours must), the 101 written; then one read is kept pending into a 128 B buffer of its own (made
 * once), driven by two callbacks made once per connection, no promise chain of ours. On `/echo`
 * each read's complete frames are unmasked into one buffer and written back in one write; a close
 * frame is answered and the socket closed. That is one read op and one write op per round trip,
 * which every server on `Deno.Conn` pays, and nothing else.
 *
 * ```sh
 * deno run --allow-net=127.0.0.1 bench/floor_server.ts --ws-port 9000 --http-port 8080
 * ```
 *
 * @module
 */
import { acceptKey, buildAcceptResponse } from "../src/protocol/handshake.ts";
import { parseReferenceArgs } from "./reference_server.ts";
import { concatBytes } from "../src/bytes.ts";

/** The per-connection read buffer (the size our server's idle read slots have). */
const READ_BYTES = 128;

const decoder = new TextDecoder();

/** One connection after its handshake: a read pending, echoing on `/echo`. */
class FloorConnection {
  readonly #conn: Deno.Conn;
  readonly #echo: boolean;
  #buffer = new Uint8Array(READ_BYTES);
  /** Bytes of an incomplete frame carried over from the last read. */
  #carry: Uint8Array | null = null;

  constructor(conn: Deno.Conn, echo: boolean) {
    this.#conn = conn;
    this.#echo = echo;
  }

  read(): void {
    this.#conn.read(this.#buffer).then(this.#onRead, this.#onFailed);
  }

  readonly #onRead = (n: number | null): void => {
    if (n === null) return this.#close();
    let bytes = this.#buffer.subarray(0, n);
    if (this.#carry !== null) {
      const joined = new Uint8Array(this.#carry.length + n);
      joined.set(this.#carry);
      joined.set(bytes, this.#carry.length);
      bytes = joined;
      this.#carry = null;
    }
    const { out, used, closed } = echoFrames(bytes, this.#echo);
    if (used < bytes.length) this.#carry = bytes.slice(used);
    if (n === this.#buffer.length) this.#buffer = new Uint8Array(this.#buffer.length * 2);
    if (out === null) {
      if (closed) this.#close();
      else this.read();
      return;
    }
    writeAll(this.#conn, out).then(() => closed ? this.#close() : this.read(), this.#onFailed);
  };

  readonly #onFailed = (): void => this.#close();

  #close(): void {
    try {
      this.#conn.close();
    } catch {
      // Closed already.
    }
  }
}

/**
 * The server's answer to the complete frames at the start of `bytes`: their unmasked copies when
 * `echo` (text, binary and continuation frames; pings answered with pongs), a close frame's echo
 * always. `used` is how many bytes the complete frames took.
 */
export function echoFrames(
  bytes: Uint8Array,
  echo: boolean,
): { out: Uint8Array | null; used: number; closed: boolean } {
  const parts: Uint8Array[] = [];
  let at = 0;
  let closed = false;
  while (!closed && bytes.length - at >= 2) {
    const b0 = bytes[at], b1 = bytes[at + 1];
    let length = b1 & 0x7f;
    let head = 2;
    if (length === 126) {
      if (bytes.length - at < 4) break;
      length = (bytes[at + 2] << 8) | bytes[at + 3];
      head = 4;
    } else if (length === 127) {
      if (bytes.length - at < 10) break;
      length = Number(new DataView(bytes.buffer, bytes.byteOffset + at + 2, 8).getBigUint64(0));
      head = 10;
    }
    const masked = (b1 & 0x80) !== 0;
    const start = at + head + (masked ? 4 : 0);
    if (bytes.length < start + length) break;
    const opcode = b0 & 0x0f;
    closed = opcode === 0x8;
    if (echo || closed) {
      const out = new Uint8Array(head + length);
      out[0] = opcode === 0x9 ? (b0 & 0xf0) | 0xa : b0;
      out[1] = b1 & 0x7f;
      out.set(bytes.subarray(at + 2, at + head), 2);
      for (let i = 0; i < length; i++) {
        out[head + i] = masked ? bytes[start + i] ^ bytes[at + head + (i & 3)] : bytes[start + i];
      }
      parts.push(out);
    }
    at = start + length;
  }
  return { out: parts.length === 0 ? null : concatBytes(parts), used: at, closed };
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let at = 0;
  while (at < bytes.length) at += await conn.write(at === 0 ? bytes : bytes.subarray(at));
}

/** Reads the request head, answers the handshake, and starts the connection's reads. */
async function handshake(conn: Deno.Conn): Promise<void> {
  let head = new Uint8Array(1024);
  let length = 0;
  while (true) {
    const n = await conn.read(head.subarray(length));
    if (n === null) return conn.close();
    length += n;
    const text = decoder.decode(head.subarray(0, length));
    const end = text.indexOf("\r\n\r\n");
    if (end >= 0) {
      const key = /sec-websocket-key: *(\S+)/i.exec(text);
      if (key === null) return conn.close();
      await writeAll(conn, buildAcceptResponse(await acceptKey(key[1])));
      const echo = / \/echo[ ?]/.test(text.slice(0, text.indexOf("\r\n")));
      return new FloorConnection(conn, echo).read();
    }
    if (length === head.length) {
      const grown = new Uint8Array(head.length * 2);
      grown.set(head);
      head = grown;
    }
  }
}

/** Answers every connection `listener` accepts as the floor does, until it is closed. */
export async function serveFloor(listener: Deno.Listener): Promise<void> {
  for await (const conn of listener) {
    (conn as Deno.TcpConn).setNoDelay(true);
    handshake(conn).catch(() => conn.close());
  }
}

if (import.meta.main) {
  const options = parseReferenceArgs(Deno.args);
  Deno.serve(
    { hostname: options.hostname, port: options.httpPort, onListen: () => {} },
    () => Response.json({ error: "the floor server has no API" }, { status: 404 }),
  );
  await serveFloor(Deno.listen({ hostname: options.hostname, port: options.wsPort }));
}
