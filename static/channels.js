// Channel state, with no DOM: the channels the user asked for (the intent survives disconnects
// and is re-sent on every open) and, for each, the position of the last publication received,
// which is what a resume asks for. Also reads the server's JSON messages.

/**
 * @typedef {object} Channel
 * @property {string} name
 * @property {string | null} epoch the epoch of the last publication received (or subscribed at)
 * @property {number | null} id the id of the last publication received (or subscribed at)
 * @property {"pending" | "subscribed" | "lost"} status
 */

/** Returns the parsed value if `text` is a JSON object, else null (plain text). */
export function parseObject(text) {
  if (!text.trimStart().startsWith("{")) return null; // cheap pre-check: most lines are plain
  try {
    const value = JSON.parse(text);
    return value && typeof value === "object" && !Array.isArray(value) ? value : null;
  } catch {
    return null;
  }
}

/** The channels of one client and their positions. */
export class ChannelSet {
  /** @type {Map<string, Channel>} */
  #channels = new Map();
  #changed;
  #removed;

  /**
   * @param {(ch: Channel) => void} changed called when a channel is added or changes
   * @param {(name: string) => void} removed called when a channel is forgotten
   */
  constructor(changed, removed) {
    this.#changed = changed;
    this.#removed = removed;
  }

  /** The channel called `name`, if asked for. */
  get(name) {
    return this.#channels.get(name);
  }

  /** Every channel asked for, in the order asked. */
  values() {
    return this.#channels.values();
  }

  /** Records the intent to be in `name` (pending until the server confirms). */
  add(name) {
    const ch = { name, epoch: null, id: null, status: "pending" };
    this.#channels.set(name, ch);
    this.#changed(ch);
    return ch;
  }

  /** Forgets `name`; false when it was not asked for. */
  remove(name) {
    if (!this.#channels.delete(name)) return false;
    this.#removed(name);
    return true;
  }

  /** The command that (re)joins `ch`, resuming after its last position when it has one. */
  subscribeCommand(ch) {
    return ch.epoch === null ? `subscribe ${ch.name}` : `subscribe ${ch.name} ${ch.epoch}:${ch.id}`;
  }

  /** The socket went away or is new: every channel waits for the server again. */
  markAllPending() {
    for (const ch of this.#channels.values()) {
      ch.status = "pending";
      this.#changed(ch);
    }
  }

  /** A publication arrived: the resume point is the last publication actually received. */
  received(p) {
    const ch = this.#channels.get(p.channel);
    if (!ch || typeof p.epoch !== "string" || typeof p.id !== "number") return;
    ch.epoch = p.epoch;
    ch.id = p.id;
    this.#changed(ch);
  }

  /** A `subscribed` notice (also for `subscribe NAME` typed by hand). */
  subscribed(n) {
    const ch = this.#channels.get(n.channel) ?? this.add(n.channel);
    ch.status = "subscribed";
    // Take the server's position unless it is resuming ours (same epoch, recovered): then our
    // own last-seen id stays the truth while the replayed publications arrive.
    const resumed = n.recovered === true && ch.epoch === n.epoch && ch.id !== null;
    if (typeof n.epoch === "string" && typeof n.id === "number" && !resumed) {
      ch.epoch = n.epoch;
      ch.id = n.id;
    }
    this.#changed(ch);
    return ch;
  }

  /** A `lost` notice: the server could not replay what we missed. */
  lost(n) {
    const ch = this.#channels.get(n.channel);
    if (!ch) return;
    ch.status = "lost";
    this.#changed(ch);
  }
}
