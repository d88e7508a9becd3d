/**
 * Entry point: flags and environment → Config → start the servers → drain on SIGINT/SIGTERM.
 *
 * @module
 */
import { ConfigError, helpText, parseConfig } from "./src/config.ts";
import { Logger } from "./src/log.ts";
import { startApp } from "./src/app.ts";

if (import.meta.main) {
  if (Deno.args.includes("--help") || Deno.args.includes("-h")) {
    console.log(helpText());
    Deno.exit(0);
  }
  let config;
  try {
    config = parseConfig(Deno.args, (name) => Deno.env.get(name));
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    console.error(err.message);
    Deno.exit(2);
  }
  const logger = new Logger(config.logLevel);
  let app;
  try {
    app = await startApp(config, logger);
  } catch (err) {
    // Settings only checkable at start (a key file, the JWKS): the same exit as a bad flag.
    if (!(err instanceof ConfigError)) throw err;
    console.error(err.message);
    Deno.exit(2);
  }
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info("server.stopping", { signal, clients: app.ws.clients.size });
    await app.shutdown(config.drainTimeout);
    logger.info("server.stopped");
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", () => stop("SIGINT"));
  Deno.addSignalListener("SIGTERM", () => stop("SIGTERM"));
}
