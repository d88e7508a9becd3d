/**
 * Helpers around Deno's own `WebSocket` client: await open, messages and close as promises.
 *
 * @module
 */

/** A browser-style WebSocket with its messages queued and its close awaited. */
export class TestSocket implements AsyncDisposable {
  readonly socket: WebSocket;
  readonly opened: Promise<void>;
  readonly closed: Promise<CloseEvent>;
  #messages: (string | ArrayBuffer)[] = [];
  #waiter: (() => void) | null = null;

  /** Opens `url`. */
  constructor(url: string) {
    this.socket = new WebSocket(url);
    this.socket.binaryType = "arraybuffer";
    this.opened = new Promise((resolve, reject) => {
      this.socket.addEventListener("open", () => resolve(), { once: true });
      this.socket.addEventListener("error", () => reject(new Error(`cannot open ${url}`)), {
        once: true,
      });
    });
    this.closed = new Promise((resolve) =>
      this.socket.addEventListener("close", resolve, { once: true })
    );
    this.socket.addEventListener("message", (e) => {
      this.#messages.push(e.data);
      this.#waiter?.();
    });
    this.closed.then(() => this.#waiter?.());
  }

  /** The next message; rejects if the socket closes first. */
  async next(): Promise<string | ArrayBuffer> {
    while (this.#messages.length === 0) {
      if (this.socket.readyState === WebSocket.CLOSED) {
        throw new Error("socket closed while waiting for a message");
      }
      await new Promise<void>((resolve) => this.#waiter = resolve);
      this.#waiter = null;
    }
    return this.#messages.shift()!;
  }

  /** The next message that is a string matching `pattern` (others are skipped). */
  async nextMatching(pattern: RegExp): Promise<string> {
    while (true) {
      const message = await this.next();
      if (typeof message === "string" && pattern.test(message)) return message;
    }
  }

  /** Closes (if still open) and waits for the close event. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.socket.readyState === WebSocket.CONNECTING) await this.opened.catch(() => {});
    if (this.socket.readyState === WebSocket.OPEN) this.socket.close();
    await this.closed;
  }
}
