import { assert, assertEquals } from "@std/assert";
import { ReadBufferPool } from "../../src/net/read_buffers.ts";

Deno.test("ReadBufferPool hands out disjoint slots of shared slabs and takes them back", () => {
  const pool = new ReadBufferPool(1024);
  assertEquals(pool.slabs, 0);
  const slots = Array.from({ length: 65 }, () => pool.take());
  assertEquals(pool.slabs, 2, "64 slots of 1 KiB per 64 KiB slab");
  for (const slot of slots) assertEquals(slot.length, 1024);
  // Disjoint: writing each slot's index into all of it leaves every other slot intact.
  slots.forEach((slot, i) => slot.fill(i % 256));
  slots.forEach((slot, i) => assert(slot.every((b) => b === i % 256), `slot ${i} intact`));
  assertEquals(slots[0].buffer, slots[63].buffer, "cut from one slab");
  assert(slots[0].buffer !== slots[64].buffer);
  const free = pool.free;
  pool.give(slots[5]);
  assertEquals(pool.free, free + 1);
  assert(pool.take() === slots[5], "a given-back slot is reused before a new slab is made");
  assertEquals(pool.slabs, 2);
});

Deno.test("connections give their read slots back: after large messages, closes and drops", async () => {
  const { readBuffers } = await import("../../src/net/read_buffers.ts");
  const { startTestServer } = await import("../support/server.ts");
  const { TestSocket } = await import("../support/ws_client.ts");
  await using server = await startTestServer();
  // Warm the pool so the count below compares like with like.
  await using warm = new TestSocket(`${server.wsUrl}/echo`);
  await warm.opened;
  const freeBefore = readBuffers.free;
  const sockets = Array.from({ length: 20 }, () => new TestSocket(`${server.wsUrl}/echo`));
  await Promise.all(sockets.map((s) => s.opened));
  assertEquals(readBuffers.free, freeBefore - 20, "one slot per open connection");
  const connections = [...server.ws.clients].slice(1); // the first is the warm-up socket's
  // A large message grows one connection's buffer (its slot goes back), a small one after it
  // takes a slot again; the echoes prove the bytes were read whole.
  const big = "x".repeat(200_000);
  sockets[0].socket.send(big);
  assertEquals(await sockets[0].next(), big);
  sockets[0].socket.send("ok");
  assertEquals(await sockets[0].next(), "ok");
  for (const s of sockets.slice(0, 10)) s.socket.close(); // closing handshakes
  for (const s of sockets.slice(10)) s.socket.close(1000);
  await Promise.all(sockets.map((s) => s.closed));
  await Promise.all(connections.map((c) => c.finished));
  assertEquals(readBuffers.free, freeBefore, "every slot is back");
});
