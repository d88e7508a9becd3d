/**
 * The closing handshake of RFC 6455 §7 as a sans-I/O state object: it is told what happened
 * (we close, the peer's close frame arrived, our close frame was written, a protocol failure,
 * the close deadline) and answers with what the I/O shell must do next. It never touches a
 * socket or a clock, so every rule is unit-tested on events and bytes.
 *
 * The rules it keeps:
 * - Either side may start; the other echoes the code (§5.5.1). A close without a code (1005)
 *   is answered without one, since 1005 must never be sent (§7.4.1).
 * - After sending a close frame, no more data frames are sent (§5.5.1), so the frame seals the
 *   outgoing queue; the data already queued goes first unless the close discards it.
 * - Once both close frames are exchanged, the server closes TCP first (§7.1.1).
 * - After _Fail the WebSocket Connection_ (§7.1.7) no more input is processed; once our close
 *   frame is out, the server half-closes so the peer reads it and an EOF instead of a reset,
 *   and waits for the peer to close (or the deadline).
 *
 * @module
 */
import { CloseCode } from "./close.ts";
import { encodeCloseFrame } from "./frame_encoder.ts";

/** Where the handshake stands: data flows while "open"; "closed" once TCP must be closed. */
export type CloseState = "open" | "closing" | "closed";

/** A close frame's code and reason. */
export interface CloseFrame {
  /** The close code (1005 when the frame carried none). */
  code: number;
  /** The reason text ("" when none). */
  reason: string;
}

/**
 * What the I/O shell does after an event:
 * - `send`: queue {@linkcode CloseHandshake.frame} (after the data, or instead of it when
 *   {@linkcode CloseHandshake.discard}), arm the close deadline, stop producers;
 * - `close-tcp`: close the socket now;
 * - `half-close`: shut down the write side, keep reading until the peer closes or the deadline;
 * - `none`: nothing.
 */
export type CloseAction = "send" | "close-tcp" | "half-close" | "none";

/**
 * One connection's closing handshake, server side.
 *
 * @example
 * ```ts
 * const h = new CloseHandshake();
 * h.received(1000, "bye"); // "send": echo 1000 "bye"
 * h.frameWritten();        // "close-tcp": both frames exchanged, the server closes first
 * ```
 */
export class CloseHandshake {
  /** The close frame this side sent (or is about to), once the closing started. */
  sent: CloseFrame | null = null;
  /** The peer's close frame, once received. */
  receivedFrame: CloseFrame | null = null;
  /** Whether the connection failed (§7.1.7): input after the failure is ignored. */
  failed = false;
  /** Whether the waiting outgoing data is dropped in favour of the close frame. */
  discard = false;
  #state: CloseState = "open";
  #written = false;

  /** Where the handshake stands. */
  get state(): CloseState {
    return this.#state;
  }

  /** The close frame to queue after a `send` action. */
  frame(): Uint8Array {
    if (this.sent === null) throw new Error("no close frame to send");
    return encodeCloseFrame(this.sent.code, this.sent.reason);
  }

  /**
   * This side starts the closing handshake with `code` and `reason`; `discard` drops the data
   * still queued (a slow consumer, a peer that stopped answering). Only the first close counts.
   */
  close(code: number, reason = "", discard = false): CloseAction {
    if (this.#state !== "open") return "none";
    this.#state = "closing";
    this.sent = { code, reason };
    this.discard = discard;
    return "send";
  }

  /**
   * _Fail the WebSocket Connection_ with `code`: a close frame goes out after the replies the
   * peer already earned, and nothing it sends afterwards is processed.
   */
  fail(code: number, reason: string): CloseAction {
    this.failed = true;
    return this.close(code, reason, false);
  }

  /** The peer's close frame arrived (`code` 1005 when it carried none). */
  received(code: number, reason: string): CloseAction {
    if (this.receivedFrame !== null || this.#state === "closed") return "none";
    this.receivedFrame = { code, reason };
    if (this.#state === "open") {
      // Echo the peer's code; 1005 means it sent none, so neither do we.
      return this.close(code, code === CloseCode.NoStatus ? "" : reason);
    }
    // We closed first and this is the answer: done once our frame is out.
    return this.#written ? this.#toClosed() : "none";
  }

  /** Our close frame (and everything before it) has been written in full. */
  frameWritten(): CloseAction {
    if (this.#state !== "closing" || this.#written) return "none";
    this.#written = true;
    if (this.receivedFrame !== null) return this.#toClosed();
    return this.failed ? "half-close" : "none";
  }

  /** The peer did not answer within the close deadline. */
  timedOut(): CloseAction {
    return this.#state === "closing" ? this.#toClosed() : "none";
  }

  /** The socket is gone (EOF, error, abort): nothing more to do. */
  transportClosed(): void {
    this.#state = "closed";
  }

  #toClosed(): CloseAction {
    this.#state = "closed";
    return "close-tcp";
  }
}
