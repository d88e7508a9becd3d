/**
 * Starts the whole push server in-process on free ports, with its log lines captured, for
 * integration tests.
 *
 * @module
 */
import { type App, startApp } from "../../src/app.ts";
import { type Config, parseConfig } from "../../src/config.ts";
import { Logger } from "../../src/log.ts";
import { Hub } from "../../src/push/hub.ts";
import { MemoryBroker } from "../../src/push/memory_broker.ts";

/** A running test server and what it logged. */
export interface TestServer extends App {
  /** Every log line written so far. */
  logs: string[];
  /** The in-process hub's epoch (tests run without --redis). */
  epoch: string;
  /** The WebSocket base URL, e.g. "ws://127.0.0.1:41234". */
  wsUrl: string;
  /** The page server's base URL, e.g. "http://127.0.0.1:41235". */
  httpUrl: string;
  /** Resolves with the first log line (existing or future) that contains `text`. */
  waitForLog(text: string): Promise<string>;
  /** Stops the server and waits for every loop and socket to end. */
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Starts a server with `args` (command-line flags) on ports chosen by the OS, debug logging
 * captured, and the demo feed off unless the flags turn it on.
 */
export async function startTestServer(args: string[] = []): Promise<TestServer> {
  const config: Config = parseConfig(
    ["--ws-port", "0", "--http-port", "0", "--demo", "false", "--log-level", "debug", ...args],
    () => undefined,
  );
  const logs: string[] = [];
  const waiters: { text: string; resolve: (line: string) => void }[] = [];
  const logger = new Logger(config.logLevel, (line) => {
    logs.push(line);
    for (let i = waiters.length - 1; i >= 0; i--) {
      if (line.includes(waiters[i].text)) waiters.splice(i, 1)[0].resolve(line);
    }
  });
  const app = await startApp(config, logger);
  return {
    ...app,
    logs,
    epoch: app.hub instanceof Hub && app.hub.broker instanceof MemoryBroker
      ? app.hub.broker.epoch
      : "",
    wsUrl: `ws://127.0.0.1:${app.wsAddr.port}`,
    httpUrl: `http://127.0.0.1:${app.httpAddr.port}`,
    waitForLog(text) {
      const found = logs.find((line) => line.includes(text));
      if (found) return Promise.resolve(found);
      return new Promise((resolve) => waiters.push({ text, resolve }));
    },
    [Symbol.asyncDispose]: () => app.shutdown(),
  };
}
