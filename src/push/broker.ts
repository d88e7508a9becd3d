/**
 * What a broker is made of: publications, positions, the envelope every broker stores and sends.
 *
 * @module
 */

/** The data of one publication, as the publish API received it. */
export type Publication =
  | { kind: "text"; text: string }
  | { kind: "json"; json: string }
  | { kind: "binary"; bytes: Uint8Array };

/** A resume position: the epoch and the last id a client saw. */
export interface Position {
  /** The history the id belongs to (a server run, or a Redis dataset). */
  epoch: string;
  /** The last id received. */
  id: number;
}

/** What a publish did. */
export interface PublishResult {
  /** The epoch of the channel's ids. */
  epoch: string;
  /** The id given to the publication. */
  id: number;
  /**
   * Where it was queued: local subscribers for the in-process hub; server instances listening
   * to the channel for the Redis hub (each fans out to its own clients).
   */
  delivered: number;
}

/** Thrown by a publish when the engine cannot take it now (Redis down): the API answers 503. */
export class HubUnavailableError extends Error {
  /** Creates the error with a message for the publisher. */
  constructor(message: string) {
    super(message);
    this.name = "HubUnavailableError";
  }
}

/** A fresh random epoch: 8 base-36 characters. */
export function newEpoch(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return [...bytes].map((b) => (b % 36).toString(36)).join("");
}

/**
 * The part of the envelope after `"data":` — the JSON string, the JSON value, or base64 with
 * its encoding — and the closing brace. Shared so every engine builds identical envelopes.
 */
export function envelopeTail(data: Publication): string {
  switch (data.kind) {
    case "text":
      return JSON.stringify(data.text) + "}";
    case "json":
      return data.json + "}";
    case "binary":
      return `"${data.bytes.toBase64()}","encoding":"base64"}`;
  }
}

/**
 * The envelope of a publication, built once per publish:
 * `{"channel":…,"epoch":…,"id":…,"data":…}` (plus `"encoding":"base64"` for binary data).
 */
export function envelope(channel: string, epoch: string, id: number, data: Publication): string {
  return `{"channel":${JSON.stringify(channel)},"epoch":"${epoch}","id":${id},"data":` +
    envelopeTail(data);
}
