/**
 * The echo endpoint (`/echo`): every text or binary message comes back unchanged, no push loop
 * feed. It is the peer conformance tools (and our own conformance suite) talk to.
 *
 * @module
 */
import type { ConnectionHandler } from "../net/connection.ts";

/** The handler of the echo endpoint. */
export const echoHandler: ConnectionHandler = {
  onMessage(c, message) {
    if (message.type === "text") c.sendText(message.data);
    else c.sendBinary(message.data);
  },
};
