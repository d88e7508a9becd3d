/**
 * Options: defaults, flags, environment variables, precedence and clear errors.
 */
import { assert, assertEquals, assertMatch, assertStringIncludes, assertThrows } from "@std/assert";
import {
  ConfigError,
  defaultConfig,
  envName,
  helpText,
  OPTIONS,
  parseConfig,
} from "../src/config.ts";

const noEnv = () => undefined;

Deno.test("the defaults are the documented ones", () => {
  const c = defaultConfig();
  assertEquals([c.hostname, c.wsPort, c.httpPort], ["127.0.0.1", 9000, 8080]);
  assertEquals([c.maxMessageBytes, c.maxHeaderBytes, c.handshakeTimeout], [1 << 20, 8192, 5000]);
  assertEquals([c.demo, c.demoInterval, c.logLevel], [true, [2000, 5000], "info"]);
});

Deno.test("flags accept --name value and --name=value, with units", () => {
  const c = parseConfig(
    [
      "--ws-port",
      "0",
      "--http-port=0",
      "--max-message-bytes",
      "64KiB",
      "--close-timeout=250ms",
      "--demo=false",
    ],
    noEnv,
  );
  assertEquals([c.wsPort, c.httpPort, c.maxMessageBytes, c.closeTimeout, c.demo], [
    0,
    0,
    65536,
    250,
    false,
  ]);
  assertEquals(parseConfig(["--handshake-timeout", "2s"], noEnv).handshakeTimeout, 2000);
  assertEquals(parseConfig(["--demo"], noEnv).demo, true);
});

Deno.test("environment variables apply, and a flag wins over them", () => {
  const env = (name: string) =>
    ({ PUSH_WS_PORT: "9100", PUSH_LOG_LEVEL: "debug" } as Record<string, string>)[name];
  assertEquals(parseConfig([], env).wsPort, 9100);
  assertEquals(parseConfig([], env).logLevel, "debug");
  assertEquals(parseConfig(["--ws-port", "9200"], env).wsPort, 9200);
});

Deno.test("bad values and unknown flags throw a ConfigError that names them", () => {
  const cases: [string[], string][] = [
    [["--ws-port", "70000"], "--ws-port"],
    [["--ws-port", "abc"], "whole number"],
    [["--log-level", "loud"], "silent, error, warn, info, debug"],
    [["--demo-interval", "5-2"], "MIN must not exceed MAX"],
    [["--bogus"], 'Unknown option "--bogus"'],
    [["--ws-port"], "needs a value"],
    [["--close-timeout", "soon"], "duration"],
  ];
  for (const [args, text] of cases) {
    assertStringIncludes(assertThrows(() => parseConfig(args, noEnv), ConfigError).message, text);
  }
  const env = (name: string) => name === "PUSH_MAX_CLIENTS" ? "0" : undefined;
  assertStringIncludes(
    assertThrows(() => parseConfig([], env), ConfigError).message,
    "PUSH_MAX_CLIENTS",
  );
});

Deno.test("every option has a PUSH_ environment variable and a line in --help", () => {
  const help = helpText();
  for (const option of OPTIONS) {
    assertStringIncludes(help, `--${option.flag}`);
    assertStringIncludes(help, envName(option.flag));
  }
  assertEquals(envName("max-queue-bytes"), "PUSH_MAX_QUEUE_BYTES");
});

Deno.test("the README documents every option with its environment variable and default", async () => {
  const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));
  for (const option of OPTIONS) {
    const row = new RegExp(
      `\\|\\s*\`--${option.flag}\`\\s*\\|\\s*\`${envName(option.flag)}\`\\s*\\|\\s*\`${
        (option.default || '""').replace(/[.*+?^${}()|[\]\\]/g, "\\$&")
      }\`\\s*\\|`,
    );
    assertMatch(readme, row, `README row for --${option.flag}`);
  }
});

Deno.test("a bad --redis URL is refused without its password, from a flag or the environment", () => {
  for (
    const url of ["redis://:hunter2@host:6379/x", "redis://u:hunter2@host:99999", "redis:hunter2@h"]
  ) {
    const fromFlag = assertThrows(() => parseConfig(["--redis", url], noEnv), ConfigError);
    const env = (name: string) => name === "PUSH_REDIS" ? url : undefined;
    const fromEnv = assertThrows(() => parseConfig([], env), ConfigError);
    for (const err of [fromFlag, fromEnv]) {
      assert(!err.message.includes("hunter2"), err.message);
      assertStringIncludes(err.message, "***@");
    }
  }
  // A mistyped flag is named without its value, which may be the secret itself.
  const typo = assertThrows(
    () => parseConfig(["--redis-url=redis://:hunter2@h"], noEnv),
    ConfigError,
  );
  assert(!typo.message.includes("hunter2"), typo.message);
  assertStringIncludes(typo.message, '"--redis-url"');
  // The URL from the issue is valid (a trailing "/" is database 0): accepted, not printed.
  assertEquals(
    parseConfig(["--redis", "redis://:secret@host:6379/"], noEnv).redis,
    "redis://:secret@host:6379/",
  );
});
