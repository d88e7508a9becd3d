/**
 * The clock of deadlines.
 *
 * @module
 */

/**
 * `performance.now()` in whole milliseconds, for deadlines kept per connection. Whole numbers
 * are stored in an object's own fields, while a fraction in a field is a separate heap object:
 * four of them on every idle client. They stay small integers for at least the first 12 days
 * of uptime (only memory changes after that).
 *
 * @example
 * ```ts
 * const due = clockMs() + 3000; // a deadline 3 s from now
 * ```
 */
export function clockMs(): number {
  return Math.trunc(performance.now());
}
