/**
 * The messages of the Redis control channel (`push:control`): instructions and events for every
 * server instance. Anyone with Redis access can publish there, so each is checked field by field
 * before an instance acts on it.
 *
 * @module
 */

/** An instruction for every server instance, sent with `RedisBroker.broadcastControl`. */
export type ControlMessage =
  /** Close every local connection of this user (a token's `sub`) with 4003. */
  | { disconnect: string }
  /** Take every local connection of this user (`unsubscribe`) out of `channel`. */
  | { unsubscribe: string; channel: string }
  /**
   * A presence join or leave of `user` in `channel`, decided and published by the presence
   * script in Redis (`"from":"redis"`, so every instance takes it, the deciding one included):
   * each instance tells its local subscribers (`info`: the `info` claim as JSON text, joins only).
   */
  | { presence: "join" | "leave"; channel: string; user: string; info?: string };

/**
 * `message` (parsed JSON) as a {@linkcode ControlMessage}, or null if malformed. Its sender
 * (`from`: an instance id, or "redis" for the presence script's notices) must be a string; whether
 * to skip it as one's own is the receiver's business.
 */
export function parseControl(message: unknown): ControlMessage | null {
  if (message === null || typeof message !== "object") return null;
  const m = message as Record<string, unknown>;
  if (typeof m.from !== "string") return null;
  if (typeof m.disconnect === "string") return { disconnect: m.disconnect };
  if (typeof m.unsubscribe === "string" && typeof m.channel === "string") {
    return { unsubscribe: m.unsubscribe, channel: m.channel };
  }
  if (
    (m.presence === "join" || m.presence === "leave") && typeof m.channel === "string" &&
    typeof m.user === "string" && (m.info === undefined || typeof m.info === "string")
  ) {
    const change = { presence: m.presence, channel: m.channel, user: m.user } as const;
    return typeof m.info === "string" ? { ...change, info: m.info } : change;
  }
  return null;
}
