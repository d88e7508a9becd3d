/**
 * A raw Server-Sent Events reader for tests: `fetch` the stream and parse its body into events
 * with a bounded read loop (every wait has a deadline).
 *
 * @module
 */
import { withDeadline } from "./async.ts";

/** One parsed block of an event stream. */
export interface SseEvent {
  /** `event:` (absent for plain messages). */
  event?: string;
  /** `id:` as sent in this block (absent when the block had none). */
  id?: string;
  /** `data:` lines joined with "\n". */
  data?: string;
  /** `retry:`. */
  retry?: number;
  /** Comment lines (`: ping`), without the colon. */
  comments: string[];
}

/** An open event stream. */
export class SseClient implements AsyncDisposable {
  readonly response: Response;
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #decoder = new TextDecoder();
  #buffer = "";
  #ended = false;

  /** Wraps a 200 `text/event-stream` response. */
  constructor(response: Response) {
    this.response = response;
    this.#reader = response.body!.getReader();
  }

  /** Opens `url` (with `headers`); rejects unless the answer is a 200 event stream. */
  static async open(url: string, headers: Record<string, string> = {}): Promise<SseClient> {
    const response = await fetch(url, { headers });
    if (response.status !== 200) {
      throw new Error(`status ${response.status}: ${await response.text()}`);
    }
    return new SseClient(response);
  }

  /** The next block, within `ms`; rejects when the stream ended. */
  async next(ms = 5000): Promise<SseEvent> {
    return await withDeadline(this.#next(), ms, "next SSE event");
  }

  /** Blocks until one matches `test`; returns it (the others are skipped). */
  async nextWhere(test: (e: SseEvent) => boolean, ms = 5000): Promise<SseEvent> {
    return await withDeadline(
      (async () => {
        for (let i = 0; i < 100_000; i++) {
          const e = await this.#next();
          if (test(e)) return e;
        }
        throw new Error("no matching event in 100000");
      })(),
      ms,
      "matching SSE event",
    );
  }

  /** Resolves when the server ends the stream (an error or the end of the body). */
  async ended(ms = 10_000): Promise<void> {
    await withDeadline(
      (async () => {
        try {
          while (!(await this.#reader.read()).done);
        } catch {
          // Ended by an error: what a dropped stream looks like.
        }
      })(),
      ms,
      "SSE stream end",
    );
  }

  async #next(): Promise<SseEvent> {
    while (true) {
      const end = this.#buffer.indexOf("\n\n");
      if (end >= 0) {
        const block = this.#buffer.slice(0, end);
        this.#buffer = this.#buffer.slice(end + 2);
        return parseBlock(block);
      }
      if (this.#ended) throw new Error("the stream ended");
      const { value, done } = await this.#reader.read();
      if (done) this.#ended = true;
      else this.#buffer += this.#decoder.decode(value, { stream: true });
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.#reader.cancel().catch(() => {});
  }
}

function parseBlock(block: string): SseEvent {
  const e: SseEvent = { comments: [] };
  const data: string[] = [];
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) {
      e.comments.push(line.slice(1).trim());
      continue;
    }
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") e.event = value;
    else if (field === "id") e.id = value;
    else if (field === "data") data.push(value);
    else if (field === "retry") e.retry = Number(value);
  }
  if (data.length > 0) e.data = data.join("\n");
  return e;
}
