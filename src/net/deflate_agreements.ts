/**
 * The handshake's side of permessage-deflate (`--deflate`): the agreement for a client's offer,
 * shared between the connections that made the same one.
 *
 * @module
 */
import {
  type DeflateAgreement,
  type DeflateParams,
  negotiateDeflate,
} from "../protocol/deflate.ts";

/**
 * Negotiates permessage-deflate (RFC 7692 §7.1) and interns the agreements by their response
 * value: there are few distinct ones (window bits × takeover), so every connection points to a
 * shared params object instead of holding one of its own (memory per idle client).
 */
export class DeflateAgreements {
  readonly #known = new Map<string, DeflateAgreement>();

  /**
   * The agreement for the request's `Sec-WebSocket-Extensions` offer (`headers` lower-cased),
   * or null: `enabled` (`--deflate`) off, no offer, or none we can honour. Null declines the
   * extension (no header in the 101); the handshake goes on either way.
   */
  negotiate(enabled: boolean | undefined, headers: Map<string, string>): DeflateAgreement | null {
    if (!enabled) return null;
    const agreement = negotiateDeflate(headers.get("sec-websocket-extensions"));
    if (agreement === null) return null;
    const known = this.#known.get(agreement.response);
    if (known !== undefined) return known;
    this.#known.set(agreement.response, agreement);
    return agreement;
  }

  /**
   * Negotiates for a new connection (see {@linkcode DeflateAgreements.negotiate}) and gives it
   * the agreed parameters; returns the `Sec-WebSocket-Extensions` value of its 101, or
   * undefined when the extension is declined.
   */
  attach(
    connection: { deflate: DeflateParams | null },
    enabled: boolean | undefined,
    headers: Map<string, string>,
  ): string | undefined {
    const agreement = this.negotiate(enabled, headers);
    if (agreement === null) return undefined;
    connection.deflate = agreement.params;
    return agreement.response;
  }
}
