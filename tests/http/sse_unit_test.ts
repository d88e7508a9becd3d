/** The pure parts of `src/http/sse.ts`: frame payloads of every header size, `since` lists. */
import { assertEquals } from "@std/assert";
import { framePayload, parseSinceList } from "../../src/http/sse.ts";
import { encodeTextFrame } from "../../src/protocol/frame_encoder.ts";

Deno.test("framePayload strips 2-, 4- and 10-byte frame headers", () => {
  for (const size of [0, 125, 126, 300, 65_535, 65_536, 70_000]) {
    const text = "y".repeat(size);
    assertEquals(new TextDecoder().decode(framePayload(encodeTextFrame(text))), text);
  }
});

Deno.test("parseSinceList reads NAME:EPOCH:ID items and ignores malformed ones", () => {
  assertEquals(
    [...parseSinceList("a:k3x9:5, b:k3x9:9,bad,c:?:1,:e:1")],
    [["a", { epoch: "k3x9", id: 5 }], ["b", { epoch: "k3x9", id: 9 }]],
  );
});
