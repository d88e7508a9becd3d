/**
 * permessage-deflate (RFC 7692) negotiation and message framing, as pure functions: parse a
 * `Sec-WebSocket-Extensions` offer (RFC 6455 §9.1), accept the first `permessage-deflate` offer
 * we can honour (RFC 7692 §7.1), build the response value, and add/remove the `00 00 ff ff`
 * tail of a compressed message (§7.2.1, §7.2.2). The (de)compression itself lives in
 * `src/net/deflate_codec.ts`.
 *
 * What we answer, and why:
 * - Always `server_no_context_takeover` (§7.1.1.1 lets a server add it unasked): every broadcast
 *   is compressed once, in a fresh context, and the same bytes go to every subscriber; no
 *   per-connection compressor exists at all.
 * - `client_no_context_takeover` is echoed when offered (it is then a promise of the client, and
 *   echoing it lets us drop the inflate window after each message), never imposed: the client
 *   keeps its context takeover unless {@linkcode DeflateOptions.requireClientNoContextTakeover}.
 * - `server_max_window_bits=N` is honoured for N in 9–15 by compressing with that window. N = 8
 *   makes the offer unacceptable: zlib cannot make a raw 256-byte-window stream (it silently uses
 *   512), so we would break the promise; the next offer is tried.
 * - `client_max_window_bits` (with or without a value) is answered with
 *   min(value or 15, our limit); without it in the offer the client window is 15 (§7.1.2.2:
 *   the server MUST NOT send it then).
 * - An unknown, duplicate or invalid parameter makes that offer unacceptable (§7.1: "the server
 *   MUST decline"), and a malformed header makes every offer unacceptable: the extension is
 *   declined, the handshake never fails because of it.
 *
 * @module
 */
import { ProtocolError } from "./errors.ts";

/** The extension token (RFC 7692 §6). */
export const PERMESSAGE_DEFLATE = "permessage-deflate";

/** The tail that §7.2.1 removes from, and §7.2.2 appends to, every compressed message. */
export const DEFLATE_TAIL: Readonly<Uint8Array> = new Uint8Array([0x00, 0x00, 0xff, 0xff]);

/** One extension of an offer: its name (lower-cased) and parameters in order. */
export interface ExtensionOffer {
  /** The extension token, lower-cased (names are compared ASCII-case-insensitively). */
  name: string;
  /** The parameters in order: lower-cased name, unquoted value or `null` when it has none. */
  params: Array<[name: string, value: string | null]>;
}

/** What was agreed for one connection. */
export interface DeflateParams {
  /** Always true: we compress every message in a fresh context. */
  serverNoContextTakeover: true;
  /** The client resets its compressor per message: no inflate window kept between messages. */
  clientNoContextTakeover: boolean;
  /** The LZ77 window our compressor may use for this client (9–15). */
  serverMaxWindowBits: number;
  /** The largest LZ77 window the client's compressor uses (8–15): the inflate window. */
  clientMaxWindowBits: number;
}

/** Server-side choices of {@linkcode negotiateDeflate}. */
export interface DeflateOptions {
  /**
   * The largest client window we accept to keep per connection (8–15, default 15). Lowering it
   * bounds the memory of context takeover to 2^bits bytes, but only for clients that offer
   * `client_max_window_bits` (others always use 15).
   */
  clientMaxWindowBits?: number;
  /** Answer `client_no_context_takeover` even when not offered (§7.1.1.2 allows it). */
  requireClientNoContextTakeover?: boolean;
}

/** An accepted offer: the response header value and the agreed parameters. */
export interface DeflateAgreement {
  /** The `Sec-WebSocket-Extensions` value of the 101 response. */
  response: string;
  /** The parameters the codec uses. */
  params: DeflateParams;
}

// RFC 7230 tchar: the characters of a token.
const TCHAR = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]$/;

function isTchar(c: string): boolean {
  return TCHAR.test(c);
}

/**
 * Parses a `Sec-WebSocket-Extensions` value (RFC 6455 §9.1: `extension *( "," extension )`,
 * `extension = token *( ";" param )`, `param = token [ "=" (token | quoted-string) ]`). Empty
 * list elements are skipped (RFC 7230 §7). Returns `null` when the value is malformed: no
 * reliable split exists then, so the caller declines every extension.
 */
export function parseExtensions(value: string): ExtensionOffer[] | null {
  const offers: ExtensionOffer[] = [];
  let i = 0;
  const n = value.length;
  const skipSpace = () => {
    while (i < n && (value[i] === " " || value[i] === "\t")) i++;
  };
  const token = (): string | null => {
    const start = i;
    while (i < n && isTchar(value[i])) i++;
    return i > start ? value.slice(start, i) : null;
  };
  const quoted = (): string | null => {
    i++; // the opening DQUOTE
    let out = "";
    while (i < n) {
      const c = value[i++];
      if (c === '"') return out;
      if (c === "\\") {
        if (i >= n) return null;
        out += value[i++];
      } else out += c;
    }
    return null; // unterminated
  };
  while (true) {
    skipSpace();
    if (i >= n) break;
    if (value[i] === ",") {
      i++;
      continue;
    }
    const name = token();
    if (name === null) return null;
    const offer: ExtensionOffer = { name: name.toLowerCase(), params: [] };
    skipSpace();
    while (i < n && value[i] === ";") {
      i++;
      skipSpace();
      const param = token();
      if (param === null) return null;
      skipSpace();
      let paramValue: string | null = null;
      if (value[i] === "=") {
        i++;
        skipSpace();
        paramValue = value[i] === '"' ? quoted() : token();
        // §9.1: a quoted value must still be a token once unescaped.
        if (paramValue === null || paramValue === "" || ![...paramValue].every(isTchar)) {
          return null;
        }
        skipSpace();
      }
      offer.params.push([param.toLowerCase(), paramValue]);
    }
    offers.push(offer);
    if (i < n && value[i] !== ",") return null;
  }
  return offers;
}

/** A window-bits value: 1*DIGIT without leading zeros, 8–15 (§7.1.2.1, §7.1.2.2). */
function windowBits(value: string): number | null {
  return /^(8|9|1[0-5])$/.test(value) ? Number(value) : null;
}

/**
 * Accepts one permessage-deflate offer, or returns `null` when it cannot be honoured (unknown,
 * duplicate or invalid parameter, or a server window we cannot produce).
 */
export function acceptDeflateOffer(
  offer: ExtensionOffer,
  options: DeflateOptions = {},
): DeflateAgreement | null {
  if (offer.name !== PERMESSAGE_DEFLATE) return null;
  const limit = options.clientMaxWindowBits ?? 15;
  const seen = new Set<string>();
  let clientNoContextTakeover = options.requireClientNoContextTakeover ?? false;
  let serverBits: number | null = null;
  let clientBits: number | null = null; // the offered value, or 15 when offered without one
  for (const [name, value] of offer.params) {
    if (seen.has(name)) return null; // §7.1: duplicate parameter
    seen.add(name);
    switch (name) {
      case "server_no_context_takeover":
        if (value !== null) return null;
        break; // we do that anyway
      case "client_no_context_takeover":
        if (value !== null) return null;
        clientNoContextTakeover = true;
        break;
      case "server_max_window_bits": {
        const bits = value === null ? null : windowBits(value);
        if (bits === null) return null; // a value is required
        // zlib raw deflate cannot use a 256-byte window (it makes 8 into 9): decline.
        if (bits < 9) return null;
        serverBits = bits;
        break;
      }
      case "client_max_window_bits": {
        const bits = value === null ? 15 : windowBits(value);
        if (bits === null) return null;
        clientBits = bits;
        break;
      }
      default:
        return null; // an unknown parameter: decline this offer
    }
  }
  let response = `${PERMESSAGE_DEFLATE}; server_no_context_takeover`;
  if (clientNoContextTakeover) response += "; client_no_context_takeover";
  if (serverBits !== null) response += `; server_max_window_bits=${serverBits}`;
  // §7.1.2.2: only a client that offered client_max_window_bits may be told a value.
  const clientMaxWindowBits = clientBits === null ? 15 : Math.min(clientBits, limit);
  if (clientBits !== null) response += `; client_max_window_bits=${clientMaxWindowBits}`;
  return {
    response,
    params: {
      serverNoContextTakeover: true,
      clientNoContextTakeover,
      serverMaxWindowBits: serverBits ?? 15,
      clientMaxWindowBits,
    },
  };
}

/**
 * Negotiates permessage-deflate from the request's `Sec-WebSocket-Extensions` value (repeated
 * headers joined by ", "): the first acceptable offer wins (§7.1, the client lists them in
 * preference order). `null` means decline: send no `Sec-WebSocket-Extensions` header. Offers
 * of other extensions are ignored (we support none).
 */
export function negotiateDeflate(
  header: string | undefined,
  options: DeflateOptions = {},
): DeflateAgreement | null {
  if (header === undefined) return null;
  const offers = parseExtensions(header);
  if (offers === null) return null;
  for (const offer of offers) {
    const agreement = acceptDeflateOffer(offer, options);
    if (agreement !== null) return agreement;
  }
  return null;
}

/** Whether `bytes` ends with `00 00 ff ff`. */
export function endsWithDeflateTail(bytes: Uint8Array): boolean {
  const n = bytes.length;
  return n >= 4 && bytes[n - 4] === 0 && bytes[n - 3] === 0 && bytes[n - 2] === 0xff &&
    bytes[n - 1] === 0xff;
}

/**
 * §7.2.1: the payload of a compressed message is the sync-flushed DEFLATE output without its
 * final `00 00 ff ff`. Returns a view (no copy). Output that does not end with an empty stored
 * block (e.g. a BFINAL block) gets one `00` octet instead, the empty block's header (§7.2.3.4),
 * so the receiver can append the tail as usual.
 */
export function stripDeflateTail(compressed: Uint8Array): Uint8Array {
  if (endsWithDeflateTail(compressed)) return compressed.subarray(0, compressed.length - 4);
  const out = new Uint8Array(compressed.length + 1);
  out.set(compressed);
  return out;
}

/** §7.2.2: the compressed payload with `00 00 ff ff` appended, ready to inflate (a copy). */
export function appendDeflateTail(payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(payload.length + 4);
  out.set(payload);
  out.set(DEFLATE_TAIL, payload.length);
  return out;
}

/**
 * The most compressed bytes one message of at most `maxMessageBytes` inflated bytes may take:
 * incompressible data grows a little (stored blocks: 5 bytes per block, headers), so the cap on
 * the wire is a bit above the inflated cap; the inflated size is what is enforced exactly.
 */
export function maxCompressedBytes(maxMessageBytes: number): number {
  return maxMessageBytes + Math.ceil(maxMessageBytes / 1024) * 5 + 1024;
}

/** The first-header-byte bit of RSV1, the "Per-Message Compressed" bit (§6). */
export const RSV1 = 0x40;

/**
 * Checks the RSV bits of a frame's first header byte with permessage-deflate in mind and says
 * whether the frame starts a compressed message. RSV2/RSV3 are never valid; RSV1 is valid only
 * when deflate was negotiated, on the first frame of a data message (§6.1: never on a
 * continuation frame, never on a control frame, which is never compressed). Anything else
 * throws the 1002 {@linkcode ProtocolError} "reserved-bits".
 *
 * @param b0 the first header byte (FIN, RSV1–3, opcode)
 * @param deflate whether permessage-deflate was negotiated on this connection
 */
export function startsCompressedMessage(b0: number, deflate: boolean): boolean {
  if ((b0 & 0x30) !== 0) throw new ProtocolError("reserved-bits");
  if ((b0 & RSV1) === 0) return false;
  const opcode = b0 & 0x0f;
  // Only Text (1) and Binary (2) start a message; continuation (0) and control (8+) may not.
  if (!deflate || (opcode !== 1 && opcode !== 2)) throw new ProtocolError("reserved-bits");
  return true;
}
