/**
 * permessage-deflate (RFC 7692) through the real server (`--deflate`), with raw TCP clients that
 * send hand-made compressed frames and inflate what comes back: the §7.2.3 examples, the
 * negotiation answered in real handshakes, the close codes of bad compressed input, the
 * threshold, and the encode-once rule (a broadcast compressed once for every deflate
 * subscriber). Deno's own WebSocket client is here too: it does not offer the extension.
 */
import { assert, assertEquals } from "@std/assert";
import { compressMessage } from "../../src/net/deflate_codec.ts";
import { Opcode } from "../../src/protocol/opcode.ts";
import { hex, utf8 } from "../support/bytes.ts";
import { clientFrame, RawClient, upgradeRequest } from "../support/raw_client.ts";
import { startTestServer, type TestServer } from "../support/server.ts";
import { gauge, publishOk } from "../support/push_api.ts";
import { TestSocket } from "../support/ws_client.ts";
import { pollUntil, withDeadline } from "../support/async.ts";

const ANSWER = "permessage-deflate; server_no_context_takeover";

/** Opens a raw client offering `offer`; reads deflated frames when the server agreed. */
async function openWithOffer(
  server: TestServer,
  offer: string | null,
  path = "/echo",
  windowBits = 15,
): Promise<{ client: RawClient; agreed: string | null }> {
  const client = await RawClient.connect(server.wsAddr.port);
  await client.write(upgradeRequest(path, { "Sec-WebSocket-Extensions": offer }));
  const response = await client.readResponse();
  assertEquals(response.status, 101, response.head);
  const agreed = response.headers.get("sec-websocket-extensions") ?? null;
  if (agreed !== null) client.useDeflate(windowBits);
  return { client, agreed };
}

/** A masked client frame with RSV1 set (the first frame of a compressed message). */
function compressedFrame(opcode: number, payload: Uint8Array, fin = true): Uint8Array {
  const frame = clientFrame(opcode, payload, fin);
  frame[0] |= 0x40;
  return frame;
}

/** A JSON text of about `bytes` bytes that compresses well, like a real publication. */
function jsonOf(bytes: number): string {
  const items = [];
  for (let i = 0; items.join(",").length < bytes; i++) {
    items.push(JSON.stringify({ id: i, symbol: `S${i % 17}`, price: 100 + (i % 13), side: "buy" }));
  }
  return `[${items.join(",")}]`;
}

/** Reads the next event; a close is returned with its code. */
async function nextEvent(client: RawClient, what: string) {
  return await withDeadline(client.next(), 10_000, what);
}

async function expectText(client: RawClient, text: string, what: string): Promise<void> {
  const event = await nextEvent(client, what);
  assertEquals(event.type, "text", `${what}: got ${JSON.stringify(event).slice(0, 200)}`);
  assertEquals((event as { data: string }).data, text, what);
}

async function expectClose(client: RawClient, code: number, what: string): Promise<void> {
  const event = await withDeadline(client.nextOf("close"), 10_000, what);
  assertEquals(event.code, code, `${what}: ${event.reason}`);
}

Deno.test("--deflate: the RFC 7692 §7.2.3 'Hello' examples are inflated by the echo peer", async () => {
  await using server = await startTestServer(["--deflate"]);
  const { client, agreed } = await openWithOffer(
    server,
    "permessage-deflate; client_max_window_bits",
  );
  assertEquals(agreed, `${ANSWER}; client_max_window_bits=15`);
  await using _ = client;
  const examples: [string, Uint8Array][] = [
    ["§7.2.3.1 one compressed block", compressedFrame(Opcode.Text, hex("f2 48 cd c9 c9 07 00"))],
    [
      "§7.2.3.2 a back-reference into the previous message (context takeover)",
      compressedFrame(Opcode.Text, hex("f2 00 11 00 00")),
    ],
    [
      "§7.2.3.3 a stored block",
      compressedFrame(Opcode.Text, hex("00 05 00 fa ff 48 65 6c 6c 6f 00")),
    ],
    ["§7.2.3.4 a BFINAL block", compressedFrame(Opcode.Text, hex("f3 48 cd c9 c9 07 00 00"))],
    [
      "§7.2.3.5 two blocks",
      compressedFrame(Opcode.Text, hex("f2 48 05 00 00 00 ff ff ca c9 c9 07 00")),
    ],
    ["the window survives a BFINAL message", compressedFrame(Opcode.Text, hex("f2 00 11 00 00"))],
    [
      "§7.2.3.1 fragmented, RSV1 on the first frame only",
      new Uint8Array([
        ...compressedFrame(Opcode.Text, hex("f2 48 cd"), false),
        ...clientFrame(Opcode.Continuation, hex("c9 c9 07 00")),
      ]),
    ],
  ];
  for (const [what, bytes] of examples) {
    // One byte per write: the server's reads may split the frame anywhere.
    for (let i = 0; i < bytes.length; i++) await client.write(bytes.subarray(i, i + 1));
    await expectText(client, "Hello", what);
  }
  assertEquals(client.compressedReceived, 0, "'Hello' is under --deflate-min-bytes: sent plain");
});

Deno.test("--deflate: a fragmented compressed message with a ping inside, and compressed echoes", async () => {
  await using server = await startTestServer(["--deflate"]);
  const { client } = await openWithOffer(server, "permessage-deflate");
  await using _ = client;
  const text = jsonOf(4096);
  const payload = compressMessage(utf8(text));
  const a = Math.floor(payload.length / 3), b = Math.floor((2 * payload.length) / 3);
  await client.write(
    new Uint8Array([
      ...compressedFrame(Opcode.Text, payload.subarray(0, a), false),
      ...clientFrame(Opcode.Ping, "inside"),
      ...clientFrame(Opcode.Continuation, payload.subarray(a, b), false),
      ...clientFrame(Opcode.Continuation, payload.subarray(b)),
    ]),
  );
  const pong = await nextEvent(client, "the pong");
  assertEquals(pong.type, "pong");
  await expectText(client, text, "the echo of the fragmented compressed message");
  assertEquals(client.compressedReceived, 1, "the 4 KiB echo came back compressed");
  // A plain message on the same connection: valid, and its echo is compressed too.
  await client.write(clientFrame(Opcode.Text, text));
  await expectText(client, text, "the echo of the plain message");
  assertEquals(client.compressedReceived, 2);
  // A binary one.
  const binary = utf8(jsonOf(1000));
  await client.write(compressedFrame(Opcode.Binary, compressMessage(binary)));
  const event = await nextEvent(client, "the binary echo");
  assertEquals(event.type, "binary");
  assertEquals((event as { data: Uint8Array }).data, binary);
  const metrics = await (await fetch(`${server.httpUrl}/metrics`)).text();
  assert(metrics.includes("push_deflate_in_messages_total 2"), "two compressed messages in");
});

Deno.test("--deflate: RSV1 on a continuation or control frame, or without the extension, is 1002", async () => {
  await using server = await startTestServer(["--deflate"]);
  const hello = hex("f2 48 cd c9 c9 07 00");
  const cases: [string, string | null, Uint8Array][] = [
    [
      "RSV1 on a continuation frame",
      "permessage-deflate",
      new Uint8Array([
        ...compressedFrame(Opcode.Text, hex("f2 48 cd"), false),
        ...compressedFrame(Opcode.Continuation, hex("c9 c9 07 00")),
      ]),
    ],
    [
      "RSV1 on an uncompressed message's continuation",
      "permessage-deflate",
      new Uint8Array([
        ...clientFrame(Opcode.Text, "Hel", false),
        ...compressedFrame(Opcode.Continuation, utf8("lo")),
      ]),
    ],
    ["RSV1 on a ping", "permessage-deflate", compressedFrame(Opcode.Ping, hello)],
    ["RSV1 on a close frame", "permessage-deflate", compressedFrame(Opcode.Close, hex("03 e8"))],
    ["RSV1 when the client offered nothing", null, compressedFrame(Opcode.Text, hello)],
    [
      "RSV2 with deflate agreed",
      "permessage-deflate",
      (() => {
        const f = clientFrame(Opcode.Text, "Hello");
        f[0] |= 0x20;
        return f;
      })(),
    ],
  ];
  for (const [what, offer, bytes] of cases) {
    const { client } = await openWithOffer(server, offer);
    await using _ = client;
    await client.write(bytes);
    await expectClose(client, 1002, what);
  }
  // Without --deflate the extension is declined and RSV1 stays a protocol error.
  await using plain = await startTestServer();
  const { client, agreed } = await openWithOffer(plain, "permessage-deflate");
  await using _ = client;
  assertEquals(agreed, null, "declined without --deflate");
  await client.write(compressedFrame(Opcode.Text, hello));
  await expectClose(client, 1002, "RSV1 without --deflate");
});

Deno.test("--deflate: bad compressed data and bad UTF-8 inside are 1007, too big once inflated 1009", async () => {
  await using server = await startTestServer(["--deflate", "--max-message-bytes", "64KiB"]);
  const invalidUtf8 = compressMessage(new Uint8Array([0x48, 0xc3, 0x28, 0x49]));
  const cases: [string, Uint8Array, number][] = [
    ["invalid DEFLATE data", compressedFrame(Opcode.Text, hex("ff ff ff ff")), 1007],
    ["a payload cut inside its block", compressedFrame(Opcode.Text, hex("f2 48 cd")), 1007],
    ["invalid UTF-8 once inflated", compressedFrame(Opcode.Text, invalidUtf8), 1007],
    [
      "1 MiB of zeros in ~1 KB",
      compressedFrame(Opcode.Binary, compressMessage(new Uint8Array(1 << 20))),
      1009,
    ],
  ];
  for (const [what, bytes, code] of cases) {
    const { client } = await openWithOffer(server, "permessage-deflate");
    await using _ = client;
    await client.write(bytes);
    await expectClose(client, code, what);
  }
  const metrics = await (await fetch(`${server.httpUrl}/metrics`)).text();
  assert(metrics.includes('push_deflate_failures_total{reason="bad-deflate-data"} 2'), metrics);
  assert(metrics.includes('push_deflate_failures_total{reason="inflated-too-big"} 1'), metrics);
});

Deno.test("--deflate: the negotiation matrix, answered in real handshakes", async () => {
  await using server = await startTestServer(["--deflate"]);
  const matrix: [string | null, string | null][] = [
    [null, null],
    ["permessage-deflate", ANSWER],
    ["permessage-deflate; client_max_window_bits", `${ANSWER}; client_max_window_bits=15`],
    [
      "permessage-deflate; client_max_window_bits=10; client_no_context_takeover",
      `${ANSWER}; client_no_context_takeover; client_max_window_bits=10`,
    ],
    ["permessage-deflate; server_no_context_takeover", ANSWER],
    ["permessage-deflate; server_max_window_bits=10", `${ANSWER}; server_max_window_bits=10`],
    ["permessage-deflate; server_max_window_bits=8", null],
    ["permessage-deflate; server_max_window_bits=8, permessage-deflate", ANSWER],
    ["permessage-deflate; unknown_param", null],
    ["permessage-deflate; client_max_window_bits=16", null],
    ["x-webkit-deflate-frame", null],
    ["permessage-deflate; =", null],
  ];
  for (const [offer, answer] of matrix) {
    const { client, agreed } = await openWithOffer(server, offer);
    await using _ = client;
    assertEquals(agreed, answer, `offer ${offer}`);
    // The connection works either way: an echo of 4 KiB, compressed only when agreed.
    const text = jsonOf(4096);
    await client.write(clientFrame(Opcode.Text, text));
    await expectText(client, text, `echo after offer ${offer}`);
    assertEquals(client.compressedReceived, answer === null ? 0 : 1, `offer ${offer}`);
  }
  // The gauge goes back down as the server sees each client's EOF.
  await pollUntil(
    async () => await gauge(server, "push_deflate_connections") === 0,
    10_000,
    "push_deflate_connections back to 0",
  );
});

Deno.test("--deflate: server_max_window_bits=10 is honoured (a 10-bit inflater reads our frames)", async () => {
  await using server = await startTestServer(["--deflate"]);
  const offer = "permessage-deflate; server_max_window_bits=10";
  const { client } = await openWithOffer(server, offer, "/echo", 10);
  await using _ = client;
  // 16 KiB with repeats far apart: a 32 KiB window would refer back beyond 1 KiB.
  const text = jsonOf(16_384);
  await client.write(clientFrame(Opcode.Text, text));
  await expectText(client, text, "the echo read with a 1 KiB window");
  assertEquals(client.compressedReceived, 1);
});

Deno.test("--deflate: a broadcast is compressed once; plain and Deno clients get the plain frame", async () => {
  await using server = await startTestServer(["--deflate"]);
  const deflated = [];
  for (let i = 0; i < 3; i++) {
    const { client, agreed } = await openWithOffer(server, "permessage-deflate", "/");
    assertEquals(agreed, ANSWER);
    await client.write(clientFrame(Opcode.Text, "subscribe news"));
    await expectText(
      client,
      `{"notice":"subscribed","channel":"news","epoch":"${server.epoch}","id":0}`,
      "subscribed",
    );
    deflated.push(client);
  }
  const { client: plain } = await openWithOffer(server, null, "/");
  await plain.write(clientFrame(Opcode.Text, "subscribe news"));
  await plain.nextOf("text");
  // Deno's WebSocket client offers no extension (checked in the next test): plain frames.
  await using deno = new TestSocket(`${server.wsUrl}/`);
  await deno.opened;
  deno.socket.send("subscribe news");
  await deno.nextMatching(/subscribed/);
  assertEquals(await gauge(server, "push_deflate_connections"), 3);

  const body = jsonOf(4096);
  const before = await gauge(server, "push_deflate_compressions_total");
  await publishOk(server, "news", body);
  const envelope = JSON.stringify({ channel: "news", epoch: server.epoch, id: 1, data: body });
  for (const client of [...deflated, plain]) await expectText(client, envelope, "the publication");
  assertEquals(await deno.next(), envelope, "Deno's client reads the plain frame");
  assertEquals(deflated.map((c) => c.compressedReceived), [1, 1, 1]);
  assertEquals(plain.compressedReceived, 0);
  assertEquals(
    await gauge(server, "push_deflate_compressions_total") - before,
    1,
    "compressed once",
  );

  // Under --deflate-min-bytes (256): plain for everyone, nothing compressed.
  await publishOk(server, "news", "short");
  for (const client of deflated) await client.nextOf("text");
  assertEquals(deflated.map((c) => c.compressedReceived), [1, 1, 1]);
  for (const client of [...deflated, plain]) client.close();
});

Deno.test("Deno's WebSocket client offers no permessage-deflate (so it is tested uncompressed)", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const ws = new WebSocket(`ws://127.0.0.1:${listener.addr.port}/`);
  const closed = new Promise((resolve) => ws.onclose = ws.onerror = resolve);
  using conn = await listener.accept();
  const buffer = new Uint8Array(4096);
  let head = "";
  while (!head.includes("\r\n\r\n")) {
    const n = await conn.read(buffer);
    if (n === null) break;
    head += new TextDecoder().decode(buffer.subarray(0, n));
  }
  assert(head.startsWith("GET / HTTP/1.1"), head);
  assert(!/sec-websocket-extensions/i.test(head), `Deno now offers an extension:\n${head}`);
  conn.close();
  await closed;
});

Deno.test("--deflate: a read of compressed messages is inflated a message limit at a time, none after closing", async () => {
  // Rate 1/s (burst 2): the third message closes the client with 1008. One write holds a
  // 200 KiB plain message (it grows the server's read buffer to 64 KiB) and then 10 compressed
  // ones of 1 MiB - 1 zeros (~1 KB each): they reach the server in one read, 10 MiB once
  // inflated. The server must handle what it inflated before it inflates more, and inflate
  // nothing once closing: 2 messages inflated (the second reaches the cap and ends the round;
  // the handler then closes), not 10.
  await using server = await startTestServer(["--deflate", "--max-client-rate", "1"]);
  const { client } = await openWithOffer(server, "permessage-deflate", "/");
  await using _ = client;
  const bomb = compressedFrame(Opcode.Binary, compressMessage(new Uint8Array((1 << 20) - 1)));
  assert(bomb.length < 1500, `${bomb.length} bytes`);
  await client.write(
    new Uint8Array([
      ...clientFrame(Opcode.Binary, new Uint8Array(200 * 1024)),
      ...Array.from({ length: 10 }, () => [...bomb]).flat(),
    ]),
  );
  await expectClose(client, 1008, "the rate limit");
  // 3 when a read happens to end between the first two compressed messages.
  const inflated = await gauge(server, "push_deflate_in_messages_total");
  assert(inflated >= 2 && inflated <= 3, `${inflated} compressed messages inflated`);
});
