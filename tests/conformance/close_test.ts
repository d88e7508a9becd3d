/**
 * Conformance, the closing handshake (Autobahn category 7, RFC 6455 §5.5.1, §7.1–§7.4): a
 * client's close is answered by a close with the same code and the server then closes TCP;
 * nothing after a close frame is processed; invalid close payloads fail the connection (1002,
 * or 1007 for a reason that is not UTF-8).
 */
import { hex } from "../support/bytes.ts";
import { conformance } from "../support/conformance.ts";
import { clientFrame } from "../support/raw_client.ts";
import { asciiText, closePayload, Op, rawFrame } from "../support/conformance_frames.ts";

// --- 7.1: the close handshake and what follows it ---

conformance(
  "7.1.1",
  "text echoed, then close 1000: the close is echoed and the server closes TCP",
  async (c) => {
    await c.send(clientFrame(Op.Text, "Hello World!"));
    await c.expectText("Hello World!");
    await c.send(clientFrame(Op.Close, closePayload(1000)));
    await c.expectCloseEcho(1000);
  },
);

conformance("7.1.2", "a second close frame after the first is ignored", async (c) => {
  await c.send(
    clientFrame(Op.Close, closePayload(1000)),
    clientFrame(Op.Close, closePayload(1001)),
  );
  await c.expectCloseEcho(1000);
});

conformance("7.1.3", "a ping after the close is not answered", async (c) => {
  await c.send(clientFrame(Op.Close, closePayload(1000)), clientFrame(Op.Ping, "after close"));
  await c.expectCloseEcho(1000);
});

conformance("7.1.4", "a text message after the close is not echoed", async (c) => {
  await c.send(clientFrame(Op.Close, closePayload(1000)), clientFrame(Op.Text, "after close"));
  await c.expectCloseEcho(1000);
});

conformance(
  "7.1.5",
  "fragment, close, final fragment: only the close is echoed, the message is dropped",
  async (c) => {
    await c.send(
      clientFrame(Op.Text, "fragment1", false),
      clientFrame(Op.Close, closePayload(1000)),
      clientFrame(Op.Continuation, "fragment2"),
    );
    await c.expectCloseEcho(1000);
  },
);

conformance(
  "7.1.6",
  "binary and invalid frames after the close are ignored, not failed",
  async (c) => {
    await c.send(
      clientFrame(Op.Close, closePayload(1000)),
      clientFrame(Op.Binary, new Uint8Array([1, 2, 3])),
      rawFrame(Op.Text, "reserved bits", { rsv: 4 }),
    );
    await c.expectCloseEcho(1000);
  },
);

conformance(
  "7.1.7",
  "the server closes TCP after the close handshake without waiting for the client",
  async (c) => {
    await c.send(clientFrame(Op.Close, closePayload(1000, "done")));
    await c.expectCloseEcho(1000, "done"); // EOF read while our side keeps the socket open
  },
);

// --- 7.3: close payload lengths ---

conformance(
  "7.3.1",
  "an empty close is answered by an empty close (no code), then TCP is closed",
  async (c) => {
    await c.send(clientFrame(Op.Close, new Uint8Array(0)));
    await c.expectCloseEcho(null);
  },
);

conformance("7.3.2", "a close with a 1-byte payload fails the connection with 1002", async (c) => {
  await c.send(clientFrame(Op.Close, new Uint8Array([0x03])));
  await c.expectFailure(1002);
});

conformance("7.3.3", "close 1000 with no reason is echoed as 1000", async (c) => {
  await c.send(clientFrame(Op.Close, closePayload(1000)));
  await c.expectCloseEcho(1000);
});

conformance("7.3.4", 'close 1000 "Hello World!" is echoed with its reason', async (c) => {
  await c.send(clientFrame(Op.Close, closePayload(1000, "Hello World!")));
  await c.expectCloseEcho(1000, "Hello World!");
});

conformance(
  "7.3.5",
  "close 1000 with a 123-byte reason (125-byte payload) is echoed byte for byte",
  async (c) => {
    const reason = asciiText(123);
    await c.send(clientFrame(Op.Close, closePayload(1000, reason)));
    await c.expectCloseEcho(1000, reason);
  },
);

conformance(
  "7.3.6",
  "close 1000 with a 124-byte reason (126-byte payload) fails the connection with 1002",
  async (c) => {
    await c.send(rawFrame(Op.Close, closePayload(1000, asciiText(124))));
    await c.expectFailure(1002);
  },
);

// --- 7.5: the close reason must be UTF-8 ---

conformance(
  "7.5.1",
  "close 1000 with an invalid UTF-8 reason fails the connection with 1007",
  async (c) => {
    await c.send(
      clientFrame(Op.Close, closePayload(1000, hex("ce ba e1 bd b9 cf 83 ce bc ce b5 ed a0 80"))),
    );
    await c.expectFailure(1007);
  },
);

conformance(
  "7.5.2",
  'close 1000 with a multi-byte UTF-8 reason "κόσμε 𝄞" is echoed with it',
  async (c) => {
    await c.send(clientFrame(Op.Close, closePayload(1000, "κόσμε 𝄞")));
    await c.expectCloseEcho(1000, "κόσμε 𝄞");
  },
);

// --- 7.7: valid close codes are echoed; 7.9: invalid ones fail with 1002 ---

const VALID_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999];
VALID_CODES.forEach((code, i) => {
  conformance(`7.7.${i + 1}`, `close with valid code ${code} is echoed with ${code}`, async (c) => {
    await c.send(clientFrame(Op.Close, closePayload(code)));
    await c.expectCloseEcho(code);
  });
});

const INVALID_CODES = [
  0,
  999,
  1004,
  1005,
  1006,
  1012,
  1013,
  1014,
  1015,
  1016,
  1100,
  2000,
  2999,
  5000,
  65535,
];
INVALID_CODES.forEach((code, i) => {
  conformance(
    `7.9.${i + 1}`,
    `close with invalid code ${code} fails the connection with 1002`,
    async (c) => {
      await c.send(clientFrame(Op.Close, closePayload(code)));
      await c.expectFailure(1002);
    },
  );
});
