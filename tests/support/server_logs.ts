/**
 * Reading an in-process test server's log: waiting for a line written after a given point,
 * counting lines, and finding a raw connection's client id.
 *
 * @module
 */
import { delay, withDeadline } from "./async.ts";
import type { TestServer } from "./server.ts";

/**
 * The first log line at index `from` or later that contains `text`, waiting for it up to `ms`.
 * Waits on the server's log event; falls back to a bounded poll only when an older line also
 * matches (the server's `waitForLog` would return that one at once).
 */
export async function waitForLogSince(
  server: TestServer,
  from: number,
  text: string,
  ms: number,
): Promise<string> {
  const find = () => {
    for (let i = from; i < server.logs.length; i++) {
      if (server.logs[i].includes(text)) return server.logs[i];
    }
    return undefined;
  };
  const found = find();
  if (found !== undefined) return found;
  const deadline = performance.now() + ms;
  const line = await withDeadline(server.waitForLog(text), ms, `log line "${text}"`);
  if (server.logs.indexOf(line, from) !== -1) return line;
  while (performance.now() < deadline) {
    const again = find();
    if (again !== undefined) return again;
    await delay(5);
  }
  throw new Error(`timed out after ${ms} ms: log line "${text}" after line ${from}`);
}

/** The server's client id for the raw connection whose local port is `port` (from its log). */
export async function serverClientId(
  server: TestServer,
  from: number,
  port: number,
  ms = 3000,
): Promise<number> {
  // Only handshake.accepted lines have a path after the remote address.
  const line = await waitForLogSince(server, from, ` remote=127.0.0.1:${port} path=`, ms);
  const m = /client=(\d+)/.exec(line);
  if (!m) throw new Error(`no client id in ${line}`);
  return Number(m[1]);
}

/** Counts the log lines that contain `text`. */
export function countLogs(server: TestServer, text: string): number {
  let n = 0;
  for (const line of server.logs) if (line.includes(text)) n++;
  return n;
}
