/**
 * `POST /publish?channel=NAME`: the body is the message. Text for `text/*` and
 * `application/json` (embedded as JSON in the envelope), binary (base64 in the envelope)
 * otherwise. Answers `{"channel","epoch","id","delivered"}`; every error is JSON
 * `{"error": …}` with a precise status.
 *
 * @module
 */
import { concatBytes } from "../bytes.ts";
import type { Backlog } from "../net/outbox/backlog.ts";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import { type ChannelHub, isValidChannelName } from "../push/channel_hub.ts";
import { HubUnavailableError, type Publication } from "../push/broker.ts";

/** Options of {@linkcode createPublishHandler}. */
export interface PublishOptions {
  /** The channel engine. */
  hub: ChannelHub;
  /** Required bearer token; empty means only loopback peers that are not browsers may publish. */
  token: string;
  /** Largest body accepted (413 beyond). */
  maxMessageBytes: number;
  /** Where events are logged. */
  logger: Logger;
  /** Where events are counted. */
  metrics: Metrics;
  /** The outgoing backlog: publishing waits while it is high. */
  backlog?: Backlog;
}

const encoder = new TextEncoder();
const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Whether `hostname` is a loopback address (127.0.0.0/8, ::1, or IPv4-mapped 127.x). */
export function isLoopback(hostname: string): boolean {
  return hostname === "::1" || /^(::ffff:)?127\.\d+\.\d+\.\d+$/i.test(hostname);
}

async function sha256(text: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(text)));
}

/** Compares two equal-length byte arrays in time independent of where they differ. */
function timingSafeEqual(a: Uint8Array, b: Uint8Array): boolean {
  let diff = a.length ^ b.length;
  for (let i = 0; i < a.length && i < b.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

class PublishError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** Reads the body, refusing (413) as soon as it passes `max` bytes, whatever Content-Length says. */
async function readBody(request: Request, max: number): Promise<Uint8Array> {
  const declared = Number(request.headers.get("content-length") ?? NaN);
  if (declared > max) {
    throw new PublishError(413, `The message is ${declared} bytes; the limit is ${max}.`);
  }
  // A declared length is enforced by the HTTP server, so the body can be read in one piece:
  // reading it through the stream cost ~3% of the server's time under publish load. Not when
  // Transfer-Encoding is also sent (the body is then chunked, of any length), and the size is
  // checked again after reading in any case.
  const tooLarge = () => new PublishError(413, `The message exceeds the limit of ${max} bytes.`);
  if (Number.isInteger(declared) && !request.headers.has("transfer-encoding")) {
    const body = new Uint8Array(await request.arrayBuffer());
    if (body.length > max) throw tooLarge();
    return body;
  }
  const parts: Uint8Array[] = [];
  let total = 0;
  if (request.body) {
    for await (const chunk of request.body) {
      total += chunk.length;
      if (total > max) {
        throw tooLarge();
      }
      parts.push(chunk);
    }
  }
  return parts.length === 0 ? new Uint8Array(0) : concatBytes(parts, total);
}

/** Turns a body into a {@linkcode Publication} according to its Content-Type. */
export function toPublication(contentType: string, body: Uint8Array): Publication {
  const type = contentType.split(";")[0].trim().toLowerCase();
  const isJson = type === "application/json" || type.endsWith("+json");
  if (!isJson && !type.startsWith("text/")) return { kind: "binary", bytes: body };
  let text: string;
  try {
    text = strictUtf8.decode(body);
  } catch {
    throw new PublishError(
      400,
      "The body is not valid UTF-8; send binary data as application/octet-stream.",
    );
  }
  if (!isJson) return { kind: "text", text };
  try {
    JSON.parse(text);
  } catch (err) {
    throw new PublishError(400, `The body is not valid JSON: ${(err as Error).message}`);
  }
  // Validated, then forwarded as sent: re-serialising would round every number through a
  // double (12345678901234567891 would arrive as 12345678901234567000). Only the whitespace
  // around the value goes (JSON.parse accepted it, so it is JSON whitespace).
  return { kind: "json", json: text.trim() };
}

/**
 * Whether a browser sent `request`: browsers add `Origin` to every cross-origin request (and to
 * same-origin POSTs) and `Sec-Fetch-Site` to all; curl and backends send neither. A page on any
 * site can make the user's browser POST here (a `no-cors` text/plain request needs no preflight),
 * and the browser runs on the server's machine, so loopback alone proves nothing.
 */
export function isBrowserRequest(request: Request): boolean {
  const site = request.headers.get("sec-fetch-site");
  return request.headers.has("origin") || (site !== null && site !== "none");
}

/** Creates the handler of `POST /publish`. */
export function createPublishHandler(options: PublishOptions) {
  const tokenDigest = options.token ? sha256(options.token) : null;
  const json = (body: unknown, status: number, headers: Record<string, string> = {}) =>
    new Response(JSON.stringify(body), {
      status,
      headers: { "content-type": "application/json; charset=utf-8", ...headers },
    });

  async function authorize(request: Request, peer: string): Promise<void> {
    if (tokenDigest === null) {
      if (isBrowserRequest(request)) {
        throw new PublishError(
          403,
          "Browser requests may publish only with --publish-token and its bearer token.",
        );
      }
      if (!isLoopback(peer)) {
        throw new PublishError(
          403,
          "Publishing is allowed from loopback only unless --publish-token is set.",
        );
      }
      return;
    }
    const m = /^bearer +(.+)$/i.exec(request.headers.get("authorization") ?? ""); // RFC 7235: any case
    if (!m || !timingSafeEqual(await sha256(m[1]), await tokenDigest)) {
      throw new PublishError(401, "A valid Authorization: Bearer <token> header is required.", {
        "www-authenticate": 'Bearer realm="publish"',
      });
    }
  }

  return async (request: Request, peer: string): Promise<Response> => {
    const channel = new URL(request.url).searchParams.get("channel") ?? "";
    try {
      if (request.method !== "POST") {
        throw new PublishError(405, "Use POST to publish.", { allow: "POST" });
      }
      await authorize(request, peer);
      if (!isValidChannelName(channel)) {
        throw new PublishError(400, "Invalid or missing ?channel=: use 1-64 of A-Z a-z 0-9 _ - .");
      }
      const body = await readBody(request, options.maxMessageBytes);
      const publication = toPublication(request.headers.get("content-type") ?? "", body);
      // Back-pressure: while the server is behind on delivery, the publisher waits for it.
      await options.backlog?.wait();
      let result;
      try {
        result = await options.hub.publish(channel, publication);
      } catch (err) {
        if (!(err instanceof HubUnavailableError)) throw err;
        throw new PublishError(503, err.message, { "retry-after": "1" });
      }
      const { epoch, id, delivered } = result;
      options.metrics.publishes++;
      options.logger.debug("publish", { channel, id, delivered, bytes: body.length });
      return json({ channel, epoch, id, delivered }, 200);
    } catch (err) {
      if (!(err instanceof PublishError)) throw err;
      options.metrics.publishesRejected.inc(err.status);
      options.logger.warn("publish.rejected", {
        peer,
        channel: channel.slice(0, 80),
        status: err.status,
        reason: err.message,
      });
      await request.body?.cancel().catch(() => {});
      return json({ error: err.message }, err.status, err.headers);
    }
  };
}
