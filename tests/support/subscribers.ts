/**
 * Subscribers for engine tests: one that records everything it is sent, one whose queue drains
 * only when the test says so, and a hub on a memory broker.
 */
import { Hub } from "../../src/push/hub.ts";
import { MemoryBroker, type MemoryBrokerOptions } from "../../src/push/memory_broker.ts";
import type { Subscriber } from "../../src/push/subscriptions.ts";
import { MessageReader } from "../../src/protocol/message.ts";
import type { Identity } from "../../src/push/auth.ts";
import { ChannelPatterns } from "../../src/push/channel_patterns.ts";

/** The in-process engine: a hub on a memory broker. */
export function memoryHub(options: MemoryBrokerOptions): Hub<MemoryBroker> {
  return new Hub(new MemoryBroker(options));
}

/** A subscriber that records what it was sent, decoding frames back to text. */
export class Recorder implements Subscriber {
  static #next = 1;
  readonly id = Recorder.#next++;
  frames: Uint8Array[] = [];
  texts: string[] = [];
  #reader = new MessageReader({ role: "client", maxMessageBytes: 1 << 20 }, (e) => {
    if (e.type === "text") this.texts.push(e.data);
  });
  sendFrame(frame: Uint8Array): boolean {
    this.frames.push(frame);
    this.#reader.push(frame);
    return true;
  }
  sendText(text: string): boolean {
    this.texts.push(text);
    return true;
  }
  get json(): Record<string, unknown>[] {
    return this.texts.map((t) => JSON.parse(t));
  }
  /** The notices it got. */
  get notices(): Record<string, unknown>[] {
    return this.json.filter((m) => "notice" in m);
  }
  /** The ids of the publications it got. */
  get ids(): number[] {
    return this.json.filter((m) => "data" in m).map((m) => m.id as number);
  }
  // A queue that never fills: it drains as fast as anything is sent.
  readonly queuedBytes = 0;
  readonly maxQueueBytes = Infinity;
  onDrain(): void {}
}

/** A recording subscriber that is `user` (with `info` as its claim). */
export class Member extends Recorder {
  readonly identity: Identity | null;
  constructor(user: string | null, info?: Record<string, unknown>) {
    super();
    this.identity = user === null ? null : {
      user,
      expiresAt: Infinity,
      channels: ChannelPatterns.NONE,
      publish: ChannelPatterns.NONE,
      ...(info ? { info: JSON.stringify(info) } : {}),
    };
  }
  /** Its presence notices. */
  get presence(): Record<string, unknown>[] {
    return this.notices.filter((n) => n.notice === "join" || n.notice === "leave");
  }
}

/** A subscriber with a bounded queue that drains only when the test says so (its writer). */
export class Paced implements Subscriber {
  static #next = 500_000;
  readonly id = Paced.#next++;
  readonly maxQueueBytes: number;
  queuedBytes = 0;
  closed = false;
  ids: number[] = [];
  texts: string[] = [];
  #queue: Uint8Array[] = [];
  #drained: (() => void) | null = null;
  #reader = new MessageReader({ role: "client", maxMessageBytes: 1 << 20 }, (e) => {
    if (e.type === "text") this.ids.push(JSON.parse(e.data).id);
  });
  constructor(maxQueueBytes: number) {
    this.maxQueueBytes = maxQueueBytes;
  }
  sendFrame(frame: Uint8Array): boolean {
    if (this.closed) return false;
    if (this.queuedBytes + frame.length > this.maxQueueBytes) return !(this.closed = true);
    this.#queue.push(frame);
    this.queuedBytes += frame.length;
    return true;
  }
  sendText(text: string): boolean {
    this.texts.push(text);
    return true;
  }
  /** The notices it got. */
  get notices(): Record<string, unknown>[] {
    return this.texts.map((t) => JSON.parse(t));
  }
  onDrain(callback: () => void): void {
    this.#drained = callback;
  }
  /** The writer writes everything queued, then calls the drain callback. Whether any waited. */
  write(): boolean {
    const wrote = this.#queue.length > 0;
    for (const frame of this.#queue.splice(0)) this.#reader.push(frame);
    this.queuedBytes = 0;
    const callback = this.#drained;
    this.#drained = null;
    callback?.();
    return wrote;
  }
}

/** A text publication of `n` bytes. */
export const text = (n: number) => ({ kind: "text" as const, text: "x".repeat(n) });

/**
 * Resolves once `check` holds — at once when the engine answered synchronously (the memory
 * broker) — calling `write` (a paced client's writer) before each look. Polls, bounded: a
 * Redis-backed engine answers after replies this test cannot await directly.
 */
export async function until(what: string, check: () => boolean, write?: () => void) {
  const end = performance.now() + 10_000;
  while (true) {
    write?.();
    if (check()) return;
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
