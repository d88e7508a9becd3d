/**
 * Structured logging: one line per event, `time level event key=value ...` (logfmt), so a person
 * can read it like the original demo's console and a machine can parse it.
 *
 * @module
 */
/** The log levels, least to most verbose. */
export const LOG_LEVELS = ["silent", "error", "warn", "info", "debug"] as const;
/** One of {@linkcode LOG_LEVELS}. */
export type LogLevel = typeof LOG_LEVELS[number];

/** Values a log field may carry. */
export type LogValue = string | number | boolean | undefined;
/** The fields of one log line. */
export type LogFields = Record<string, LogValue>;

/** Where finished lines go; the default writes to stderr (stdout stays free for data). */
export type LogSink = (line: string, level: LogLevel) => void;

function quote(value: LogValue): string {
  const s = String(value);
  return /^[^\s"=]+$/.test(s) ? s : JSON.stringify(s);
}

/**
 * Writes one logfmt line per event at or above its level.
 *
 * @example
 * ```ts
 * const log = new Logger("info");
 * log.info("client.quit", { client: 7 }); // 2026-11-25T14:00:00.000Z info client.quit client=7
 * ```
 */
export class Logger {
  readonly #rank: number;
  readonly #sink: LogSink;

  /** Creates a logger that keeps lines at `level` or more severe and hands them to `sink`. */
  constructor(level: LogLevel, sink: LogSink = (line) => console.error(line)) {
    this.#rank = LOG_LEVELS.indexOf(level);
    this.#sink = sink;
  }

  /** Whether lines of `level` are written (skip building costly fields otherwise). */
  enabled(level: LogLevel): boolean {
    return LOG_LEVELS.indexOf(level) <= this.#rank && level !== "silent";
  }

  /** Logs a failure that needs an operator's attention. */
  error(event: string, fields?: LogFields): void {
    this.#write("error", event, fields);
  }

  /** Logs a refused or abnormal event (a rejected handshake, a protocol error). */
  warn(event: string, fields?: LogFields): void {
    this.#write("warn", event, fields);
  }

  /** Logs a lifecycle event (listening, connect, quit, close). */
  info(event: string, fields?: LogFields): void {
    this.#write("info", event, fields);
  }

  /** Logs per-message detail. */
  debug(event: string, fields?: LogFields): void {
    this.#write("debug", event, fields);
  }

  #write(level: LogLevel, event: string, fields?: LogFields): void {
    if (!this.enabled(level)) return;
    let line = `${new Date().toISOString()} ${level} ${event}`;
    for (const key in fields) {
      const value = fields[key];
      if (value !== undefined) line += ` ${key}=${quote(value)}`;
    }
    this.#sink(line, level);
  }
}
