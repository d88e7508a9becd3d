/**
 * A way to let the runtime's I/O driver run: one byte sent through a loopback TCP pair, and the
 * promise resolves when it has come back. A read that is not ready yet is the one kind of wait
 * that makes Deno's event loop go idle and poll every socket's readiness; a timer or a resolved
 * promise does not. The server's write window pauses on it now and then (see `write_pool.ts`).
 *
 * @module
 */
import type { WritePool } from "./write_pool.ts";

/** A connected loopback pair: write on one end, read it back on the other. */
export class IoYield {
  readonly #send: Deno.Conn;
  readonly #receive: Deno.Conn;
  readonly #byte = new Uint8Array(1);
  readonly #sink = new Uint8Array(16);

  private constructor(send: Deno.Conn, receive: Deno.Conn) {
    this.#send = send;
    this.#receive = receive;
  }

  /** Opens the pair on 127.0.0.1 (two sockets; the listener is closed once they are paired). */
  static async open(): Promise<IoYield> {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    try {
      const port = (listener.addr as Deno.NetAddr).port;
      const [send, receive] = await Promise.all([
        Deno.connect({ hostname: "127.0.0.1", port }),
        listener.accept(),
      ]);
      send.setNoDelay(true);
      return new IoYield(send, receive);
    } finally {
      listener.close();
    }
  }

  /** Resolves once the byte sent now has been read back; rejects when the pair is closed. */
  readonly pass = async (): Promise<void> => {
    await this.#send.write(this.#byte);
    if (await this.#receive.read(this.#sink) === null) throw new Error("yield pair closed");
  };

  /** Closes both ends (a pending pass rejects or resolves; either way the pool goes on). */
  close(): void {
    for (const conn of [this.#send, this.#receive]) {
      try {
        conn.close();
      } catch {
        // Closed already.
      }
    }
  }
}

/**
 * Makes `pool` pause on an {@linkcode IoYield} pair, opened in the background (until it is open
 * the pool does not pause; if it cannot be opened, it never does). Returns what stops it: the
 * pair and the pool's watchdog are closed (server shutdown).
 */
export function yieldToIo(pool: WritePool): () => void {
  let pair: IoYield | null = null;
  let stopped = false;
  IoYield.open().then((opened) => {
    if (stopped) return opened.close();
    pair = opened;
    pool.yieldWith(opened.pass);
  }, () => {});
  return () => {
    stopped = true;
    pair?.close();
    pool.close();
  };
}
