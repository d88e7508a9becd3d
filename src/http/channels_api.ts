/**
 * The read side of the management API: `GET /channels` (every channel with local subscribers,
 * their count, and where the channel stands) and `GET /history?channel=C&since=EPOCH:ID&limit=N`
 * (the stored publications in the envelope clients get on the WebSocket), and
 * `GET /presence?channel=C` (the members of a channel that keeps presence). All take the API key
 * (`--publish-token`) exactly as `POST /disconnect` does; without one, loopback peers that are
 * not browsers only.
 *
 * @module
 */
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import type { Broker, ChannelState, HistoryEntry } from "../push/broker.ts";
import { isValidChannelName, parsePosition } from "../push/channel_hub.ts";
import { gapIn, precheck, reasons } from "../push/recovery.ts";
import type { PresenceMember } from "../push/presence.ts";
import { ApiError, ApiKey, bearerToken, jsonResponse } from "./api_key.ts";

/** Publications `GET /history` returns without `?limit=`. */
export const HISTORY_DEFAULT_LIMIT = 100;
/** The most publications one `GET /history` returns. */
export const HISTORY_MAX_LIMIT = 1000;

/** What the management API reads: the hub's local counts and its broker's channel state. */
export interface ChannelsView {
  /** Every channel with local subscribers and how many. */
  channels(): { channel: string; subscribers: number }[];
  /** Where channels stand and what their history holds. */
  broker: Pick<Broker, "channelState" | "historyAfter">;
  /** The members of a channel that keeps presence; null for one that keeps none. */
  presenceOf?(channel: string): PresenceMember[] | Promise<PresenceMember[]> | null;
}

/** Options of {@linkcode createChannelsApi}. */
export interface ChannelsApiOptions {
  /** The engine read. */
  view: ChannelsView;
  /** The API key; empty means loopback peers that are not browsers only. */
  token: string;
  /** Where refusals are logged. */
  logger: Logger;
  /** Where refusals are counted (`push_management_rejected_total`). */
  metrics?: Metrics;
}

const decoder = new TextDecoder();

/**
 * The envelope text inside a stored frame: brokers store the unmasked, uncompressed text frame
 * every subscriber got, so the payload starts after the 2-, 4- or 10-byte header (RFC 6455 §5.2).
 */
export function frameText(frame: Uint8Array): string {
  const len = frame[1] & 0x7f;
  const offset = len < 126 ? 2 : len === 126 ? 4 : 10;
  return decoder.decode(frame.subarray(offset));
}

/** Parses `?limit=`: 1..{@linkcode HISTORY_MAX_LIMIT}, default {@linkcode HISTORY_DEFAULT_LIMIT}. */
function parseLimit(text: string | null): number {
  if (text === null) return HISTORY_DEFAULT_LIMIT;
  const limit = /^\d{1,4}$/.test(text) ? Number(text) : NaN;
  if (!(limit >= 1 && limit <= HISTORY_MAX_LIMIT)) {
    throw new ApiError(400, `Invalid ?limit=: an integer from 1 to ${HISTORY_MAX_LIMIT}.`);
  }
  return limit;
}

/** Creates the handlers of `GET /channels`, `GET /history` and `GET /presence`. */
export function createChannelsApi(options: ChannelsApiOptions) {
  const key = new ApiKey(options.token, "management");
  const { view, logger } = options;

  /** Checks method and credential, runs `answer`, and turns refusals into JSON errors. */
  const guarded =
    (what: string, answer: (url: URL) => Promise<unknown>) =>
    async (request: Request, peer: string): Promise<Response> => {
      await request.body?.cancel().catch(() => {});
      const url = new URL(request.url);
      try {
        if (request.method !== "GET") {
          throw new ApiError(405, `Use GET to ${what}.`, { allow: "GET" });
        }
        if (!await key.matches(bearerToken(request))) {
          key.refuseWithoutCredential(request, peer, what);
        }
        let body: unknown;
        try {
          body = await answer(url);
        } catch (err) {
          if (err instanceof ApiError) throw err;
          // The broker could not answer (Redis away or an error reply): nothing is known now.
          throw new ApiError(503, `The channel engine cannot answer now: ${String(err)}`, {
            "retry-after": "1",
          });
        }
        return jsonResponse(body, 200);
      } catch (err) {
        if (!(err instanceof ApiError)) throw err;
        options.metrics?.managementRejected.inc(err.status);
        logger.warn("management.rejected", {
          peer,
          path: url.pathname,
          status: err.status,
          reason: err.message,
        });
        return jsonResponse({ error: err.message, ...err.fields }, err.status, err.headers);
      }
    };

  const channels = guarded("list channels", async () => {
    const local = view.channels();
    // With Redis one round trip per channel, all in flight at once; in memory, no wait.
    const states = await Promise.all(local.map((c) => view.broker.channelState(c.channel)));
    return {
      channels: local.map((c, i) => ({
        channel: c.channel,
        subscribers: c.subscribers,
        lastId: states[i].lastId,
        epoch: states[i].epoch,
      })),
    };
  });

  const history = guarded("read history", async (url) => {
    const params = url.searchParams;
    const channel = params.get("channel") ?? "";
    if (!isValidChannelName(channel)) {
      throw new ApiError(400, "Invalid or missing ?channel=: use 1-64 of A-Z a-z 0-9 _ - .");
    }
    const sinceText = params.get("since");
    const since = sinceText === null ? null : parsePosition(sinceText);
    if (sinceText !== null && since === null) {
      throw new ApiError(400, "Invalid ?since=: EPOCH:ID, as in a client's resume position.");
    }
    const limit = parseLimit(params.get("limit"));
    const state: ChannelState = await view.broker.channelState(channel);
    const lost = (reason: string) => ({
      channel,
      epoch: state.epoch,
      lost: true,
      reason,
      publications: [],
    });
    // The same decisions, in the same words, as a client's resume (src/push/recovery.ts).
    const early = since && precheck(since, state);
    if (early) return lost(early);
    const after = since?.id ?? 0;
    const page: HistoryEntry[] = await view.broker.historyAfter(channel, after, limit);
    if (since && since.id < state.lastId) {
      const gap = page.length > 0
        ? gapIn(after, page, state.lastId)
        : reasons.gone(after, undefined, state.lastId);
      if (gap) return lost(gap);
    }
    return {
      channel,
      epoch: state.epoch,
      publications: page.map((entry) => JSON.parse(frameText(entry.frame))),
    };
  });

  const presence = guarded("read presence", async (url) => {
    const channel = url.searchParams.get("channel") ?? "";
    if (!isValidChannelName(channel)) {
      throw new ApiError(400, "Invalid or missing ?channel=: use 1-64 of A-Z a-z 0-9 _ - .");
    }
    const users = view.presenceOf?.(channel) ?? null;
    // A channel --presence does not match has no members to list: not found, said so.
    if (users === null) {
      throw new ApiError(
        404,
        `Channel ${channel} keeps no presence: it does not match --presence.`,
      );
    }
    return { channel, users: await users };
  });

  return { channels, history, presence };
}
