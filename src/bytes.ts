/**
 * Byte-array helpers shared by the protocol core, the queues and the Redis client.
 *
 * @module
 */

/**
 * Joins `parts` into one buffer. `length` is their total, when the caller already counted it.
 * A single part is returned as it is (no copy): callers must not mutate it afterwards.
 *
 * @example
 * ```ts
 * concatBytes([new Uint8Array([1]), new Uint8Array([2, 3])]); // Uint8Array [1, 2, 3]
 * ```
 */
export function concatBytes(parts: readonly Uint8Array[], length?: number): Uint8Array {
  if (parts.length === 1) return parts[0];
  let total = length ?? 0;
  if (length === undefined) { for (const part of parts) total += part.length; }
  const out = new Uint8Array(total);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}
