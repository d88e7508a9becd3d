/**
 * Presence in one process: the member table (a user's first connection joins, its last leaves,
 * info, the limit), and the hub's join/leave notices and refusals with recording subscribers.
 */
import { assertEquals, assertStrictEquals } from "@std/assert";
import { Hub } from "../../src/push/hub.ts";
import { MemoryBroker } from "../../src/push/memory_broker.ts";
import { ChannelPatterns } from "../../src/push/channel_patterns.ts";
import { memberOf, Presence, PresenceTable } from "../../src/push/presence.ts";
import { ANONYMOUS } from "../../src/push/client_auth.ts";
import { Metrics } from "../../src/metrics.ts";
import { Member } from "../support/subscribers.ts";

function presenceHub(patterns = ["room.*"], maxMembers = 100, metrics = new Metrics()) {
  const presence = new Presence({ patterns: ChannelPatterns.parse(patterns), maxMembers, metrics });
  const hub = new Hub(
    new MemoryBroker({ historySize: 10, historyBytes: 1 << 20 }),
    undefined,
    presence,
  );
  return { hub, presence, metrics };
}

Deno.test("PresenceTable: the first connection joins, the last leaves, counts between", () => {
  const table = new PresenceTable();
  assertEquals(table.add("room.1", "alice", '{"name":"Alice"}'), true);
  assertEquals(table.add("room.1", "alice", '{"name":"Other tab"}'), false);
  assertEquals(table.add("room.1", "bob"), true);
  assertEquals(table.members, 2);
  assertEquals(table.list("room.1"), [
    { user: "alice", connections: 2, info: { name: "Alice" } },
    { user: "bob", connections: 1 },
  ]);
  assertEquals(table.remove("room.1", "alice"), false);
  assertEquals(table.remove("room.1", "alice"), true);
  assertEquals(table.remove("room.1", "alice"), false, "not a member any more");
  assertEquals(table.remove("room.1", "bob"), true);
  assertEquals([table.members, table.count("room.1"), [...table.channels()]], [0, 0, []]);
});

Deno.test("memberOf: the token's sub and info; anon:<id> without a token or anonymous, @<instance> with Redis", () => {
  assertEquals(memberOf(new Member("alice", { a: 1 })), { user: "alice", info: '{"a":1}' });
  const bare = new Member(null);
  assertEquals(memberOf(bare), { user: `anon:${bare.id}` });
  assertEquals(memberOf({ id: 7, identity: ANONYMOUS }), { user: "anon:7" });
  assertEquals(memberOf({ id: 8 }), { user: "anon:8" });
  // Shared presence (Redis): anonymous names carry the instance, a token's sub does not.
  const instance = "0f32ac0d-5b1e-4c6a-9d0e-2a7f3c9b8e11";
  assertEquals(memberOf({ id: 8 }, instance), { user: "anon:8@0f32ac0d" });
  assertEquals(memberOf({ id: 7, identity: ANONYMOUS }, instance), { user: "anon:7@0f32ac0d" });
  assertEquals(memberOf(new Member("alice"), instance), { user: "alice" });
});

Deno.test("Hub: other subscribers get join and leave; the joiner gets no join of its own", () => {
  const { hub } = presenceHub();
  const bob = new Member("bob");
  hub.subscribe(bob, "room.1");
  const alice = new Member("alice", { name: "Alice" });
  hub.subscribe(alice, "room.1");
  assertEquals(bob.presence, [
    { notice: "join", channel: "room.1", user: "alice", info: { name: "Alice" } },
  ]);
  assertEquals(alice.presence, [], "its own join is not sent to it");
  // A second tab of alice: one member with two connections, no new join.
  const aliceTab = new Member("alice", { name: "Alice" });
  hub.subscribe(aliceTab, "room.1");
  assertEquals(bob.presence.length, 1);
  assertEquals(hub.presenceOf("room.1"), [
    { user: "bob", connections: 1 },
    { user: "alice", connections: 2, info: { name: "Alice" } },
  ]);
  hub.unsubscribe(alice, "room.1");
  assertEquals(bob.presence.length, 1, "alice still has a connection: no leave");
  hub.unsubscribeAll(aliceTab);
  assertEquals(bob.presence[1], { notice: "leave", channel: "room.1", user: "alice" });
  assertEquals(aliceTab.presence, [], "nobody of alice is left to hear its leave");
  assertEquals(hub.presenceOf("room.1"), [{ user: "bob", connections: 1 }]);
});

Deno.test("Hub: channels --presence does not match keep no presence and send no notices", () => {
  const { hub, presence } = presenceHub();
  const a = new Member("a");
  const b = new Member("b");
  hub.subscribe(a, "news");
  hub.subscribe(b, "news");
  assertEquals(a.presence, []);
  assertStrictEquals(hub.presenceOf("news"), null);
  assertEquals(presence.table.members, 0);
});

Deno.test("Hub: a new member beyond --max-presence is refused, a member's extra tab is not", () => {
  const { hub, metrics } = presenceHub(["room.*"], 2);
  const a = new Member("a");
  const b = new Member("b");
  assertEquals(hub.subscribe(a, "room.1"), true);
  assertEquals(hub.subscribe(b, "room.1"), true);
  const c = new Member("c");
  assertEquals(hub.subscribe(c, "room.1"), false);
  assertEquals(c.json, [{
    error: "Too many members in room.1: at most 2 users keep presence in one channel " +
      "(--max-presence).",
    channel: "room.1",
  }]);
  assertEquals(metrics.presenceRefused, 1);
  assertEquals(hub.subscriptionsOf(c).size, 0);
  assertEquals(a.presence.length, 1, "only b's join: the refused member never joined");
  // Another connection of a member is fine, and so is another channel.
  assertEquals(hub.subscribe(new Member("a"), "room.1"), true);
  assertEquals(hub.subscribe(c, "room.2"), true);
  // Once one leaves, there is room again.
  hub.unsubscribe(b, "room.1");
  assertEquals(hub.subscribe(c, "room.1"), true);
  assertEquals(metrics.presenceRefused, 1);
});

Deno.test("Hub: anonymous subscribers are members anon:<id>, one each", () => {
  const { hub } = presenceHub(["lobby"]);
  const watcher = new Member("watcher");
  hub.subscribe(watcher, "lobby");
  const x = new Member(null);
  hub.subscribe(x, "lobby");
  assertEquals(watcher.presence, [{ notice: "join", channel: "lobby", user: `anon:${x.id}` }]);
  hub.unsubscribeAll(x);
  assertEquals(watcher.presence[1], { notice: "leave", channel: "lobby", user: `anon:${x.id}` });
});

Deno.test("Hub: a relayed notice about a user skips that user's own joined connections", () => {
  // With Redis a join is decided in Redis and may arrive after the user's connection joined
  // (a second tab on another instance): it must not hear of itself.
  const { hub, presence } = presenceHub();
  const alice = new Member("alice");
  const bob = new Member("bob");
  hub.subscribe(alice, "room.1");
  hub.subscribe(bob, "room.1");
  alice.texts.length = 0;
  presence.notify({ notice: "join", channel: "room.1", user: "alice", info: '{"n":1}' });
  assertEquals(alice.presence, []);
  assertEquals(bob.presence.at(-1), {
    notice: "join",
    channel: "room.1",
    user: "alice",
    info: { n: 1 },
  });
});
