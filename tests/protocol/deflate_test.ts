import { assertEquals, assertThrows } from "@std/assert";
import {
  appendDeflateTail,
  type DeflateParams,
  negotiateDeflate,
  parseExtensions,
  startsCompressedMessage,
  stripDeflateTail,
} from "../../src/protocol/deflate.ts";
import { ProtocolError } from "../../src/protocol/errors.ts";
import { hex, toHex } from "../support/bytes.ts";

const BASE = "permessage-deflate; server_no_context_takeover";

/** The default parameters: our fresh-context compressor, a client with a 32 KiB window. */
const DEFAULT: DeflateParams = {
  serverNoContextTakeover: true,
  clientNoContextTakeover: false,
  serverMaxWindowBits: 15,
  clientMaxWindowBits: 15,
};

/** [offer, expected response (null = decline), expected params overrides]. */
const MATRIX: Array<[string | undefined, string | null, Partial<DeflateParams>?]> = [
  // No offer, other extensions only, empty header.
  [undefined, null],
  ["", null],
  ["x-webkit-deflate-frame", null],
  ["foo; bar=1, baz", null],
  // Each parameter alone.
  ["permessage-deflate", BASE],
  ["permessage-deflate; server_no_context_takeover", BASE],
  ["permessage-deflate; client_no_context_takeover", `${BASE}; client_no_context_takeover`, {
    clientNoContextTakeover: true,
  }],
  ["permessage-deflate; server_max_window_bits=10", `${BASE}; server_max_window_bits=10`, {
    serverMaxWindowBits: 10,
  }],
  ["permessage-deflate; server_max_window_bits=9", `${BASE}; server_max_window_bits=9`, {
    serverMaxWindowBits: 9,
  }],
  ["permessage-deflate; client_max_window_bits", `${BASE}; client_max_window_bits=15`],
  ["permessage-deflate; client_max_window_bits=8", `${BASE}; client_max_window_bits=8`, {
    clientMaxWindowBits: 8,
  }],
  ["permessage-deflate; client_max_window_bits=12", `${BASE}; client_max_window_bits=12`, {
    clientMaxWindowBits: 12,
  }],
  // Combinations.
  [
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover; " +
    "server_max_window_bits=11; client_max_window_bits=13",
    `${BASE}; client_no_context_takeover; server_max_window_bits=11; client_max_window_bits=13`,
    { clientNoContextTakeover: true, serverMaxWindowBits: 11, clientMaxWindowBits: 13 },
  ],
  // Quoted values (RFC 6455 §9.1), whitespace, case.
  ['permessage-deflate; client_max_window_bits="10"', `${BASE}; client_max_window_bits=10`, {
    clientMaxWindowBits: 10,
  }],
  ['permessage-deflate; server_max_window_bits="1\\2"', `${BASE}; server_max_window_bits=12`, {
    serverMaxWindowBits: 12,
  }],
  ["  Permessage-Deflate ;\tClient_Max_Window_Bits = 9 ", `${BASE}; client_max_window_bits=9`, {
    clientMaxWindowBits: 9,
  }],
  // Invalid values: that offer is declined.
  ["permessage-deflate; client_max_window_bits=16", null],
  ["permessage-deflate; client_max_window_bits=7", null],
  ["permessage-deflate; client_max_window_bits=07", null],
  ["permessage-deflate; client_max_window_bits=", null],
  ['permessage-deflate; client_max_window_bits=""', null],
  ["permessage-deflate; client_max_window_bits=1a", null],
  ["permessage-deflate; server_max_window_bits", null],
  ["permessage-deflate; server_max_window_bits=16", null],
  ["permessage-deflate; server_no_context_takeover=1", null],
  ["permessage-deflate; client_no_context_takeover=true", null],
  // A 256-byte server window: zlib cannot produce it, so we decline.
  ["permessage-deflate; server_max_window_bits=8", null],
  // Duplicates and unknown parameters.
  ["permessage-deflate; client_no_context_takeover; client_no_context_takeover", null],
  ["permessage-deflate; server_max_window_bits=10; server_max_window_bits=10", null],
  ["permessage-deflate; client_max_window_bits; Client_Max_Window_Bits=9", null],
  ["permessage-deflate; mystery", null],
  // Several offers: the first acceptable one wins.
  [
    "permessage-deflate; server_max_window_bits=8, permessage-deflate; client_max_window_bits",
    `${BASE}; client_max_window_bits=15`,
  ],
  [
    "permessage-deflate; mystery=1, permessage-deflate; client_no_context_takeover",
    `${BASE}; client_no_context_takeover`,
    { clientNoContextTakeover: true },
  ],
  [
    "permessage-deflate; server_max_window_bits=12, permessage-deflate",
    `${BASE}; server_max_window_bits=12`,
    { serverMaxWindowBits: 12 },
  ],
  [
    "foo, permessage-deflate; client_max_window_bits=10, bar",
    `${BASE}; client_max_window_bits=10`,
    {
      clientMaxWindowBits: 10,
    },
  ],
  ["permessage-deflate; x=1, permessage-deflate; y", null],
  // Repeated header fields are joined by ", " by parseRequestHead; empty list elements skipped.
  [", permessage-deflate ,, ", BASE],
  // Malformed headers: nothing is trusted, the extension is declined.
  ['permessage-deflate; client_max_window_bits="10', null],
  ["permessage-deflate;", null],
  ["permessage-deflate; =10", null],
  ["permessage-deflate client_no_context_takeover", null],
  ['permessage-deflate; client_max_window_bits="1 0"', null],
];

for (const [offer, response, params] of MATRIX) {
  Deno.test(`negotiateDeflate: ${JSON.stringify(offer)}`, () => {
    const agreement = negotiateDeflate(offer);
    assertEquals(agreement?.response ?? null, response);
    if (response !== null) assertEquals(agreement?.params, { ...DEFAULT, ...params });
  });
}

Deno.test("negotiateDeflate: our client window limit lowers the value answered", () => {
  const offer = "permessage-deflate; client_max_window_bits=12";
  const agreement = negotiateDeflate(offer, { clientMaxWindowBits: 10 });
  assertEquals(agreement?.response, `${BASE}; client_max_window_bits=10`);
  assertEquals(agreement?.params.clientMaxWindowBits, 10);
  // A client that did not offer the parameter cannot be limited (§7.1.2.2): window 15, no value.
  const plain = negotiateDeflate("permessage-deflate", { clientMaxWindowBits: 10 });
  assertEquals(plain?.response, BASE);
  assertEquals(plain?.params.clientMaxWindowBits, 15);
});

Deno.test("negotiateDeflate: client_no_context_takeover can be required (§7.1.1.2)", () => {
  const agreement = negotiateDeflate("permessage-deflate", {
    requireClientNoContextTakeover: true,
  });
  assertEquals(agreement?.response, `${BASE}; client_no_context_takeover`);
  assertEquals(agreement?.params.clientNoContextTakeover, true);
});

Deno.test("parseExtensions: tokens, parameters, quoted-string escapes", () => {
  assertEquals(parseExtensions('a; b=1; c, D; e="f\\"g"'), null); // '"' is not a tchar
  assertEquals(parseExtensions('a; b=1; c, D; e="f\\g"'), [
    { name: "a", params: [["b", "1"], ["c", null]] },
    { name: "d", params: [["e", "fg"]] },
  ]);
  assertEquals(parseExtensions(""), []);
  assertEquals(parseExtensions("a b"), null);
  assertEquals(parseExtensions("a; b=c=d"), null);
});

Deno.test("stripDeflateTail / appendDeflateTail: §7.2.1 and §7.2.2", () => {
  // Sync-flushed "Hello" (§7.2.3.1) with its empty stored block.
  const flushed = hex("f2 48 cd c9 c9 07 00 00 00 ff ff");
  assertEquals(toHex(stripDeflateTail(flushed)), "f2 48 cd c9 c9 07 00");
  assertEquals(toHex(appendDeflateTail(hex("f2 48 cd c9 c9 07 00"))), toHex(flushed));
  // Output ending with a BFINAL block gets the empty block's header octet (§7.2.3.4).
  assertEquals(toHex(stripDeflateTail(hex("f3 48 cd c9 c9 07 00"))), "f3 48 cd c9 c9 07 00 00");
});

Deno.test("startsCompressedMessage: RSV1 only on the first frame of a data message", () => {
  assertEquals(startsCompressedMessage(0xc1, true), true); // Text, FIN, RSV1
  assertEquals(startsCompressedMessage(0x42, true), true); // Binary, RSV1, not FIN
  assertEquals(startsCompressedMessage(0x81, true), false);
  assertEquals(startsCompressedMessage(0x80, true), false); // continuation without RSV1
  assertEquals(startsCompressedMessage(0x81, false), false);
  const refused = [
    [0xc1, false], // RSV1 without the extension
    [0xc0, true], // RSV1 on a continuation frame (§6.1)
    [0xc9, true], // RSV1 on a ping: control frames are never compressed
    [0xc8, true], // ... nor close
    [0xa1, true], // RSV2
    [0x91, true], // RSV3
  ] as const;
  for (const [b0, deflate] of refused) {
    const error = assertThrows(() => startsCompressedMessage(b0, deflate), ProtocolError);
    assertEquals([error.failure, error.closeCode], ["reserved-bits", 1002], b0.toString(16));
  }
});
