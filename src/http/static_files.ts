/**
 * The client page's files, read through `import.meta.url` so the same code serves them from the
 * source tree and from a `deno compile` binary (built with `--include static`).
 *
 * @module
 */

/** The files the page server exposes, by URL path, with their content types. */
export const STATIC_FILES: Record<string, { file: string; type: string }> = {
  "/": { file: "index.html", type: "text/html; charset=utf-8" },
  "/index.html": { file: "index.html", type: "text/html; charset=utf-8" },
  "/client.js": { file: "client.js", type: "text/javascript; charset=utf-8" },
  "/push-client.js": { file: "push-client.js", type: "text/javascript; charset=utf-8" },
  "/view.js": { file: "view.js", type: "text/javascript; charset=utf-8" },
  "/style.css": { file: "style.css", type: "text/css; charset=utf-8" },
};

const STATIC_DIR = new URL("../../static/", import.meta.url);

/**
 * Reads every file of {@linkcode STATIC_FILES} once. The page is small, so it is served from
 * memory: no disk access per request, and a missing file fails at start-up, not in a browser.
 */
export async function loadStaticFiles(): Promise<
  Map<string, { body: Uint8Array<ArrayBuffer>; type: string }>
> {
  const files = new Map<string, { body: Uint8Array<ArrayBuffer>; type: string }>();
  for (const [path, { file, type }] of Object.entries(STATIC_FILES)) {
    files.set(path, { body: await Deno.readFile(new URL(file, STATIC_DIR)), type });
  }
  return files;
}
