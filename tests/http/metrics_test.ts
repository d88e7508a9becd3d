/**
 * /metrics in the Prometheus text format, and /healthz.
 */
import { assert, assertEquals } from "@std/assert";
import { Opcode } from "../../src/protocol/opcode.ts";
import { clientFrame, RawClient, upgradeRequest } from "../support/raw_client.ts";
import { startTestServer, type TestServer } from "../support/server.ts";
import { TestSocket } from "../support/ws_client.ts";

/** Parses the text exposition format strictly: every sample must follow a HELP and TYPE. */
function parseMetrics(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  const typed = new Set<string>();
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const meta = /^# (HELP|TYPE) ([a-z_]+) (.+)$/.exec(line);
    if (meta) {
      if (meta[1] === "TYPE") {
        assert(["counter", "gauge"].includes(meta[3]), line);
        typed.add(meta[2]);
      }
      continue;
    }
    const sample = /^([a-z_]+)(\{[a-z_]+="(?:[^"\\]|\\.)*"\})? (-?\d+(?:\.\d+)?)$/.exec(line);
    assert(sample, `not a valid sample line: ${line}`);
    assert(typed.has(sample[1]), `sample before its TYPE: ${line}`);
    samples.set(sample[1] + (sample[2] ?? ""), Number(sample[3]));
  }
  return samples;
}

async function scrape(server: TestServer): Promise<Map<string, number>> {
  const response = await fetch(server.httpUrl + "/metrics");
  assertEquals(response.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  return parseMetrics(await response.text());
}

Deno.test("/metrics counts connections, rejections, pushes, publishes and close codes", async () => {
  await using server = await startTestServer();
  const empty = await scrape(server);
  assertEquals(empty.get("push_connections"), 0);
  assertEquals(empty.get("push_publishes_total"), 0);

  await using ws = new TestSocket(server.wsUrl + "/?channels=news");
  await ws.opened;
  await ws.nextMatching(/subscribed/);
  await (await fetch(`${server.httpUrl}/publish?channel=news`, { method: "POST", body: "x" })).body
    ?.cancel();
  await ws.nextMatching(/"data":"x"/);
  await (await fetch(`${server.httpUrl}/publish?channel=bad name`, { method: "POST", body: "x" }))
    .body?.cancel();

  await using rejected = await RawClient.connect(server.wsAddr.port);
  await rejected.write(upgradeRequest("/", { "Sec-WebSocket-Version": "8" }));
  await rejected.readResponse();

  await using raw = await RawClient.open(server.wsAddr.port, "/echo");
  await raw.write(clientFrame(Opcode.Close, new Uint8Array([0x0f, 0xa0])));
  await raw.nextOf("close");
  await server.waitForLog("connection.closed client=2");

  const m = await scrape(server);
  assertEquals(m.get("push_connections"), 1);
  assertEquals(m.get("push_connections_total"), 2);
  assertEquals(m.get('push_handshakes_rejected_total{status="426"}'), 1);
  assertEquals(m.get("push_publishes_total"), 1);
  assertEquals(m.get('push_publishes_rejected_total{status="400"}'), 1);
  assertEquals(m.get('push_close_codes_received_total{code="4000"}'), 1);
  assertEquals(m.get('push_close_codes_sent_total{code="4000"}'), 1);
  assertEquals(m.get("push_channels"), 1);
  assertEquals(m.get("push_channels_active"), 1);
  assertEquals(m.get("push_history_messages"), 1);
  assert(m.get("push_messages_pushed_total")! >= 2, "the subscribed notice and the publication");
  assert(m.get("push_bytes_pushed_total")! > 0);
});

Deno.test("/healthz answers ok", async () => {
  await using server = await startTestServer();
  const response = await fetch(server.httpUrl + "/healthz");
  assertEquals([response.status, await response.json()], [200, { status: "ok" }]);
});
