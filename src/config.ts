/**
 * Every option of the server: `main.ts` turns flags and environment into a {@linkcode Config}
 * with {@linkcode parseConfig}; a bad value becomes a {@linkcode ConfigError} (exit code 2). The
 * option table itself (flags, defaults, limits, help) is in `config_options.ts`.
 *
 * Precedence: flag, then environment variable, then default.
 *
 * @module
 */

import { boolean, type Config, OPTIONS } from "./config_options.ts";

export { type Config, OPTIONS } from "./config_options.ts";
export { LOG_LEVELS, type LogLevel } from "./log.ts";

/** A bad option value or an unknown flag; `main.ts` prints it and exits with code 2. */
export class ConfigError extends Error {
  /** Creates the error with a message that says what to do. */
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/** The environment variable of an option: `PUSH_` + the flag in upper snake case. */
export function envName(flag: string): string {
  return "PUSH_" + flag.toUpperCase().replaceAll("-", "_");
}

/** The configuration with every option at its default. */
export function defaultConfig(): Config {
  return parseConfig([], () => undefined);
}

/**
 * Builds the configuration from command-line `args` (`--flag value`, `--flag=value`; a bare
 * boolean flag means true) and `env` (a lookup of environment variables).
 * Throws {@linkcode ConfigError} naming the flag, the bad value and what is expected.
 *
 * @example
 * ```ts
 * parseConfig(["--ws-port", "0", "--demo=false"], () => undefined).wsPort; // 0
 * ```
 */
export function parseConfig(
  args: readonly string[],
  env: (name: string) => string | undefined,
): Config {
  const given = new Map<string, string>();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const m = /^--([a-z][a-z-]*)(?:=(.*))?$/.exec(arg);
    const spec = m && OPTIONS.find((o) => o.flag === m[1]);
    if (!m || !spec) {
      // Only the name: the value of a mistyped flag may be a secret.
      const name = arg.split("=")[0].slice(0, 80);
      throw new ConfigError(`Unknown option "${name}". Run with --help to list them.`);
    }
    let value = m[2];
    if (value === undefined) {
      const next = args[i + 1];
      if (spec.parse === boolean && (next === undefined || next.startsWith("--"))) value = "true";
      else if (next === undefined) throw new ConfigError(`Option --${spec.flag} needs a value.`);
      else value = args[++i];
    }
    given.set(spec.flag, value);
  }
  const config: Record<string, unknown> = {};
  for (const spec of OPTIONS) {
    const fromFlag = given.get(spec.flag);
    const fromEnv = env(envName(spec.flag));
    const source = fromFlag !== undefined
      ? `--${spec.flag}`
      : fromEnv !== undefined
      ? envName(spec.flag)
      : "default";
    try {
      config[spec.key] = spec.parse(fromFlag ?? fromEnv ?? spec.default);
    } catch (err) {
      throw new ConfigError(`Invalid ${source}: ${(err as Error).message}.`);
    }
  }
  if (Boolean(config.tlsCert) !== Boolean(config.tlsKey)) {
    throw new ConfigError("Options --tls-cert and --tls-key go together: give both or neither.");
  }
  return config as unknown as Config;
}

/** The `--help` text: usage and one line per option with its environment variable and default. */
export function helpText(): string {
  const lines = [
    "Usage: deno task start [--flag value ...]",
    "",
    "Options (flag / environment variable / default):",
  ];
  for (const o of OPTIONS) {
    lines.push(
      `  --${o.flag.padEnd(20)} ${envName(o.flag).padEnd(26)} ${
        (o.default || '""').padEnd(10)
      } ${o.help}`,
    );
  }
  return lines.join("\n");
}
