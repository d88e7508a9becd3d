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

Deno.test("ReadBufferPool releases slabs once emptied, keeping one spare", () => {
  const pool = new ReadBufferPool(1024); // 64 slots per slab
  const slots = Array.from({ length: 64 * 3 }, () => pool.take());
  assertEquals([pool.slabs, pool.bytes], [3, 3 * 65536]);
  // A burst leaves in any order: give back every other slot first, then the rest.
  for (let i = 0; i < slots.length; i += 2) pool.give(slots[i]);
  assertEquals(pool.slabs, 3, "no slab is empty yet");
  for (let i = 1; i < slots.length; i += 2) pool.give(slots[i]);
  assertEquals([pool.slabs, pool.free], [1, 64], "the emptied slabs went, one stays as a spare");
  // The spare serves the next clients without a new slab; its slots are still whole and disjoint.
  const again = Array.from({ length: 64 }, () => pool.take());
  assertEquals(pool.slabs, 1);
  assertEquals(new Set(again.map((s) => s.byteOffset)).size, 64);
  assert(again.every((s) => s.length === 1024));
  // Churn at a slab's edge keeps the one slab rather than cutting and dropping it each time.
  for (const s of again) pool.give(s);
  for (let i = 0; i < 10; i++) pool.give(pool.take());
  assertEquals(pool.slabs, 1);
});
