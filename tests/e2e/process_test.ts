/**
 * The real process, started the way `deno task start` starts it: flags, exit codes, signals.
 */
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { RUN_ARGS, spawnServer } from "../support/child_server.ts";
import { TestSocket } from "../support/ws_client.ts";

const root = new URL("../../", import.meta.url).pathname;
async function runMain(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), { args: [...RUN_ARGS, ...args], cwd: root })
    .output();
  const decoder = new TextDecoder();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

Deno.test("a bad flag value exits with code 2 and a message naming the flag", async () => {
  const result = await runMain(["--ws-port", "99999"]);
  assertEquals(result.code, 2);
  assertStringIncludes(result.stderr, "Invalid --ws-port");
});

Deno.test("a bad --redis URL exits 2 without printing its password", async () => {
  const result = await runMain(["--redis", "redis://:hunter2@cache.internal:6379/x"]);
  assertEquals(result.code, 2);
  assertStringIncludes(result.stderr, "Invalid --redis");
  assertStringIncludes(result.stderr, "redis://:***@cache.internal:6379/x");
  assert(!(result.stdout + result.stderr).includes("hunter2"), result.stderr);
});

Deno.test("bound beyond loopback without a token, the server warns at start and still serves", async () => {
  await using server = await spawnServer(Deno.execPath(), [
    ...RUN_ARGS,
    "--hostname",
    "0.0.0.0",
    "--ws-port",
    "0",
    "--http-port",
    "0",
  ]);
  // Logged before the servers listen, so they are among the lines read so far.
  const warnings = server.logs.filter((line) => line.includes(" warn "));
  assert(warnings.some((line) => line.includes("publish.unprotected")), warnings.join("\n"));
  assert(warnings.some((line) => line.includes("hosts.addresses_only")), warnings.join("\n"));
  // Bound to all interfaces, an IP literal is a valid Host (it cannot be rebound).
  const ready = await fetch(`http://127.0.0.1:${server.httpPort}/readyz`);
  assertEquals(ready.status, 200);
  await ready.body?.cancel();
});

Deno.test("--help lists the options and exits 0", async () => {
  const result = await runMain(["--help"]);
  assertEquals(result.code, 0);
  assertStringIncludes(result.stdout, "--max-clients");
  assertStringIncludes(result.stdout, "PUSH_WS_PORT");
});

Deno.test("SIGTERM sends 1001 going away to clients and the process exits 0", async () => {
  const server = await spawnServer(Deno.execPath(), [
    ...RUN_ARGS,
    "--ws-port",
    "0",
    "--http-port",
    "0",
  ], {
    PUSH_DEMO_INTERVAL: "20-40",
  });
  await using _ = server;
  await using ws = new TestSocket(`ws://127.0.0.1:${server.wsPort}/`);
  await ws.opened;
  await ws.nextMatching(/^I am waiting/);
  server.process.kill("SIGTERM");
  const close = await ws.closed;
  assertEquals([close.code, close.reason], [1001, "going away"]);
  assertEquals((await server.status).code, 0);
  assertStringIncludes(server.logs.join("\n"), "server.stopped");
});
