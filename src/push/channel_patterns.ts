/**
 * Channel patterns, as token claims (`channels`, `publish`) and `--public-channels` write them:
 * an exact channel name (`news`), or a prefix ending in `*` (`chat.*` matches `chat.42` and
 * `chat.a.b`; the `*` stands for one character or more). `*` alone matches every channel.
 *
 * @module
 */

/** The longest pattern accepted (a channel name is at most 64 characters, plus the `*`). */
const MAX_PATTERN_CHARS = 65;
const PATTERN = /^[A-Za-z0-9_.-]{0,64}\*?$/;

/** A compiled set of channel patterns. */
export class ChannelPatterns {
  /** Matches nothing (no claim, no public channels). */
  static readonly NONE: ChannelPatterns = new ChannelPatterns(new Set(), []);

  readonly #exact: ReadonlySet<string>;
  readonly #prefixes: readonly string[];

  private constructor(exact: ReadonlySet<string>, prefixes: readonly string[]) {
    this.#exact = exact;
    this.#prefixes = prefixes;
  }

  /**
   * Compiles `patterns`; throws a `TypeError` naming the first one that is not a channel name
   * with an optional trailing `*`.
   *
   * @example
   * ```ts
   * const p = ChannelPatterns.parse(["news", "chat.*"]);
   * p.matches("chat.42"); // true
   * p.matches("sports"); // false
   * ```
   */
  static parse(patterns: readonly string[]): ChannelPatterns {
    if (patterns.length === 0) return ChannelPatterns.NONE;
    const exact = new Set<string>();
    const prefixes: string[] = [];
    for (const p of patterns) {
      if (typeof p !== "string" || p.length > MAX_PATTERN_CHARS || !PATTERN.test(p) || p === "") {
        throw new TypeError(`invalid channel pattern ${JSON.stringify(String(p).slice(0, 80))}`);
      }
      if (p.endsWith("*")) prefixes.push(p.slice(0, -1));
      else exact.add(p);
    }
    return new ChannelPatterns(exact, prefixes);
  }

  /** Whether no channel matches. */
  get empty(): boolean {
    return this.#exact.size === 0 && this.#prefixes.length === 0;
  }

  /** Whether `channel` matches one of the patterns. */
  matches(channel: string): boolean {
    if (this.#exact.has(channel)) return true;
    for (const prefix of this.#prefixes) {
      if (channel.length > prefix.length && channel.startsWith(prefix)) return true;
    }
    return false;
  }
}
