/**
 * Parses `redis://[[user]:password@]host[:port][/db]` into connection options. Error messages
 * never repeat the password: they end up in logs and on terminals.
 *
 * @module
 */

/** Where a Redis server is and how to log in to it. */
export interface RedisOptions {
  /** Host name or IP address (IPv6 without brackets). */
  hostname: string;
  /** TCP port (6379 unless the URL says otherwise). */
  port: number;
  /** ACL user name (Redis 6+); sent with `AUTH` only when a password is set. */
  username?: string;
  /** Password: `AUTH` is sent on every (re)connect when set. */
  password?: string;
  /** Database index: `SELECT` is sent on every (re)connect when not 0. */
  db: number;
}

/** Redis's default port. */
export const DEFAULT_REDIS_PORT = 6379;

/** The largest database index Redis can be configured with (`databases` is an int). */
const MAX_DB = 2 ** 31 - 1;

/**
 * `url` with its password replaced by `***` (`redis://user:***@host`; user info without a
 * colon is all replaced), for every message and log line that shows a Redis URL. Everything up to
 * the last `@` after the scheme counts as user info, so a password with a raw `@`, `/` or `#` in
 * it, or a URL without `//`, is still hidden.
 *
 * @example
 * ```ts
 * redactUrl("redis://:s3cret@cache:6379/0"); // "redis://:***@cache:6379/0"
 * ```
 */
export function redactUrl(url: string): string {
  const at = url.lastIndexOf("@");
  const scheme = /^[A-Za-z][A-Za-z0-9+.-]*:(\/\/)?/.exec(url)?.[0] ?? "";
  if (at === -1) {
    // No user info, or a URL broken where a password may still be (`redis://:secret`, a host
    // forgotten): only a plain host[:port][/db] is shown.
    return /^[A-Za-z0-9.-]*(:\d*)?(\/\d*)?$/.test(url.slice(scheme.length)) ? url : `${scheme}***`;
  }
  const start = scheme.length <= at ? scheme.length : 0;
  const userinfo = url.slice(start, at);
  const colon = userinfo.indexOf(":");
  const hidden = colon === -1 ? "***" : `${userinfo.slice(0, colon)}:***`;
  return url.slice(0, start) + hidden + url.slice(at);
}

function decode(part: string, what: string, fail: (why: string) => never): string {
  try {
    return decodeURIComponent(part);
  } catch {
    return fail(`the ${what} has a bad percent-encoding`);
  }
}

/**
 * Parses a Redis URL. The user name and password may be percent-encoded (`%40` for `@`).
 *
 * @throws {Error} with a message naming the problem when the scheme is not `redis:` (`rediss:`,
 * TLS, is not supported), the host is missing, the port is not 1–65535, the database is not a
 * non-negative integer, a user name comes without a password, or the URL has a query or fragment.
 *
 * @example
 * ```ts
 * parseRedisUrl("redis://:s3cret@cache.internal:6380/2");
 * // { hostname: "cache.internal", port: 6380, password: "s3cret", db: 2 }
 * ```
 */
export function parseRedisUrl(url: string): RedisOptions {
  const fail = (why: string): never => {
    throw new Error(
      `Invalid Redis URL "${redactUrl(url)}": ${why}. ` +
        "Expected redis://[[user]:password@]host[:port][/db].",
    );
  };
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return fail("it is not a valid URL (check the host and the port, 1-65535)");
  }
  if (parsed.protocol === "rediss:") fail("TLS (rediss://) is not supported");
  if (parsed.protocol !== "redis:") fail(`the scheme must be redis://, not ${parsed.protocol}//`);
  if (parsed.search !== "" || parsed.hash !== "") {
    fail("query parameters and fragments are not supported");
  }
  const hostname = parsed.hostname.replace(/^\[(.*)\]$/, "$1");
  if (hostname === "") fail("the host is missing");
  let port = DEFAULT_REDIS_PORT;
  if (parsed.port !== "") {
    port = Number(parsed.port);
    if (port < 1 || port > 65535) fail(`the port must be 1-65535, got ${parsed.port}`);
  }
  let db = 0;
  if (parsed.pathname !== "" && parsed.pathname !== "/") {
    const digits = /^\/(\d{1,10})$/.exec(parsed.pathname)?.[1];
    db = digits === undefined ? NaN : Number(digits);
    if (!(db <= MAX_DB)) {
      // A path with "@" is a password with a raw "/" in it: never echo it.
      const got = parsed.pathname.includes("@")
        ? "a path with @ (percent-encode / and @ in the password)"
        : `"${parsed.pathname.slice(1)}"`;
      fail(`the database must be a non-negative integer, got ${got}`);
    }
  }
  const options: RedisOptions = { hostname, port, db };
  if (parsed.password !== "") options.password = decode(parsed.password, "password", fail);
  if (parsed.username !== "") {
    if (options.password === undefined) {
      fail("a user name needs a password (redis://user:password@host)");
    }
    options.username = decode(parsed.username, "user name", fail);
  }
  return options;
}
