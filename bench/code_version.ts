/**
 * Which version of our server a run measured. The server is developed while it is benchmarked,
 * so the report names the commit, whether the working tree differs from it, and a hash of the
 * server's sources taken before every run: if it changes during a run, the results mix versions
 * and the report says so.
 *
 * Only read-only git commands are used (`rev-parse`, and `diff` without optional locks).
 *
 * @module
 */
import { commandOutput } from "./proc.ts";

/** The server's sources: everything `main.ts` can load. */
const SOURCES = ["main.ts", "src"];

/** The commit and working-tree state, e.g. "5de8e85" or "5de8e85 + uncommitted changes". */
export async function describeCommit(): Promise<string> {
  const head = await commandOutput("git", ["rev-parse", "--short", "HEAD"]);
  if (!head) return "unknown (not a git checkout)";
  const changed = await commandOutput("git", [
    "--no-optional-locks",
    "diff",
    "--name-only",
    "HEAD",
    "--",
    ...SOURCES,
  ]);
  return changed ? `${head} + uncommitted changes (${changed.split("\n").join(", ")})` : head;
}

/** A short SHA-256 of the server's source files (paths and contents, in a stable order). */
export async function sourceHash(): Promise<string> {
  const files: string[] = [];
  const walk = async (path: string) => {
    const info = await Deno.stat(path);
    if (info.isFile) return void files.push(path);
    for await (const entry of Deno.readDir(path)) await walk(`${path}/${entry.name}`);
  };
  for (const path of SOURCES) await walk(path).catch(() => {});
  files.sort();
  const encoder = new TextEncoder();
  const parts: Uint8Array[] = [];
  for (const file of files) {
    parts.push(encoder.encode(`${file}\n`), await Deno.readFile(file));
  }
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    all.set(part, at);
    at += part.length;
  }
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", all));
  return [...digest.subarray(0, 4)].map((b) => b.toString(16).padStart(2, "0")).join("");
}
