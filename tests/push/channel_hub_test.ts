/**
 * What the endpoints parse: channel names and resume positions.
 */
import { assert, assertEquals } from "@std/assert";
import { isValidChannelName, parsePosition } from "../../src/push/channel_hub.ts";

Deno.test("channel names and positions are validated", () => {
  for (const ok of ["news", "a", "A.b-c_9", "x".repeat(64)]) assert(isValidChannelName(ok), ok);
  for (const bad of ["", "x".repeat(65), "a b", "a:b", "a,b", "é", "a/b"]) {
    assert(!isValidChannelName(bad), bad);
  }
  assertEquals(parsePosition("k3x9:42"), { epoch: "k3x9", id: 42 });
  for (const bad of ["k3x9", ":1", "k3x9:", "k3x9:-1", "k3x9:1.5", "a b:1"]) {
    assertEquals(parsePosition(bad), null);
  }
});
