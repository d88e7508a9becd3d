/**
 * One server instance built by hand for the Redis presence tests: a Redis broker whose control
 * messages carry presence notices to its hub, shared presence with short timings, no sockets.
 *
 * @module
 */
import { Hub } from "../../src/push/hub.ts";
import { RedisBroker } from "../../src/push/redis_broker.ts";
import { Presence } from "../../src/push/presence.ts";
import { RedisPresence } from "../../src/push/redis_presence.ts";
import { ChannelPatterns } from "../../src/push/channel_patterns.ts";
import { parseRedisUrl } from "../../src/redis/url.ts";
import type { Logger } from "../../src/log.ts";

/** What {@linkcode presenceInstance} makes: close `shared` and the broker when done. */
export interface PresenceInstance {
  /** The hub, with presence kept for `room.*` (at most 100 members). */
  hub: Hub<RedisBroker>;
  /** Its broker on the given Redis. */
  broker: RedisBroker;
  /** Its shared presence. */
  shared: RedisPresence;
}

/** An instance on the Redis at `url`, with presence refreshed and expired at `timings`. */
export function presenceInstance(
  url: string,
  logger: Logger,
  timings: { refreshMs: number; ttlMs: number },
): PresenceInstance {
  const presence = new Presence({ patterns: ChannelPatterns.parse(["room.*"]), maxMembers: 100 });
  const broker = new RedisBroker({
    redis: parseRedisUrl(url),
    historySize: 10,
    logger,
    onControl: (m) => {
      if ("presence" in m) {
        presence.notify({ notice: m.presence, channel: m.channel, user: m.user, info: m.info });
      }
    },
  });
  const shared = new RedisPresence({ link: broker, presence, logger, ...timings });
  presence.share(shared);
  const hub = new Hub(broker, logger, presence);
  broker.start();
  return { hub, broker, shared };
}
