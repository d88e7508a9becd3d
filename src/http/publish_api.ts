/**
 * `POST /publish?channel=NAME`: the body is the message. Text for `text/*` and
 * `application/json` (embedded as JSON in the envelope), binary (base64 in the envelope)
 * otherwise. Answers `{"channel","epoch","id","delivered"}`; every error is JSON
 * `{"error": …}` with a precise status.
 *
 * Who may publish: the API key (`--publish-token` as a bearer token); or, when token
 * verification is configured, a JWT whose `publish` claim matches the channel (401 for a token
 * that does not verify, 403 for a channel it may not publish to); without either credential,
 * loopback peers that are not browsers when no API key is set.
 *
 * @module
 */
import { concatBytes } from "../bytes.ts";
import type { Backlog } from "../net/outbox/backlog.ts";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import { type ChannelHub, isValidChannelName } from "../push/channel_hub.ts";
import { HubUnavailableError, type Publication } from "../push/broker.ts";
import type { Authenticator, Identity } from "../push/auth.ts";
import { TokenError } from "../push/jwt.ts";
import { ApiError, ApiKey, bearerToken, jsonResponse } from "./api_key.ts";
import {
  type IdempotencyClaims,
  IdempotencyStore,
  isValidIdempotencyKey,
  type StoredAnswer,
} from "./idempotency.ts";

/** The most channels one `POST /publish` may name (each is a publish: bounded work). */
export const MAX_CHANNELS_PER_PUBLISH = 100;

/** Options of {@linkcode createPublishHandler}. */
export interface PublishOptions {
  /** The channel engine. */
  hub: ChannelHub;
  /** The API key (bearer token); empty means only loopback peers that are not browsers may publish. */
  token: string;
  /**
   * Verifies JWTs (`--jwt-*`): a token whose `publish` claim matches the channel may publish,
   * from a browser too. Without it, a bearer value other than the API key is refused (401).
   */
  authenticator?: Authenticator;
  /** Largest body accepted (413 beyond). */
  maxMessageBytes: number;
  /** How long an `Idempotency-Key`'s first answer is replayed (ms); 0 = the header is ignored. */
  idempotencyWindow?: number;
  /** Where the keys live (Redis: shared by every instance); default the in-process store. */
  idempotencyStore?: IdempotencyClaims;
  /** Where events are logged. */
  logger: Logger;
  /** Where events are counted. */
  metrics: Metrics;
  /** The outgoing backlog: publishing waits while it is high. */
  backlog?: Backlog;
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Reads the body, refusing (413) as soon as it passes `max` bytes, whatever Content-Length says. */
async function readBody(request: Request, max: number): Promise<Uint8Array> {
  const declared = Number(request.headers.get("content-length") ?? NaN);
  if (declared > max) {
    throw new ApiError(413, `The message is ${declared} bytes; the limit is ${max}.`);
  }
  // A declared length is enforced by the HTTP server, so the body can be read in one piece:
  // reading it through the stream cost ~3% of the server's time under publish load. Not when
  // Transfer-Encoding is also sent (the body is then chunked, of any length), and the size is
  // checked again after reading in any case.
  const tooLarge = () => new ApiError(413, `The message exceeds the limit of ${max} bytes.`);
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
    throw new ApiError(
      400,
      "The body is not valid UTF-8; send binary data as application/octet-stream.",
    );
  }
  if (!isJson) return { kind: "text", text };
  try {
    JSON.parse(text);
  } catch (err) {
    throw new ApiError(400, `The body is not valid JSON: ${(err as Error).message}`);
  }
  // Validated, then forwarded as sent: re-serialising would round every number through a
  // double (12345678901234567891 would arrive as 12345678901234567000). Only the whitespace
  // around the value goes (JSON.parse accepted it, so it is JSON whitespace).
  return { kind: "json", json: text.trim() };
}

/** Creates the handler of `POST /publish`. */
export function createPublishHandler(options: PublishOptions) {
  const key = new ApiKey(options.token, "publish");
  const { authenticator } = options;
  const window = options.idempotencyWindow ?? 0;
  const store = window <= 0
    ? null
    : options.idempotencyStore ?? new IdempotencyStore(window, options.metrics);

  /**
   * Runs `publish` at most once per `Idempotency-Key` within the window; a repeat gets the first
   * answer (a concurrent one waits for it). The key is scoped to the credential (the API key and
   * the loopback rule are one publisher; each JWT user another) and the set of channels, so two
   * publishers, or one key reused for other channels, never see each other's answers. An answer
   * that published nothing (an error, 503 on every channel) is not kept: the retry publishes.
   */
  async function once(
    request: Request,
    identity: Identity | null,
    channels: string[],
    publish: () => Promise<StoredAnswer>,
  ): Promise<Response> {
    const respond = (a: StoredAnswer) => jsonResponse(a.body, a.status, a.headers);
    const key = request.headers.get("idempotency-key");
    if (key === null || store === null) return respond(await publish());
    if (!isValidIdempotencyKey(key)) {
      throw new ApiError(400, "Invalid Idempotency-Key: use 1-255 visible ASCII characters.");
    }
    const who = identity ? `jwt:${identity.user}` : "key";
    const claim = await store.claim(`${who}\n${[...channels].sort().join(",")}\n${key}`);
    if (claim.replay) {
      await request.body?.cancel().catch(() => {});
      options.logger.debug("publish.replayed", {
        channels: channels.length,
        status: claim.replay.status,
      });
      return respond(claim.replay);
    }
    let answer: StoredAnswer | null = null;
    try {
      answer = await publish();
      return respond(answer);
    } finally {
      const published = answer !== null && (answer.status === 200 ||
        (Array.isArray(answer.body) && answer.body.some((r) => !("error" in r))));
      await claim.settle(published ? answer : null);
    }
  }

  /**
   * Who is publishing: null for the API key or the loopback rule, the identity for a JWT.
   * Throws 401 for a bearer value that is neither the key nor a valid token.
   */
  async function authenticate(request: Request, peer: string): Promise<Identity | null> {
    const bearer = bearerToken(request);
    if (bearer !== null && await key.matches(bearer)) return null;
    if (bearer !== null && authenticator) {
      try {
        return await authenticator.verify(bearer);
      } catch (err) {
        if (!(err instanceof TokenError)) throw err;
        options.metrics.authFailures.inc(err.reason);
        throw new ApiError(
          401,
          `The bearer token is neither the API key nor a valid token: ${err.message}.`,
          key.invalidToken(),
          { reason: err.reason },
        );
      }
    }
    // No valid credential: today's rule (a configured key is required; without one, loopback
    // peers that are not browsers).
    key.refuseWithoutCredential(request, peer, "publish");
    return null;
  }

  /** Publishes `publication` to each channel at once; one answer (or error) per channel. */
  async function publishAll(
    channels: string[],
    publication: Publication,
  ): Promise<{ results: Record<string, unknown>[]; failed: boolean }> {
    const settled = await Promise.allSettled(
      channels.map((channel) => options.hub.publish(channel, publication)),
    );
    let failed = false;
    const results = settled.map((outcome, i) => {
      const channel = channels[i];
      if (outcome.status === "fulfilled") {
        const { epoch, id, delivered } = outcome.value;
        options.metrics.publishes++;
        return { channel, epoch, id, delivered };
      }
      if (!(outcome.reason instanceof HubUnavailableError)) throw outcome.reason;
      failed = true;
      options.metrics.publishesRejected.inc(503);
      return { channel, error: outcome.reason.message, status: 503 };
    });
    return { results, failed };
  }

  return async (request: Request, peer: string): Promise<Response> => {
    const listed = new URL(request.url).searchParams.getAll("channel");
    if (listed.length > 1) return await publishMany(request, peer, listed);
    const channel = listed[0] ?? "";
    try {
      if (request.method !== "POST") {
        throw new ApiError(405, "Use POST to publish.", { allow: "POST" });
      }
      const identity = await authenticate(request, peer);
      if (!isValidChannelName(channel)) {
        throw new ApiError(400, "Invalid or missing ?channel=: use 1-64 of A-Z a-z 0-9 _ - .");
      }
      // The same patterns as subscribing: a token without a `publish` claim matches nothing.
      if (identity !== null && !identity.publish.matches(channel)) {
        throw new ApiError(403, `This token may not publish to ${channel}.`, {}, { channel });
      }
      return await once(request, identity, [channel], async () => {
        const body = await readBody(request, options.maxMessageBytes);
        const publication = toPublication(request.headers.get("content-type") ?? "", body);
        // Back-pressure: while the server is behind on delivery, the publisher waits for it.
        await options.backlog?.wait();
        let result;
        try {
          result = await options.hub.publish(channel, publication);
        } catch (err) {
          if (!(err instanceof HubUnavailableError)) throw err;
          throw new ApiError(503, err.message, { "retry-after": "1" });
        }
        const { epoch, id, delivered } = result;
        options.metrics.publishes++;
        options.logger.debug("publish", {
          channel,
          id,
          delivered,
          bytes: body.length,
          user: identity?.user,
        });
        return { status: 200, body: { channel, epoch, id, delivered }, headers: {} };
      });
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      options.metrics.publishesRejected.inc(err.status);
      options.logger.warn("publish.rejected", {
        peer,
        channel: channel.slice(0, 80),
        status: err.status,
        reason: err.message,
      });
      await request.body?.cancel().catch(() => {});
      return jsonResponse({ error: err.message, ...err.fields }, err.status, err.headers);
    }
  };

  /**
   * `?channel=a&channel=b…`: one body to several channels. Everything is checked before
   * anything is published (a refused channel publishes nothing); the answer is the array of
   * single-channel answers in the order given, 200 when all were published, 503 when Redis
   * refused some (their entries carry `error` and `status`, so only those are retried).
   */
  async function publishMany(request: Request, peer: string, channels: string[]) {
    try {
      if (request.method !== "POST") {
        throw new ApiError(405, "Use POST to publish.", { allow: "POST" });
      }
      const identity = await authenticate(request, peer);
      if (channels.length > MAX_CHANNELS_PER_PUBLISH) {
        throw new ApiError(
          400,
          `Too many ?channel=: at most ${MAX_CHANNELS_PER_PUBLISH} per request.`,
        );
      }
      const seen = new Set<string>();
      for (const channel of channels) {
        if (!isValidChannelName(channel)) {
          throw new ApiError(
            400,
            `Invalid ?channel=${channel.slice(0, 80)}: use 1-64 of A-Z a-z 0-9 _ - .`,
          );
        }
        if (seen.has(channel)) throw new ApiError(400, `?channel=${channel} is listed twice.`);
        seen.add(channel);
      }
      const refused = identity && channels.find((c) => !identity.publish.matches(c));
      if (refused) {
        throw new ApiError(403, `This token may not publish to ${refused}.`, {}, {
          channel: refused,
        });
      }
      return await once(request, identity, channels, async () => {
        const body = await readBody(request, options.maxMessageBytes);
        const publication = toPublication(request.headers.get("content-type") ?? "", body);
        await options.backlog?.wait();
        const { results, failed } = await publishAll(channels, publication);
        options.logger.debug("publish", {
          channels: channels.length,
          bytes: body.length,
          user: identity?.user,
          failed,
        });
        return {
          status: failed ? 503 : 200,
          body: results,
          headers: failed ? { "retry-after": "1" } : {} as Record<string, string>,
        };
      });
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      options.metrics.publishesRejected.inc(err.status);
      options.logger.warn("publish.rejected", {
        peer,
        channel: channels[0].slice(0, 80),
        channels: channels.length,
        status: err.status,
        reason: err.message,
      });
      await request.body?.cancel().catch(() => {});
      return jsonResponse({ error: err.message, ...err.fields }, err.status, err.headers);
    }
  }
}
