/**
 * Both brokers tell a client the same thing in the same situation: the same scenarios run
 * against a hub on the memory broker and a hub on the Redis broker (a real redis-server), and
 * the notices must be identical JSON apart from the epoch values.
 */
import { assertEquals } from "@std/assert";
import { Hub } from "../../src/push/hub.ts";
import { MemoryBroker } from "../../src/push/memory_broker.ts";
import { RedisBroker } from "../../src/push/redis_broker.ts";
import type { Broker, Position } from "../../src/push/broker.ts";
import { parseRedisUrl } from "../../src/redis/url.ts";
import { Logger } from "../../src/log.ts";
import { startRedisServer } from "../support/redis_server.ts";
import { withDeadline } from "../support/async.ts";
import { Paced, Recorder, text, until } from "../support/subscribers.ts";

const HISTORY = 20;

type Client = Recorder | Paced;

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
  await until(
    "the subscribed notice",
    () => client.notices.some((n) => n.notice === "subscribed"),
  );
  await until(`id ${last}`, () => last === 0 || client.ids.at(-1) === last);
}

/** The scenarios, each against a hub of its own (Redis ids start above every channel's). */
const scenarios: Record<string, (hub: Hub) => Promise<Seen>> = {
  async fresh(hub) {
    const epoch = await publishN(hub, "fresh", 3);
    const client = new Recorder();
    await join(hub, client, "fresh", 0);
    return seen(client, epoch);
  },
  async recovered(hub) {
    const epoch = await publishN(hub, "recovered", 5);
    const client = new Recorder();
    await join(hub, client, "recovered", 5, { epoch, id: 2 });
    return seen(client, epoch);
  },
  async gap(hub) {
    const epoch = await publishN(hub, "gap", 30); // history keeps 11..30
    const client = new Recorder();
    await join(hub, client, "gap", 0, { epoch, id: 2 });
    return seen(client, epoch);
  },
  async stale(hub) {
    const epoch = await publishN(hub, "stale", 1);
    const client = new Recorder();
    await join(hub, client, "stale", 0, { epoch: "elsewhere", id: 1 });
    return seen(client, epoch);
  },
  async paced(hub) {
    // 15 KB through a 4 KiB queue, at most half of it at a time.
    const epoch = await publishN(hub, "paced", 15, 1_000);
    const client = new Paced(4 * 1024);
    hub.subscribe(client, "paced", { epoch, id: 0 });
    await until("all 15", () => client.ids.at(-1) === 15, () => client.write());
    return seen(client, epoch);
  },
  async evicted(hub) {
    // Paced (one ~1 KB frame fills the 2 KiB replay budget), and history evicts what the
    // replay has not reached yet while it waits for its writer: a lost notice, then live.
    const epoch = await publishN(hub, "evicted", 15, 1_000);
    const client = new Paced(4 * 1024);
    const watcher = new Recorder(); // a live subscriber: once it has id 45, so has the replay
    await join(hub, watcher, "evicted", 0);
    hub.subscribe(client, "evicted", { epoch, id: 0 });
    await until("the first frames queued", () => client.queuedBytes > 0);
    await publishN(hub, "evicted", 30, 1_000); // ids 16..45; history keeps 26..45
    await until("id 45", () => watcher.ids.at(-1) === 45);
    await until(
      "the lost notice",
      () => client.notices.some((n) => n.notice === "lost"),
      () => client.write(),
    );
    await hub.publish("evicted", text(10));
    await until("id 46", () => client.ids.at(-1) === 46, () => client.write());
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
    await withDeadline(ready, 10_000, "Redis to connect");
    return broker;
  });
  assertEquals(viaRedis, memory);
  assertEquals(memory, expected);
});
