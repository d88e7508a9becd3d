/**
 * Conformance, the opening handshake (RFC 6455 §4.1–§4.2, §4.4; not an Autobahn category, so
 * these cases are numbered H.n): a valid upgrade gets 101 with the right Sec-WebSocket-Accept,
 * header names and token values are case-insensitive, frames pipelined with the request are
 * kept, and each invalid request gets its HTTP error and a closed TCP connection.
 */
import { assertEquals, assertStringIncludes } from "@std/assert";
import { Op } from "../support/conformance_frames.ts";
import { concat } from "../support/bytes.ts";
import { clientFrame, upgradeRequest } from "../support/raw_client.ts";
import { assertAccepted, conformance, type ConformanceClient } from "../support/conformance.ts";

const RFC_KEY = "dGhlIHNhbXBsZSBub25jZQ==";

/** Sends `request`, asserts the response status (and returns it), then TCP EOF. */
async function expectRejected(c: ConformanceClient, request: Uint8Array, status: number) {
  await c.raw.write(request);
  const response = await c.readResponse();
  assertEquals(response.status, status, `expected ${status}, got:\n${response.head}`);
  assertEquals(response.headers.has("sec-websocket-accept"), false);
  await c.expectEof();
  return response;
}

conformance(
  "H.1",
  "a valid upgrade gets 101 with Upgrade, Connection and the RFC's example accept value",
  async (c) => {
    await c.raw.write(upgradeRequest("/echo"));
    const response = await c.readResponse();
    await assertAccepted(response, RFC_KEY);
    assertEquals(response.headers.get("sec-websocket-accept"), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    await c.send(clientFrame(Op.Text, "open"));
    await c.expectText("open");
  },
  { handshake: false },
);

conformance(
  "H.2",
  "a random 16-byte key gets the matching Sec-WebSocket-Accept",
  async (c) => {
    const key = crypto.getRandomValues(new Uint8Array(16)).toBase64();
    await c.raw.write(upgradeRequest("/echo", { "Sec-WebSocket-Key": key }));
    await assertAccepted(await c.readResponse(), key);
  },
  { handshake: false },
);

conformance(
  "H.3",
  "mixed-case header names and values (upgrade: WebSocket, CONNECTION: keep-alive, Upgrade) are accepted",
  async (c) => {
    await c.raw.write(upgradeRequest("/echo", {
      Host: null,
      Upgrade: null,
      Connection: null,
      "Sec-WebSocket-Key": null,
      "Sec-WebSocket-Version": null,
      HOST: "127.0.0.1",
      upgrade: "WebSocket",
      CONNECTION: "keep-alive, Upgrade",
      "sec-websocket-key": RFC_KEY,
      "SEC-WEBSOCKET-VERSION": "13",
    }));
    await assertAccepted(await c.readResponse(), RFC_KEY);
    await c.send(clientFrame(Op.Text, "mixed case"));
    await c.expectText("mixed case");
  },
  { handshake: false },
);

conformance(
  "H.4",
  "upper-case token values (UPGRADE: WEBSOCKET, Connection: UPGRADE) are accepted",
  async (c) => {
    await c.raw.write(upgradeRequest("/echo", {
      Upgrade: null,
      UPGRADE: "WEBSOCKET",
      Connection: "UPGRADE",
    }));
    await assertAccepted(await c.readResponse(), RFC_KEY);
  },
  { handshake: false },
);

conformance(
  "H.5",
  "a text frame pipelined with the request (one write) is echoed",
  async (c) => {
    await c.handshake("/echo", clientFrame(Op.Text, "pipelined"));
    await c.expectText("pipelined");
  },
  { handshake: false },
);

conformance(
  "H.6",
  "several frames pipelined with the request (one write) are echoed in order",
  async (c) => {
    await c.handshake(
      "/echo",
      concat(
        clientFrame(Op.Text, "one"),
        clientFrame(Op.Binary, new Uint8Array([1, 2, 3])),
        clientFrame(Op.Text, "three"),
        clientFrame(Op.Close, new Uint8Array([0x03, 0xe8])),
      ),
    );
    await c.expectText("one");
    await c.expectBinary(new Uint8Array([1, 2, 3]));
    await c.expectText("three");
    await c.expectCloseEcho(1000);
  },
  { handshake: false },
);

conformance(
  "H.7",
  "a pipelined ping is answered right after the 101",
  async (c) => {
    await c.handshake("/echo", clientFrame(Op.Ping, "pipelined ping"));
    await c.expectPong("pipelined ping");
  },
  { handshake: false },
);

conformance(
  "H.8",
  "an unmasked frame pipelined with a valid request gets 101, then close 1002",
  async (c) => {
    await c.handshake("/echo", concat(new Uint8Array([0x81, 0x05]), new Uint8Array(5)));
    await c.expectFailure(1002);
  },
  { handshake: false },
);

conformance(
  "H.9",
  "a request head written one byte at a time is accepted",
  async (c) => {
    await c.sendByteByByte(upgradeRequest("/echo"));
    await assertAccepted(await c.readResponse(), RFC_KEY);
  },
  { handshake: false },
);

conformance(
  "H.10",
  "a query string on /echo is accepted",
  async (c) => {
    await c.raw.write(upgradeRequest("/echo?client=conformance"));
    await assertAccepted(await c.readResponse(), RFC_KEY);
  },
  { handshake: false },
);

conformance(
  "H.11",
  "a missing Sec-WebSocket-Key gets 400 and TCP is closed",
  async (c) => {
    await expectRejected(c, upgradeRequest("/echo", { "Sec-WebSocket-Key": null }), 400);
  },
  { handshake: false },
);

conformance(
  "H.12",
  "a Sec-WebSocket-Key that is not 16 bytes (5 bytes in base64) gets 400",
  async (c) => {
    await expectRejected(c, upgradeRequest("/echo", { "Sec-WebSocket-Key": "c2hvcnQ=" }), 400);
  },
  { handshake: false },
);

conformance(
  "H.13",
  "a Sec-WebSocket-Key that is not base64 gets 400",
  async (c) => {
    const request = upgradeRequest("/echo", { "Sec-WebSocket-Key": "not base64 at all!!!!!==" });
    await expectRejected(c, request, 400);
  },
  { handshake: false },
);

conformance(
  "H.14",
  "Sec-WebSocket-Version: 8 gets 426 with Sec-WebSocket-Version: 13",
  async (c) => {
    const response = await expectRejected(
      c,
      upgradeRequest("/echo", { "Sec-WebSocket-Version": "8" }),
      426,
    );
    assertEquals(response.headers.get("sec-websocket-version"), "13");
  },
  { handshake: false },
);

conformance(
  "H.15",
  "a missing Sec-WebSocket-Version gets 426 with Sec-WebSocket-Version: 13",
  async (c) => {
    const response = await expectRejected(
      c,
      upgradeRequest("/echo", { "Sec-WebSocket-Version": null }),
      426,
    );
    assertEquals(response.headers.get("sec-websocket-version"), "13");
  },
  { handshake: false },
);

conformance(
  "H.16",
  "a missing Upgrade header gets 426 (Upgrade Required, Upgrade: websocket)",
  async (c) => {
    const response = await expectRejected(c, upgradeRequest("/echo", { Upgrade: null }), 426);
    assertEquals(response.headers.get("upgrade")?.toLowerCase(), "websocket");
    assertStringIncludes(response.body, "WebSocket");
  },
  { handshake: false },
);

conformance(
  "H.17",
  "Upgrade: h2c (not websocket) gets 426",
  async (c) => {
    await expectRejected(c, upgradeRequest("/echo", { Upgrade: "h2c" }), 426);
  },
  { handshake: false },
);

conformance(
  "H.18",
  "a missing Connection header gets 400",
  async (c) => {
    await expectRejected(c, upgradeRequest("/echo", { Connection: null }), 400);
  },
  { handshake: false },
);

conformance(
  "H.19",
  "Connection: keep-alive (without the upgrade token) gets 400",
  async (c) => {
    await expectRejected(c, upgradeRequest("/echo", { Connection: "keep-alive" }), 400);
  },
  { handshake: false },
);

conformance(
  "H.20",
  "a POST upgrade request gets 405 with Allow: GET",
  async (c) => {
    const response = await expectRejected(
      c,
      upgradeRequest("/echo", {}, "POST /echo HTTP/1.1"),
      405,
    );
    assertEquals(response.headers.get("allow"), "GET");
  },
  { handshake: false },
);

conformance(
  "H.21",
  "an HTTP/1.0 upgrade request gets 400",
  async (c) => {
    await expectRejected(c, upgradeRequest("/echo", {}, "GET /echo HTTP/1.0"), 400);
  },
  { handshake: false },
);

conformance(
  "H.22",
  "a missing Host header gets 400",
  async (c) => {
    await expectRejected(c, upgradeRequest("/echo", { Host: null }), 400);
  },
  { handshake: false },
);

conformance(
  "H.23",
  "an unknown path gets 404",
  async (c) => {
    await expectRejected(c, upgradeRequest("/no-such-endpoint"), 404);
  },
  { handshake: false },
);
