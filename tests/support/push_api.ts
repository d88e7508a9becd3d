/**
 * The push API as tests drive it over HTTP and WebSocket: publishing, reading a channel's ids
 * off a socket, and reading one gauge from `/metrics`. Works with an in-process
 * {@linkcode TestServer} and a child-process {@linkcode ChildServer} alike.
 *
 * @module
 */
import { assert } from "@std/assert";
import type { ChildServer } from "./child_server.ts";
import type { TestServer } from "./server.ts";
import type { TestSocket } from "./ws_client.ts";

/** A server whose HTTP API can be reached: in process (`httpUrl`) or a child (`httpPort`). */
export type HttpServer = Pick<TestServer, "httpUrl"> | Pick<ChildServer, "httpPort">;

/** The base URL of `server`'s HTTP API. */
export function httpBase(server: HttpServer): string {
  return "httpUrl" in server ? server.httpUrl : `http://127.0.0.1:${server.httpPort}`;
}

/** The JSON answer of a successful publish. */
export interface Published {
  epoch: string;
  id: number;
}

/** POSTs `text` to `channel`; resolves with the status and the JSON answer, whatever they are. */
export async function publish(
  server: HttpServer,
  channel: string,
  text: string,
  // deno-lint-ignore no-explicit-any
): Promise<{ status: number; body: any }> {
  const response = await fetch(`${httpBase(server)}/publish?channel=${channel}`, {
    method: "POST",
    body: text,
  });
  return { status: response.status, body: await response.json() };
}

/** Publishes `text` to `channel`, asserting the server accepted it; resolves with the answer. */
export async function publishOk(
  server: HttpServer,
  channel: string,
  text: string,
): Promise<Published> {
  const { status, body } = await publish(server, channel, text);
  assert(status >= 200 && status < 300, JSON.stringify(body));
  return body as Published;
}

/** Publishes `text` to `channel` (asserting it was accepted); resolves with its id. */
export async function publishId(
  server: HttpServer,
  channel: string,
  text: string,
): Promise<number> {
  return (await publishOk(server, channel, text)).id;
}

/**
 * Reads channel envelopes of `channel` until the one with id `last`; returns their ids. A lost
 * notice fails at once (the ids could never reach `last`).
 */
export async function idsUntil(ws: TestSocket, channel: string, last: number): Promise<number[]> {
  const ids: number[] = [];
  while (ids.at(-1) !== last) {
    const message = JSON.parse(await ws.nextMatching(/^\{/));
    if (message.channel === channel && "data" in message) ids.push(message.id);
    if (message.notice === "lost") throw new Error(`unexpected lost notice: ${message.reason}`);
  }
  return ids;
}

/** The ids `from`…`to`, both included. */
export function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

/** One gauge from the Prometheus text of `/metrics`. */
export async function gauge(server: HttpServer, name: string): Promise<number> {
  const text = await (await fetch(`${httpBase(server)}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(name + " "));
  assert(line, `${name} is in /metrics`);
  return Number(line.split(" ")[1]);
}
