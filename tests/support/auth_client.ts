/**
 * Raw clients of `/` that present tokens: open a handshake with a token in the query or the
 * `Authorization` header, read the answer, send commands, and read JSON messages.
 *
 * @module
 */
import { Opcode } from "../../src/protocol/opcode.ts";
import { clientFrame, RawClient, upgradeRequest } from "./raw_client.ts";

/** A raw client and the HTTP answer to its handshake. */
export interface AuthAttempt {
  /** The client (closed by the caller, or by `await using`). */
  client: RawClient;
  /** The status of the answer (101 when connected). */
  status: number;
  /** The response head. */
  head: string;
  /** The response body (the reason of a refusal). */
  body: string;
}

/**
 * Opens `target` (e.g. "/?token=…&channels=news") on `port`, with `headers` added to the
 * upgrade request, and reads the answer.
 */
export async function attempt(
  port: number,
  target: string,
  headers: Record<string, string> = {},
): Promise<AuthAttempt> {
  const client = await RawClient.connect(port);
  await client.write(upgradeRequest(target, headers));
  const { status, head, body } = await client.readResponse();
  return { client, status, head, body };
}

/** Sends a text message. */
export function sendText(client: RawClient, text: string): Promise<void> {
  return client.write(clientFrame(Opcode.Text, text));
}

/** The next text message that is a JSON object, parsed (other messages are skipped). */
export async function nextJson(client: RawClient): Promise<Record<string, unknown>> {
  while (true) {
    const event = await client.nextOf("text");
    if (!event.data.startsWith("{")) continue;
    return JSON.parse(event.data);
  }
}

/** The next `n` JSON messages. */
export async function nextJsons(client: RawClient, n: number): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = [];
  while (out.length < n) out.push(await nextJson(client));
  return out;
}
