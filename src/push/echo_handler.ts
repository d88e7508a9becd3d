/**
 * The echo endpoint (`/echo`): every text or binary message comes back unchanged, no push loop
 * feed. It is the peer conformance tools (and our own conformance suite) talk to.
 *
 * @module
 */
import type { PeerHandler } from "../net/peer.ts";

/** The handler of the echo endpoint. */
export const echoHandler: PeerHandler = {
  onMessage(c, message) {
    if (message.type === "text") c.sendText(message.data);
    else c.sendBinary(message.data);
  },
};
