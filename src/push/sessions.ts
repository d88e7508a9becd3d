/**
 * Who is connected as whom: the connections of each user (a token's `sub`), so the server can
 * act on a user rather than a socket — `POST /disconnect?user=U` closes all of them, presence
 * counts them. Bookkeeping only: registering and forgetting is the push handler's job (at open
 * and when a connection starts closing), acting is the caller's.
 *
 * @module
 */

/** What a session registry needs of a connection. */
export interface SessionPeer {
  /** A process-unique id. */
  readonly id: number;
  /** Starts the closing handshake. */
  close(code?: number, reason?: string): void;
}

/** The connections of every user. */
export class Sessions<P extends SessionPeer = SessionPeer> {
  // One connection is kept bare: most users have one, and a Set each costs memory per user.
  readonly #byUser = new Map<string, P | Set<P>>();

  /** Records `peer` as a connection of `user`. */
  add(user: string, peer: P): void {
    const had = this.#byUser.get(user);
    if (had === undefined) this.#byUser.set(user, peer);
    else if (had instanceof Set) had.add(peer);
    else if (had !== peer) this.#byUser.set(user, new Set([had, peer]));
  }

  /** Forgets `peer` as a connection of `user`; false when it was not one. */
  remove(user: string, peer: P): boolean {
    const had = this.#byUser.get(user);
    if (had === peer) return this.#byUser.delete(user);
    if (!(had instanceof Set) || !had.delete(peer)) return false;
    if (had.size === 1) this.#byUser.set(user, had.values().next().value!);
    return true;
  }

  /** The connections of `user`, as a new array (safe while they close). */
  of(user: string): P[] {
    const had = this.#byUser.get(user);
    if (had === undefined) return [];
    return had instanceof Set ? [...had] : [had];
  }

  /** How many users have at least one connection. */
  get users(): number {
    return this.#byUser.size;
  }

  /** Closes every connection of `user` with `code` and `reason`; returns how many. */
  disconnect(user: string, code: number, reason: string): number {
    const peers = this.of(user);
    for (const peer of peers) peer.close(code, reason);
    return peers.length;
  }
}

/** What acting on a user needs: its connections, and closing them all. */
export type UserConnections<P extends SessionPeer = SessionPeer> = Pick<
  Sessions<P>,
  "of" | "disconnect"
>;

/**
 * One view over several registries (the WebSocket connections' and the event streams'), so
 * `POST /disconnect` and `POST /unsubscribe` reach a user on every transport. Each transport
 * keeps its own registry, with its own peer type, and neither imports the other.
 */
export function joinSessions<P extends SessionPeer>(
  ...parts: UserConnections<P>[]
): UserConnections<P> {
  return {
    of: (user) => parts.flatMap((p) => p.of(user)),
    disconnect: (user, code, reason) => {
      let closed = 0;
      for (const p of parts) closed += p.disconnect(user, code, reason);
      return closed;
    },
  };
}
