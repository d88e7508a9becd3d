/**
 * Handlers run after the parser returns (issue 12, item 6): a handler that throws closes its
 * client with 1011 through a normal close handshake, and the parser goes on, so the client's
 * close reply is still parsed and answered by closing TCP. (When handlers ran inside the parser,
 * the throw failed the parser: the reply was drained unparsed and the server half-closed.)
 */
import { assert, assertEquals } from "@std/assert";
import { bindWebSocket, WebSocketServer } from "../../src/net/listener.ts";
import type { PeerHandler } from "../../src/net/peer.ts";
import { defaultConfig } from "../../src/config.ts";
import { Logger } from "../../src/log.ts";
import { Metrics } from "../../src/metrics.ts";
import { Opcode } from "../../src/protocol/opcode.ts";
import { clientFrame, RawClient } from "../support/raw_client.ts";
import { concat } from "../support/bytes.ts";

Deno.test("a throwing handler closes with 1011 and the client's close reply is still parsed", async () => {
  const metrics = new Metrics();
  const logs: string[] = [];
  const handler: PeerHandler = {
    onMessage(peer, message) {
      if (message.type === "text" && message.data === "boom") throw new Error("handler bug");
      if (message.type === "text") peer.sendText(message.data);
    },
  };
  const server = new WebSocketServer({
    listener: bindWebSocket({ hostname: "127.0.0.1", port: 0 }),
    hostname: "127.0.0.1",
    limits: defaultConfig(),
    allowedOrigins: "*",
    routes: { "/": handler },
    logger: new Logger("info", (line) => logs.push(line)),
    metrics,
  });
  const addr = server.start();
  try {
    await using client = await RawClient.open(addr.port, "/");
    // One write: a message that is answered, the one whose handler throws, one after it.
    await client.write(concat(
      clientFrame(Opcode.Text, "before"),
      clientFrame(Opcode.Text, "boom"),
      clientFrame(Opcode.Text, "after"),
    ));
    assertEquals(await client.next(), { type: "text", data: "before" });
    assertEquals(await client.next(), { type: "close", code: 1011, reason: "internal error" });
    // Our reply: parsed (the parser did not fail), so the server closes TCP at once.
    await client.write(clientFrame(Opcode.Close, new Uint8Array([0x03, 0xf3])));
    await client.waitForEof();
  } finally {
    await server.shutdown();
  }
  assertEquals(metrics.closeCodesReceived.get(1011), 1, "the client's close reply was parsed");
  assertEquals(metrics.messagesReceived, 3, "the frame after the throw was parsed too");
  assert(logs.some((line) => line.includes("connection.on_message_failed")), logs.join("\n"));
  assert(
    logs.some((line) => line.includes("connection.closed") && line.includes("code_received=1011")),
    logs.join("\n"),
  );
});
