/**
 * Local subscriptions: the per-subscriber channel index.
 */
import { assertEquals } from "@std/assert";
import { SubscriptionIndex } from "../../src/push/subscriptions.ts";

Deno.test("SubscriptionIndex keeps one, several and no channels per subscriber", () => {
  const index = new SubscriptionIndex();
  const a = {} as never, b = {} as never;
  assertEquals([...index.of(a)], []);
  assertEquals(index.add(a, "x"), true);
  assertEquals(index.add(a, "x"), false);
  assertEquals([...index.of(a)], ["x"]);
  assertEquals(index.add(a, "y"), true);
  assertEquals(index.add(a, "y"), false);
  assertEquals(index.add(b, "y"), true);
  assertEquals([...index.of(a)].sort(), ["x", "y"]);
  assertEquals(index.list(a).sort(), ["x", "y"]);
  assertEquals([index.has(a, "x"), index.has(a, "z"), index.has(b, "y"), index.has(b, "x")], [
    true,
    false,
    true,
    false,
  ]);
  assertEquals(index.remove(a, "z"), false);
  assertEquals(index.remove(b, "x"), false);
  assertEquals(index.remove(a, "x"), true);
  assertEquals([...index.of(a)], ["y"]);
  assertEquals(index.remove(a, "y"), true);
  assertEquals(index.remove(a, "y"), false);
  assertEquals([...index.of(a)], []);
  assertEquals([...index.of(b)], ["y"]);
  assertEquals(index.remove(b, "y"), true);
  assertEquals([...index.of(b)], []);
  assertEquals([index.list(b), index.has(b, "y")], [[], false]);
});
