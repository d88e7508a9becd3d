/**
 * `deno task compile` builds a single binary that serves the page and WebSockets.
 *
 * `deno compile` needs the `denort` runtime, which it downloads from Deno's CDN unless
 * `DENORT_BIN` points at a local copy. Where neither works (our CI machines cannot reach the
 * CDN), this test is skipped and says so; everywhere else it must pass.
 */
import { assertEquals, assertStringIncludes } from "@std/assert";
import { FREE_PORTS_NO_DEMO, spawnServer } from "../support/child_server.ts";
import { TestSocket } from "../support/ws_client.ts";

const root = new URL("../../", import.meta.url).pathname;
const output = `${root}.artifacts/push-server-test`;
await Deno.mkdir(`${root}.artifacts`, { recursive: true });

/** The command of `deno task compile` (read from deno.json), writing to a test path. */
const task: string = JSON.parse(await Deno.readTextFile(`${root}deno.json`)).tasks.compile;
const taskArgs = task.split(/\s+/).slice(1); // without "deno"
taskArgs[taskArgs.indexOf("--output") + 1] = output;
const compile = await new Deno.Command(Deno.execPath(), {
  args: taskArgs,
  cwd: root,
  stdout: "piped",
  stderr: "piped",
}).output();
const compileLog = new TextDecoder().decode(compile.stderr);
const runtimeUnavailable = !compile.success &&
  /Setting up base binary|error sending request|dns error|denort/i.test(compileLog);
if (runtimeUnavailable) {
  console.log(
    "SKIP compile test: `deno compile` could not obtain its denort runtime (Deno's CDN is " +
      "unreachable from this machine and DENORT_BIN is not set). The error was: " +
      compileLog.split("\n").find((l) => /error sending request|dns error/i.test(l))?.trim(),
  );
}

Deno.test({
  name: "the compiled binary serves the page and WebSocket clients, and exits 0 on SIGTERM",
  ignore: runtimeUnavailable,
  async fn() {
    assertEquals(compile.success, true, `deno compile failed:\n${compileLog}`);
    await using server = await spawnServer(output, [
      ...FREE_PORTS_NO_DEMO,
    ]);
    const page = await fetch(`http://127.0.0.1:${server.httpPort}/`);
    assertStringIncludes(await page.text(), "<html");
    await using ws = new TestSocket(`ws://127.0.0.1:${server.wsPort}/echo`);
    await ws.opened;
    ws.socket.send("from the binary");
    assertEquals(await ws.next(), "from the binary");
    server.process.kill("SIGTERM");
    assertEquals((await ws.closed).code, 1001);
    assertEquals((await server.status).code, 0);
  },
});
