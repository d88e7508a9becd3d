/**
 * `Idempotency-Key` with Redis: the keys live in Redis, so a retry that reaches another instance
 * replays the first instance's answer instead of publishing again.
 *
 * One request, whatever the number of channels it names: the key is reserved with one
 * `SET … NX PX window` (a marker, `pending`) before anything is published, and the answer (JSON)
 * replaces the marker once the publication settled, with the window again. A repeat that finds
 * the answer replays it; one that finds the marker polls until the answer arrives, for at most
 * {@linkcode IDEMPOTENCY_WAIT} ms (5 s), then answers 409 (the first is still in progress, or its
 * instance died before storing the answer: the marker expires with the window). A request that
 * published nothing deletes the key, so its retry publishes. The reservation and the read of a
 * taken key are one script, so a repeat never sees a key between the two.
 *
 * @module
 */
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import { HubUnavailableError } from "../push/broker.ts";
import { ApiError } from "./api_key.ts";
import type { Claim, StoredAnswer } from "./idempotency.ts";

/** How long a repeat waits for the first request's answer before 409 (ms). */
export const IDEMPOTENCY_WAIT = 5_000;
/** How often a waiting repeat looks again (ms). */
const POLL_INTERVAL = 20;

/** The marker of a key whose first request is still publishing (an answer is JSON: `{…`). */
const PENDING = "pending";

/** Reserves KEYS[1] (`SET NX PX`): nil when reserved, else the value it holds. */
const RESERVE_SCRIPT = `
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return false end
return redis.call('GET', KEYS[1])
`;

/** What the store needs of the Redis broker (`RedisBroker` has it). */
export interface RedisCommands {
  /** Runs one command; rejects with `HubUnavailableError` while Redis is away. */
  command(args: readonly (string | number | Uint8Array)[]): Promise<unknown>;
  /** The deployment's key prefix. */
  readonly prefix: string;
}

/** The `Idempotency-Key` store shared by every instance through Redis. */
export class RedisIdempotencyStore {
  readonly #redis: RedisCommands;
  readonly #window: number;
  readonly #metrics: Metrics;
  readonly #logger: Logger;
  readonly #wait: number;

  /** `window` in ms (> 0); a repeat waits at most `wait` ms for the first's answer. */
  constructor(
    redis: RedisCommands,
    window: number,
    metrics: Metrics,
    logger: Logger,
    wait = IDEMPOTENCY_WAIT,
  ) {
    this.#redis = redis;
    this.#wait = wait;
    this.#window = Math.max(1, Math.round(window));
    this.#metrics = metrics;
    this.#logger = logger;
  }

  /** The Redis key of a scoped idempotency key. */
  redisKey(key: string): string {
    return `${this.#redis.prefix}idem:{${key}}`;
  }

  /**
   * The kept answer for `key` (waiting, bounded, while the first request is in flight), or the
   * right to publish. 503 while Redis is away, 409 when the first does not settle in time.
   */
  async claim(key: string): Promise<Claim> {
    const redisKey = this.redisKey(key);
    const deadline = Date.now() + this.#wait;
    let waited = false;
    for (;;) {
      const held = await this.#run(["EVAL", RESERVE_SCRIPT, 1, redisKey, PENDING, this.#window]);
      if (held === null) break;
      const text = new TextDecoder().decode(held as Uint8Array);
      if (text !== PENDING) {
        this.#metrics.idempotentReplays++;
        return { replay: JSON.parse(text) as StoredAnswer };
      }
      if (!waited) this.#metrics.idempotentWaits++;
      waited = true;
      if (Date.now() >= deadline) {
        throw new ApiError(409, "A request with this Idempotency-Key is in progress.", {
          "retry-after": "1",
        });
      }
      await new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL));
    }
    return {
      replay: null,
      settle: async (answer) => {
        try {
          await this.#redis.command(
            answer
              ? ["SET", redisKey, JSON.stringify(answer), "PX", this.#window]
              : ["DEL", redisKey],
          );
        } catch (err) {
          // Published already: the answer stands. The marker expires with the window; until
          // then repeats answer 409 rather than publishing twice.
          this.#logger.warn("idempotency.store_failed", { reason: (err as Error).message });
        }
      },
    };
  }

  async #run(args: (string | number)[]): Promise<unknown> {
    try {
      return await this.#redis.command(args);
    } catch (err) {
      if (!(err instanceof HubUnavailableError)) throw err;
      throw new ApiError(503, err.message, { "retry-after": "1" });
    }
  }
}
