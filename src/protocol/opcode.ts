/**
 * Frame opcodes (RFC 6455 §5.2, §11.8).
 *
 * @module
 */

/** The opcodes a frame may carry. Any other value fails the connection with 1002. */
export const Opcode = {
  Continuation: 0x0,
  Text: 0x1,
  Binary: 0x2,
  Close: 0x8,
  Ping: 0x9,
  Pong: 0xa,
} as const;

/** One of the values of {@linkcode Opcode}. */
export type Opcode = typeof Opcode[keyof typeof Opcode];

/** Whether `opcode` is one RFC 6455 defines (the others are reserved, §5.2). */
export function isKnownOpcode(opcode: number): opcode is Opcode {
  return opcode <= 0x2 || (opcode >= 0x8 && opcode <= 0xa);
}

/** Whether `opcode` is a control opcode (§5.5: the high bit of the nibble is set). */
export function isControlOpcode(opcode: number): boolean {
  return (opcode & 0x8) !== 0;
}
