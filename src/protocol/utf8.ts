/**
 * Incremental UTF-8 validation (RFC 3629, the well-formed byte sequences of Unicode Table 3-7),
 * for text payloads that arrive a few bytes at a time (RFC 6455 §8.1: fail on the first invalid
 * byte, not when the message ends).
 *
 * @module
 */

/** The state between two characters; also the state to start a text message from. */
export const UTF8_BOUNDARY = 0;

/** What {@linkcode validateUtf8} returns when a byte cannot continue any well-formed text. */
export const UTF8_INVALID = -1;

/**
 * Validates `bytes[from, to)` as the continuation of UTF-8 text left in `state`, and returns
 * the state after them: {@linkcode UTF8_BOUNDARY} when they end on a character boundary, a
 * positive number inside a multi-byte sequence, or {@linkcode UTF8_INVALID} as soon as a byte
 * makes the text ill-formed (the bytes after it are not looked at).
 *
 * The state is a plain number, so a reader keeps it in a field and allocates nothing. A
 * sequence split across calls (two reads, two fragments) is judged byte by byte like any
 * other: `F4 90` is rejected at `90`, because no code point above U+10FFFF exists.
 *
 * @example
 * ```ts
 * let state = validateUtf8(UTF8_BOUNDARY, new Uint8Array([0x61, 0xe2, 0x82]), 0, 3); // inside "€"
 * state = validateUtf8(state, new Uint8Array([0xac]), 0, 1); // UTF8_BOUNDARY
 * validateUtf8(UTF8_BOUNDARY, new Uint8Array([0xed, 0xa0]), 0, 2); // UTF8_INVALID (a surrogate)
 * ```
 */
export function validateUtf8(state: number, bytes: Uint8Array, from: number, to: number): number {
  // The state packs the continuation bytes still needed (bits 16+) and the range the next one
  // must fall in (bits 8-15 and 0-7): only the second byte of some sequences is narrower
  // (E0 A0-BF, ED 80-9F, F0 90-BF, F4 80-8F), which rules out overlongs, surrogates and
  // code points above U+10FFFF at the first byte that commits to one.
  let need = state >>> 16;
  let lower = (state >>> 8) & 0xff;
  let upper = state & 0xff;
  for (let i = from; i < to; i++) {
    const b = bytes[i];
    if (need === 0) {
      if (b < 0x80) continue;
      if (b < 0xc2) return UTF8_INVALID; // a continuation byte, or an overlong C0/C1 lead
      if (b < 0xe0) {
        need = 1;
        lower = 0x80;
        upper = 0xbf;
      } else if (b < 0xf0) {
        need = 2;
        lower = b === 0xe0 ? 0xa0 : 0x80;
        upper = b === 0xed ? 0x9f : 0xbf;
      } else if (b < 0xf5) {
        need = 3;
        lower = b === 0xf0 ? 0x90 : 0x80;
        upper = b === 0xf4 ? 0x8f : 0xbf;
      } else {
        return UTF8_INVALID;
      }
    } else {
      if (b < lower || b > upper) return UTF8_INVALID;
      need--;
      lower = 0x80;
      upper = 0xbf;
    }
  }
  return need === 0 ? UTF8_BOUNDARY : (need << 16) | (lower << 8) | upper;
}
