/**
 * TLS: wss:// and https:// with a certificate from a throwaway CA, checked by clients that trust
 * only that CA.
 */
import { assertEquals, assertRejects } from "@std/assert";
import { Opcode } from "../../src/protocol/opcode.ts";
import { concat } from "../support/bytes.ts";
import { clientFrame, RawClient, upgradeRequest } from "../support/raw_client.ts";
import { startTestServer } from "../support/server.ts";
import { makeTestCertificates } from "../support/tls_certs.ts";

Deno.test("with --tls-cert/--tls-key the server speaks wss:// and https:// only", async () => {
  await using certs = await makeTestCertificates();
  await using server = await startTestServer([
    "--tls-cert",
    certs.certFile,
    "--tls-key",
    certs.keyFile,
    "--demo",
    "true",
    "--demo-interval",
    "10",
  ]);
  const client = Deno.createHttpClient({ caCerts: [certs.caPem] });
  try {
    const config = await fetch(`https://127.0.0.1:${server.httpAddr.port}/config.json`, { client });
    assertEquals((await config.json()).wsUrl, `wss://127.0.0.1:${server.wsAddr.port}/`);
    const page = await fetch(`https://127.0.0.1:${server.httpAddr.port}/`, { client });
    assertEquals(page.status, 200);
    await page.body?.cancel();
  } finally {
    client.close();
  }

  const conn = await Deno.connectTls({
    hostname: "127.0.0.1",
    port: server.wsAddr.port,
    caCerts: [certs.caPem],
  });
  await using ws = RawClient.fromConn(conn);
  await ws.write(concat(upgradeRequest("/"), clientFrame(Opcode.Text, "over tls")));
  assertEquals((await ws.readResponse()).status, 101);
  const texts: string[] = [];
  while (
    !texts.includes("Server received: over tls") || !texts.some((t) => t.startsWith("I am waiting"))
  ) {
    texts.push((await ws.nextOf("text")).data);
  }
  await ws.write(clientFrame(Opcode.Text, "quit"));
  assertEquals((await ws.nextOf("close")).code, 1000);

  // A client that does not trust the test CA is refused by its own TLS check.
  await assertRejects(async () => {
    const untrusted = await Deno.connectTls({ hostname: "127.0.0.1", port: server.wsAddr.port });
    try {
      await untrusted.handshake();
    } finally {
      untrusted.close();
    }
  });
});
