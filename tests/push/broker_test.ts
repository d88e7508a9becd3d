/**
 * The envelope, built in one place for both brokers.
 */
import { assertEquals } from "@std/assert";
import { envelope, envelopeTemplate } from "../../src/push/broker.ts";

Deno.test("envelope escapes the channel and data as JSON", () => {
  assertEquals(
    JSON.parse(envelope("c", "e", 7, { kind: "text", text: 'quote " and \n newline' })),
    { channel: "c", epoch: "e", id: 7, data: 'quote " and \n newline' },
  );
});

Deno.test("envelopeTemplate leaves out exactly the epoch and the id", () => {
  const data = { kind: "binary" as const, bytes: new Uint8Array([1, 2, 3]) };
  const [head, middle, tail] = envelopeTemplate("c", data);
  assertEquals(head + "E" + middle + 9 + tail, envelope("c", "E", 9, data));
  assertEquals(JSON.parse(head + "E" + middle + 9 + tail), {
    channel: "c",
    epoch: "E",
    id: 9,
    data: "AQID",
    encoding: "base64",
  });
});
