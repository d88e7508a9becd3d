/**
 * The client side of the opening handshake and the few frames the load client sends, written
 * here rather than imported from `src/` so a bug in our server's protocol code cannot hide
 * behind the same bug in its client.
 *
 * @module
 */

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const encoder = new TextEncoder();
const latin1 = new TextDecoder("latin1");

/** A `Sec-WebSocket-Key` and the `Sec-WebSocket-Accept` the server must answer with. */
export interface HandshakeKey {
  /** 16 random bytes in base64. */
  key: string;
  /** base64(SHA-1(key + GUID)). */
  accept: string;
}

/**
 * Makes `count` keys with their expected accept values. SHA-1 costs ~34 µs, so this runs before
 * the timed connect phase: the client still verifies every answer, but its hashing is not
 * counted against the server's handshake rate.
 */
export async function makeKeys(count: number): Promise<HandshakeKey[]> {
  const keys: HandshakeKey[] = [];
  for (let start = 0; start < count; start += 1000) {
    const batch = Array.from({ length: Math.min(1000, count - start) }, async () => {
      const key = crypto.getRandomValues(new Uint8Array(16)).toBase64();
      const digest = await crypto.subtle.digest("SHA-1", encoder.encode(key + GUID));
      return { key, accept: new Uint8Array(digest).toBase64() };
    });
    keys.push(...await Promise.all(batch));
  }
  return keys;
}

/** An open WebSocket connection and the frame bytes that arrived with the 101 response. */
export interface OpenedSocket {
  /** The connection, past the handshake. */
  conn: Deno.TcpConn;
  /** Where the first frame bytes start in the buffer passed to {@linkcode openWebSocket}. */
  start: number;
  /** Where they end (start === end: none). */
  end: number;
}

/**
 * Connects to `127.0.0.1:port`, sends an upgrade request for `target` and checks the answer:
 * status 101 and the right `Sec-WebSocket-Accept`. The response is read into `buffer` (at least
 * 1 KiB); bytes after its head are frames and are left in `buffer[start..end)`.
 */
export async function openWebSocket(
  port: number,
  target: string,
  key: HandshakeKey,
  buffer: Uint8Array,
  extensions?: string,
): Promise<OpenedSocket> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    conn.setNoDelay(true);
    const request = `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n` +
      `Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key.key}\r\n` +
      `Sec-WebSocket-Version: 13\r\n` +
      (extensions ? `Sec-WebSocket-Extensions: ${extensions}\r\n` : "") + "\r\n";
    await writeAll(conn, encoder.encode(request));
    let length = 0;
    while (true) {
      if (length === buffer.length) throw new Error("The handshake response head is too large.");
      const n = await conn.read(buffer.subarray(length));
      if (n === null) throw new Error("The server closed the connection during the handshake.");
      const from = Math.max(0, length - 3);
      length += n;
      const end = headerEnd(buffer, from, length);
      if (end < 0) continue;
      checkResponse(latin1.decode(buffer.subarray(0, end)), key.accept, extensions);
      return { conn, start: end, end: length };
    }
  } catch (err) {
    conn.close();
    throw err;
  }
}

function headerEnd(b: Uint8Array, from: number, length: number): number {
  for (let i = from; i + 3 < length; i++) {
    if (b[i] === 13 && b[i + 1] === 10 && b[i + 2] === 13 && b[i + 3] === 10) return i + 4;
  }
  return -1;
}

function checkResponse(head: string, accept: string, extensions?: string): void {
  const lines = head.split("\r\n");
  if (!/^HTTP\/1\.1 101 /.test(lines[0])) {
    throw new Error(`The server refused the upgrade: ${lines[0]}`);
  }
  const line = lines.find((l) => /^sec-websocket-accept:/i.test(l));
  const got = line?.slice(line.indexOf(":") + 1).trim();
  if (got !== accept) throw new Error(`Wrong Sec-WebSocket-Accept: ${got}, expected ${accept}.`);
  // Offered permessage-deflate: the benchmark measures it, so the server must have agreed.
  if (
    extensions && !lines.some((l) => /^sec-websocket-extensions:\s*permessage-deflate/i.test(l))
  ) {
    throw new Error("The server did not agree to permessage-deflate.");
  }
}

/** Writes all of `bytes` (`Deno.Conn.write` may write part of them). */
export async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let at = 0;
  while (at < bytes.length) at += await conn.write(at === 0 ? bytes : bytes.subarray(at));
}

/** Encodes a masked client frame (FIN set) with a fresh random mask (§5.3). */
export function maskedFrame(opcode: number, payload: Uint8Array): Uint8Array {
  if (payload.length > 125) throw new Error("Only control-sized frames are needed here.");
  const out = new Uint8Array(6 + payload.length);
  out[0] = 0x80 | opcode;
  out[1] = 0x80 | payload.length;
  const mask = crypto.getRandomValues(out.subarray(2, 6));
  for (let i = 0; i < payload.length; i++) out[6 + i] = payload[i] ^ mask[i & 3];
  return out;
}

/** A masked close frame with `code`. */
export function closeFrame(code: number): Uint8Array {
  return maskedFrame(8, new Uint8Array([code >> 8, code & 0xff]));
}
