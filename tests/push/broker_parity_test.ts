/**
 * Both brokers tell a client the same thing in the same situation: the same scenarios run
 * against a hub on the memory broker and a hub on the Redis broker (a real redis-server), and
 * the notices must be identical JSON apart from the epoch values.
 */
import { assertEquals } from "@std/assert";
import { Hub } from "../../src/push/hub.ts";
import { MemoryBroker } from "../../src/push/memory_broker.ts";
import { RedisBroker } from "../../src/push/redis_broker.ts";
import type { Broker, Position, Publication } from "../../src/push/broker.ts";
import type { Subscriber } from "../../src/push/subscriptions.ts";
import { MessageReader } from "../../src/protocol/message.ts";
import { parseRedisUrl } from "../../src/redis/url.ts";
import { Logger } from "../../src/log.ts";
import { deadline, startRedisServer } from "../support/redis_server.ts";

const HISTORY = 20;

/**
 * A client with a bounded queue that its "writer" drains only when the test says so; it
 * records notices (as JSON) and the ids of publications it read.
 */
class Client implements Subscriber {
  static #next = 1;
  readonly id = Client.#next++;
  readonly maxQueueBytes: number;
  queuedBytes = 0;
  notices: Record<string, unknown>[] = [];
  ids: number[] = [];
  #queue: Uint8Array[] = [];
  #drained: (() => void) | null = null;
  #changed: (() => void) | null = null;
  #reader = new MessageReader({ role: "client", maxMessageBytes: 1 << 20 }, (e) => {
    if (e.type === "text") this.ids.push(JSON.parse(e.data).id);
  });
  constructor(maxQueueBytes = Infinity) {
    this.maxQueueBytes = maxQueueBytes;
  }
  sendFrame(frame: Uint8Array): boolean {
    this.#queue.push(frame);
    this.queuedBytes += frame.length;
    // An unbounded client writes at once, like an idle writer.
    if (this.maxQueueBytes === Infinity) this.write();
    this.#changed?.();
    return true;
  }
  sendText(text: string): boolean {
    this.notices.push(JSON.parse(text));
    this.#changed?.();
    return true;
  }
  onDrain(callback: () => void): void {
    this.#drained = callback;
  }
  /** Writes everything queued, then calls the drain callback. */
  write(): void {
    for (const frame of this.#queue.splice(0)) this.#reader.push(frame);
    this.queuedBytes = 0;
    const callback = this.#drained;
    this.#drained = null;
    callback?.();
  }
  /** Resolves once `check` holds (at once with the memory broker), writing whenever asked. */
  async until(what: string, check: () => boolean, writing = false): Promise<void> {
    const end = performance.now() + 10_000;
    while (true) {
      if (writing) this.write();
      if (check()) return;
      if (performance.now() > end) {
        throw new Error(
          `timed out waiting for ${what}: ${JSON.stringify(this.notices)} ${this.ids}`,
        );
      }
      await new Promise<void>((resolve) => {
        this.#changed = resolve;
        setTimeout(resolve, 20); // a write may be due even when nothing new arrived
      });
      this.#changed = null;
    }
  }
}

const text = (n: number): Publication => ({ kind: "text", text: "x".repeat(n) });

/** What one scenario showed the client: notices with epochs replaced, and the ids it read. */
interface Seen {
  notices: Record<string, unknown>[];
  ids: number[];
}

async function publishN(hub: Hub, channel: string, n: number, size = 10): Promise<string> {
  let epoch = "";
  for (let i = 0; i < n; i++) epoch = (await hub.publish(channel, text(size))).epoch;
  return epoch;
}

function seen(client: Client, epoch: string): Seen {
  const notices = client.notices.map((n) =>
    JSON.parse(JSON.stringify(n).replaceAll(epoch, "EPOCH"))
  );
  return { notices, ids: client.ids };
}

/** Subscribes and waits until the `subscribed` notice and the ids up to `last` arrived. */
async function join(hub: Hub, client: Client, channel: string, last: number, since?: Position) {
  hub.subscribe(client, channel, since);
  await client.until(
    "the subscribed notice",
    () => client.notices.some((n) => n.notice === "subscribed"),
  );
  await client.until(`id ${last}`, () => last === 0 || client.ids.at(-1) === last, true);
}

/** The scenarios, each against a hub of its own (Redis ids start above every channel's). */
const scenarios: Record<string, (hub: Hub) => Promise<Seen>> = {
  async fresh(hub) {
    const epoch = await publishN(hub, "fresh", 3);
    const client = new Client();
    await join(hub, client, "fresh", 0);
    return seen(client, epoch);
  },
  async recovered(hub) {
    const epoch = await publishN(hub, "recovered", 5);
    const client = new Client();
    await join(hub, client, "recovered", 5, { epoch, id: 2 });
    return seen(client, epoch);
  },
  async gap(hub) {
    const epoch = await publishN(hub, "gap", 30); // history keeps 11..30
    const client = new Client();
    await join(hub, client, "gap", 0, { epoch, id: 2 });
    return seen(client, epoch);
  },
  async stale(hub) {
    const epoch = await publishN(hub, "stale", 1);
    const client = new Client();
    await join(hub, client, "stale", 0, { epoch: "elsewhere", id: 1 });
    return seen(client, epoch);
  },
  async paced(hub) {
    // 15 KB through a 4 KiB queue, at most half of it at a time.
    const epoch = await publishN(hub, "paced", 15, 1_000);
    const client = new Client(4 * 1024);
    hub.subscribe(client, "paced", { epoch, id: 0 });
    await client.until("all 15", () => client.ids.at(-1) === 15, true);
    return seen(client, epoch);
  },
  async evicted(hub) {
    // Paced (one ~1 KB frame fills the 2 KiB replay budget), and history evicts what the
    // replay has not reached yet while it waits for its writer: a lost notice, then live.
    const epoch = await publishN(hub, "evicted", 15, 1_000);
    const client = new Client(4 * 1024);
    const watcher = new Client(); // a live subscriber: once it has id 45, so has the replay
    await join(hub, watcher, "evicted", 0);
    hub.subscribe(client, "evicted", { epoch, id: 0 });
    await client.until("the first frames queued", () => client.queuedBytes > 0);
    await publishN(hub, "evicted", 30, 1_000); // ids 16..45; history keeps 26..45
    await watcher.until("id 45", () => watcher.ids.at(-1) === 45);
    await client.until(
      "the lost notice",
      () => client.notices.some((n) => n.notice === "lost"),
      true,
    );
    await hub.publish("evicted", text(10));
    await client.until("id 46", () => client.ids.at(-1) === 46, true);
    return seen(client, epoch);
  },
};

/** What both must show (also pins the one wording of each reason). */
const expected: Record<string, Seen> = {
  fresh: { notices: [{ notice: "subscribed", channel: "fresh", epoch: "EPOCH", id: 3 }], ids: [] },
  recovered: {
    notices: [{
      notice: "subscribed",
      channel: "recovered",
      epoch: "EPOCH",
      id: 5,
      recovered: true,
    }],
    ids: [3, 4, 5],
  },
  gap: {
    notices: [
      {
        notice: "lost",
        channel: "gap",
        epoch: "EPOCH",
        id: 30,
        reason: "history holds ids 11..30; 8 message(s) after 2 are gone",
      },
      { notice: "subscribed", channel: "gap", epoch: "EPOCH", id: 30, recovered: false },
    ],
    ids: [],
  },
  stale: {
    notices: [
      {
        notice: "lost",
        channel: "stale",
        epoch: "EPOCH",
        id: 1,
        reason: "epoch elsewhere belongs to another history than the current EPOCH " +
          "(server restarted or history reset)",
      },
      { notice: "subscribed", channel: "stale", epoch: "EPOCH", id: 1, recovered: false },
    ],
    ids: [],
  },
  paced: {
    notices: [{ notice: "subscribed", channel: "paced", epoch: "EPOCH", id: 15, recovered: true }],
    ids: Array.from({ length: 15 }, (_, i) => i + 1),
  },
  evicted: {
    notices: [
      { notice: "subscribed", channel: "evicted", epoch: "EPOCH", id: 15, recovered: true },
      {
        notice: "lost",
        channel: "evicted",
        epoch: "EPOCH",
        id: 45,
        reason: "history holds ids 26..45; 24 message(s) after 1 are gone",
      },
    ],
    ids: [1, 46],
  },
};

/** Runs every scenario on a new broker from `make`. */
async function run(make: (n: number) => Promise<Broker>): Promise<Record<string, Seen>> {
  const out: Record<string, Seen> = {};
  let n = 0;
  for (const [name, scenario] of Object.entries(scenarios)) {
    const hub = new Hub(await make(n++), new Logger("silent"));
    try {
      out[name] = await scenario(hub);
    } finally {
      await hub.close();
    }
  }
  return out;
}

Deno.test("the memory and the Redis broker give the same notices in the same situations", async () => {
  const memory = await run(() =>
    Promise.resolve(new MemoryBroker({ historySize: HISTORY, historyBytes: 1 << 30 }))
  );
  await using redis = await startRedisServer();
  const viaRedis = await run(async (n) => {
    const broker = new RedisBroker({
      redis: parseRedisUrl(redis.url),
      historySize: HISTORY,
      prefix: `s${n}:`, // a dataset of its own: ids and the floor start afresh
      logger: new Logger("silent"),
    });
    const ready = broker.ready();
    broker.start();
    await deadline(ready, 10_000, "Redis to connect");
    return broker;
  });
  assertEquals(viaRedis, memory);
  assertEquals(memory, expected);
});
