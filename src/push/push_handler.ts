/**
 * The push endpoint (`/`): every client gets its own push loop and, unless disabled, the demo
 * feed. Text commands from the client: `quit` closes the connection with 1000; anything else is
 * logged and acknowledged with "Server received: …".
 *
 * @module
 */
import { CloseCode } from "../protocol/close.ts";
import type { ConnectionHandler } from "../net/connection.ts";
import type { Logger } from "../log.ts";
import { runDemoFeed } from "./demo_feed.ts";

/** Options of {@linkcode createPushHandler}. */
export interface PushHandlerOptions {
  /** Whether clients get the demo feed (a client opts out with `?demo=false`). */
  demo: boolean;
  /** The demo feed's wait range in ms. */
  demoInterval: readonly [number, number];
  /** Where events are logged. */
  logger: Logger;
}

/** The longest client text echoed into a log line or an acknowledgement preview. */
const PREVIEW_CHARS = 200;

/** Creates the handler of the push endpoint. */
export function createPushHandler(options: PushHandlerOptions): ConnectionHandler {
  const { logger } = options;
  return {
    onOpen(c) {
      const optOut = /^(0|false|no|off)$/i.test(c.request.query.get("demo") ?? "");
      if (options.demo && !optOut) {
        runDemoFeed(c, c.signal, options.demoInterval).catch((err) => {
          logger.error("demo.failed", { client: c.id, error: String(err) });
        });
      }
    },
    onMessage(c, message) {
      if (message.type === "binary") {
        logger.info("client.message", { client: c.id, binary_bytes: message.data.length });
        c.sendText(`Server received ${message.data.length} bytes of binary data`);
        return;
      }
      const text = message.data;
      if (text === "quit") {
        logger.info("client.quit", { client: c.id });
        c.close(CloseCode.Normal, "quit");
        return;
      }
      logger.info("client.message", { client: c.id, text: text.slice(0, PREVIEW_CHARS) });
      c.sendText(`Server received: ${text}`);
    },
  };
}
