/**
 * The parsers of option values: whole numbers, sizes, durations, booleans, ranges, lists and log
 * levels. Each throws an `Error` saying what it expected; `parseConfig` adds the option's name.
 *
 * @module
 */
import { LOG_LEVELS, type LogLevel } from "./log.ts";
import { parseRedisUrl } from "./redis/url.ts";

/** A whole number within `min..max`. */
export function integer(min: number, max: number): (value: string) => number {
  return (value) => {
    if (!/^\d+$/.test(value)) throw new Error(`expected a whole number, got "${value}"`);
    const n = Number(value);
    if (n < min || n > max) throw new Error(`expected ${min}..${max}, got ${n}`);
    return n;
  };
}

const SIZE_UNITS: Record<string, number> = { "": 1, b: 1, kib: 1024, mib: 1024 * 1024 };

/** Bytes (`65536`, `64KiB`, `1MiB`) within `min..max`. */
export function size(min: number, max: number): (value: string) => number {
  return (value) => {
    const m = /^(\d+)\s*(b|kib|mib)?$/i.exec(value);
    if (!m) throw new Error(`expected bytes like 65536, 64KiB or 1MiB, got "${value}"`);
    return integer(min, max)(String(Number(m[1]) * SIZE_UNITS[(m[2] ?? "").toLowerCase()]));
  };
}

const TIME_UNITS: Record<string, number> = { "": 1, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** A duration (`500ms`, `5s`, `1m`, `1h`) in ms within `min..max`. */
export function duration(min: number, max: number): (value: string) => number {
  return (value) => {
    const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$/.exec(value);
    if (!m) throw new Error(`expected a duration like 500ms, 5s, 1m or 1h, got "${value}"`);
    const ms = Math.round(Number(m[1]) * TIME_UNITS[m[2] ?? ""]);
    if (ms < min || ms > max) throw new Error(`expected ${min}ms..${max}ms, got ${ms}ms`);
    return ms;
  };
}

/** The parser of boolean options (a bare boolean flag means true). */
export function boolean(value: string): boolean {
  if (/^(true|1|yes|on)$/i.test(value)) return true;
  if (/^(false|0|no|off)$/i.test(value)) return false;
  throw new Error(`expected true or false, got "${value}"`);
}

/** `MIN-MAX` milliseconds (the demo interval). */
export function range(value: string): [number, number] {
  const m = /^(\d+)(?:-(\d+))?$/.exec(value);
  if (!m) throw new Error(`expected MIN-MAX in milliseconds like 2000-5000, got "${value}"`);
  const min = Number(m[1]);
  const max = Number(m[2] ?? m[1]);
  if (max < min) throw new Error(`MIN must not exceed MAX, got "${value}"`);
  if (max > 3_600_000) throw new Error(`MAX must be at most 3600000 (1 h), got ${max}`);
  return [min, max];
}

/** A comma list, trimmed, without empty items. */
export function list(value: string): string[] {
  return value.split(",").map((s) => s.trim()).filter((s) => s !== "");
}

/** One of {@linkcode LOG_LEVELS}. */
export function logLevel(value: string): LogLevel {
  if (!(LOG_LEVELS as readonly string[]).includes(value)) {
    throw new Error(`expected one of ${LOG_LEVELS.join(", ")}, got "${value}"`);
  }
  return value as LogLevel;
}

/** Empty, or a URL matching `pattern` (`kind` names it in the error). */
export function url(pattern: RegExp, kind: string): (value: string) => string {
  return (value) => {
    if (value !== "" && !pattern.test(value)) {
      throw new Error(`expected ${kind} URL, got "${value.slice(0, 200)}"`);
    }
    return value;
  };
}

/** Empty, or a Redis URL `parseRedisUrl` accepts. */
export function redisUrl(value: string): string {
  try {
    if (value !== "") parseRedisUrl(value);
  } catch (err) {
    // Its message names the problem and the URL with the password replaced by ***: this
    // message goes to the terminal and to log collectors.
    throw new Error((err as Error).message.replace(/\.$/, ""));
  }
  return value;
}
