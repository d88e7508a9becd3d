/**
 * An independent UTF-8 validator (Unicode Table 3-7, the WHATWG decoder's error points), the
 * fuzzers' oracle: written from the well-formed byte table rather than shared with the code
 * under test, so a bug there is not mirrored here.
 *
 * @module
 */

/**
 * A streaming UTF-8 validator: {@linkcode Utf8Validator.feed} returns the index of the first
 * byte at which the stream stops being well-formed, the byte where a fatal decoder fails.
 */
export class Utf8Validator {
  #need = 0;
  #lower = 0x80;
  #upper = 0xbf;

  /** Index in `bytes` of the first ill-formed byte, or -1 when all is well so far. */
  feed(bytes: Uint8Array): number {
    for (let i = 0; i < bytes.length; i++) {
      const b = bytes[i];
      if (this.#need === 0) {
        if (b <= 0x7f) continue;
        if (b >= 0xc2 && b <= 0xdf) {
          this.#need = 1;
        } else if (b >= 0xe0 && b <= 0xef) {
          this.#need = 2;
          if (b === 0xe0) this.#lower = 0xa0;
          if (b === 0xed) this.#upper = 0x9f;
        } else if (b >= 0xf0 && b <= 0xf4) {
          this.#need = 3;
          if (b === 0xf0) this.#lower = 0x90;
          if (b === 0xf4) this.#upper = 0x8f;
        } else {
          return i;
        }
      } else {
        if (b < this.#lower || b > this.#upper) return i;
        this.#lower = 0x80;
        this.#upper = 0xbf;
        this.#need--;
      }
    }
    return -1;
  }

  /** Whether the stream ends on a character boundary. */
  get complete(): boolean {
    return this.#need === 0;
  }
}

/** Whether `bytes` are well-formed UTF-8. */
export function isUtf8(bytes: Uint8Array): boolean {
  const v = new Utf8Validator();
  return v.feed(bytes) === -1 && v.complete;
}
