/**
 * What an endpoint sees of a client: the narrow {@linkcode Peer} interface and the
 * {@linkcode PeerHandler} it implements. Endpoints (`src/push/`) import these types only, so the
 * transport never depends on them, and their logic can be tested against a recording peer.
 *
 * @module
 */
import type { HandshakeRejection, UpgradeRequest } from "../protocol/handshake.ts";
import type { TokenBucket } from "./rate_limit.ts";

/**
 * The query parameter that carries a credential (`?token=JWT`): never kept on the connection
 * (see {@linkcode withoutParam}) and never logged (see {@linkcode redactParam}).
 */
export const CREDENTIAL_PARAM = "token";

/**
 * The parts of the upgrade request a connection keeps: path, origin and the raw query string.
 * Headers are not kept, and the query is parsed when asked for (handlers read it once, at open),
 * so idle clients do not each hold a `URLSearchParams`.
 */
export class PeerRequest {
  /** The path of the request target, e.g. "/". */
  readonly path: string;
  /** The query string of the request target, with its "?" ("" when none). */
  readonly search: string;
  /** The Origin header, when the client is a browser. */
  readonly origin?: string;

  /** Keeps copies of `path`, `search` and `origin` (see {@linkcode ownString}). */
  constructor(path: string, search: string, origin?: string) {
    this.path = ownString(path);
    this.search = ownString(search);
    if (origin !== undefined) this.origin = ownString(origin);
  }

  /** The query, parsed anew at each call. */
  get query(): URLSearchParams {
    return new URLSearchParams(this.search);
  }
}

/**
 * `s` as a string of its own, not a part of another. V8 makes a substring of a long string a
 * slice that keeps the whole of it alive: the request target and Origin, cut from the request
 * head, kept the ~200 B head string alive on every idle client (measured on a heap snapshot).
 * JSON's round trip makes a flat copy, once per handshake.
 */
export function ownString(s: string): string {
  return s === "" ? s : JSON.parse(JSON.stringify(s));
}

/**
 * One connected client as an endpoint sees it. It is also the state of the endpoint's message
 * rate limit ({@linkcode TokenBucket}): two number fields on the connection cost an idle client
 * less than a bucket object of its own.
 */
export interface Peer extends TokenBucket {
  /** A process-unique id (for logs). */
  readonly id: number;
  /** The upgrade request's path, query and origin. */
  readonly request: PeerRequest;
  /** Aborted when the connection starts closing, for any reason: producers stop on it. */
  readonly signal: AbortSignal;
  /** Bytes waiting in its outgoing queue (data and control frames). */
  readonly queuedBytes: number;
  /** The most data bytes its queue holds before it is dropped as a slow consumer. */
  readonly maxQueueBytes: number;
  /** Queues a text message; false when the client is closing or was dropped as slow. */
  sendText(text: string): boolean;
  /** Queues a binary message; false when the client is closing or was dropped as slow. */
  sendBinary(data: Uint8Array): boolean;
  /**
   * Queues an already encoded frame (a broadcast encodes once for every subscriber). The frame
   * must not be changed afterwards: with permessage-deflate its compressed form is made once
   * and remembered by the frame's identity for the other subscribers.
   */
  sendFrame(frame: Uint8Array): boolean;
  /** Starts the closing handshake with `code` and `reason`; does nothing once closing. */
  close(code?: number, reason?: string): void;
  /**
   * Who the client is, as the route's {@linkcode PeerHandler.authorize} said (the push endpoint
   * keeps its verified token's identity here; it may replace it on a refresh); null on routes
   * without it. Opaque to the transport.
   */
  identity: unknown;
  /**
   * When the handler's {@linkcode PeerHandler.onDeadline} is due (`clockMs` time); 0
   * while none is set. The server's shared ticker checks it with the other deadlines, so a
   * handler can act at a time (a token's expiry) without a timer per connection.
   */
  deadline: number;
  /**
   * Calls `callback` once, from its writer, when its queue has drained to a quarter of
   * {@linkcode Peer.maxQueueBytes} or less; a later call replaces an earlier one.
   */
  onDrain(callback: () => void): void;
}

/** A client message: a whole text or binary message. */
export type PeerMessage = { type: "text"; data: string } | { type: "binary"; data: Uint8Array };

/** A handshake the route's {@linkcode PeerHandler.authorize} accepts, with who the client is. */
export interface Authorized {
  /** Kept as {@linkcode Peer.identity}. */
  identity: unknown;
}

/** What a route does with its clients. Every method is optional but `onMessage`. */
export interface PeerHandler {
  /**
   * Decides, during the opening handshake and before the 101, whether the client may connect:
   * its identity, or a rejection (e.g. 401 and why) answered instead of the upgrade. Async (a
   * signature check is); the handshake deadline bounds it. Must not reject.
   */
  authorize?(request: UpgradeRequest): Promise<Authorized | HandshakeRejection>;
  /** Called once the 101 response is queued; start producers here (with `peer.signal`). */
  onOpen?(peer: Peer): void;
  /** A whole text or binary message from the client. */
  onMessage(peer: Peer, message: PeerMessage): void;
  /**
   * Called once when the connection starts closing (any reason), right after its signal aborts:
   * stop routing messages to it. A plain method, not an abort listener, because a listener per
   * connection costs memory on every idle client.
   */
  onClosing?(peer: Peer): void;
  /** Called once, after the socket is closed and both loops have ended. */
  onClose?(peer: Peer): void;
  /**
   * Called from the shared ticker once `now` (`clockMs`) reaches
   * {@linkcode Peer.deadline} (reset to 0 first) while the connection is open.
   */
  onDeadline?(peer: Peer, now: number): void;
}

/**
 * `search` (a query string with its "?") without the parameter `name`; the other parameters are
 * kept byte for byte. Returns `search` itself when it does not hold `name`.
 */
export function withoutParam(search: string, name: string): string {
  return replaceParam(search, name, null);
}

/** `search` with the value of the parameter `name` replaced by `***`, for a log line. */
export function redactParam(search: string, name: string): string {
  return replaceParam(search, name, `${name}=***`);
}

function replaceParam(search: string, name: string, replacement: string | null): string {
  if (search === "") return search;
  const kept: string[] = [];
  let found = false;
  for (const part of search.slice(1).split("&")) {
    const eq = part.indexOf("=");
    if (paramName(eq < 0 ? part : part.slice(0, eq)) !== name) {
      kept.push(part);
    } else {
      found = true;
      if (replacement !== null) kept.push(replacement);
    }
  }
  if (!found) return search;
  return kept.length === 0 ? "" : `?${kept.join("&")}`;
}

/** A parameter name as URLSearchParams reads it (`+` is a space, %XX decoded). */
function paramName(raw: string): string {
  const spaced = raw.replaceAll("+", " ");
  if (!spaced.includes("%")) return spaced;
  try {
    return decodeURIComponent(spaced);
  } catch {
    return spaced;
  }
}
