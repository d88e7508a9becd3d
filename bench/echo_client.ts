/**
 * The echo scenario's connection: a closed loop of request/response round trips on `/echo`.
 * Each client sends one small text message, waits for it to come back, and sends the next, so
 * round trips/s measure the server's per-message cost (read, unmask, decode, frame, write)
 * rather than its broadcast loop.
 *
 * The message is shaped like a broadcast (`{"id":N,"data":{"ts":T,…}}`) so the load client's
 * {@linkcode FrameScanner} reads its id (checked for order, as in fan-out) and the time it was
 * written (the round trip's latency) without decoding it.
 *
 * @module
 */
import { BenchClient, clock, type Tally } from "./bench_client.ts";
import { writeAll } from "./ws_handshake.ts";

const encoder = new TextEncoder();

/**
 * The text of round trip `id`: exactly `size` bytes (at least the unpadded JSON), at most 125
 * so the frame has the short header.
 */
export function echoText(id: number, ts: number, size: number): string {
  const head = `{"id":${id},"data":{"ts":${ts.toFixed(3)},"p":"`;
  return head + "x".repeat(Math.max(0, size - head.length - 3)) + `"}}`;
}

/** One `/echo` connection that keeps one message in flight until its `limit`-th id. */
export class EchoClient extends BenchClient {
  /** Send the next message after each echo up to this id. */
  limit = 0;
  /** Payload size in bytes (≤ 125). */
  size = 64;
  /**
   * One masking key per connection, not per frame: RFC 6455 asks clients for unpredictable
   * keys to protect proxies, which a loopback benchmark has none of, and a fresh random key per
   * frame would be load-client CPU the server is not measured by.
   */
  readonly #mask = crypto.getRandomValues(new Uint8Array(4));

  constructor(conn: Deno.TcpConn, buffer: Uint8Array, tally: Tally) {
    super(conn, buffer, tally);
  }

  /** Counts the echo like a delivery (order, latency), then sends the next message. */
  override onText(id: number, ts: number, length: number, seq: number, compressed = false): void {
    super.onText(id, ts, length, seq, compressed);
    if (id >= 0 && id < this.limit && !this.stopping) this.sendMessage(id + 1);
  }

  /** Sends round trip `id`, stamped with the clock right before the write. */
  sendMessage(id: number): void {
    const payload = encoder.encode(echoText(id, clock(), this.size));
    const frame = new Uint8Array(6 + payload.length);
    frame[0] = 0x81; // FIN + text
    frame[1] = 0x80 | payload.length;
    const mask = this.#mask;
    frame.set(mask, 2);
    for (let i = 0; i < payload.length; i++) frame[6 + i] = payload[i] ^ mask[i & 3];
    // Direct write: one message is in flight per client, so writes cannot interleave.
    writeAll(this.conn, frame).catch(() => {});
  }
}
