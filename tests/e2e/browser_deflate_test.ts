/**
 * The page in headless Chromium against a server with `--deflate`: Chromium offers
 * permessage-deflate, the server agrees (the 101's header is seen by the page as
 * `WebSocket.extensions` and logged by the server), Chromium's own compressed commands are
 * inflated, and publications big enough to be compressed reach the page intact.
 */
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { withDeadline } from "../support/async.ts";
import type { Page } from "../support/page.ts";
import { DEFAULT_TIMEOUT_MS } from "../support/cdp_connection.ts";
import { Browser } from "../support/browser.ts";
import { startTestServer } from "../support/server.ts";
import { gauge } from "../support/push_api.ts";

/** What the page said, for failure messages. */
function pageReport(page: Page): string {
  return `\npage errors: ${JSON.stringify(page.errors, null, 2)}` +
    `\npage console: ${JSON.stringify(page.console, null, 2)}`;
}

Deno.test("the page in Chromium with --deflate: negotiated, compressed pushes shown", async () => {
  await using server = await startTestServer(["--deflate"]);
  await using browser = await Browser.launch();
  const page = await browser.newPage();
  const publications = `[...document.querySelectorAll('#log .entry[data-type="publication"]')]
    .map((e) => e.querySelector(".text").textContent)`;
  try {
    await page.navigate(server.httpUrl + "/");
    await page.waitFor(`pushClient.state === "open"`, `the page to connect`);
    const extensions = await page.evaluate<string>(`pushClient.socket.extensions`);
    assertStringIncludes(extensions, "permessage-deflate", "the page sees the agreed extension");
    const accepted = await withDeadline(
      server.waitForLog("handshake.accepted"),
      DEFAULT_TIMEOUT_MS,
      "the handshake log line",
    );
    assertStringIncludes(accepted, "permessage-deflate; server_no_context_takeover");
    assertEquals(await gauge(server, "push_deflate_connections"), 1);

    await page.click("#channel");
    await page.insertText("news");
    await page.click("#subscribe");
    await page.waitFor(
      `document.querySelector('#channels li[data-channel="news"]')?.dataset.status === "subscribed"`,
      `the news channel to show "subscribed"`,
    );
    // One publication far over --deflate-min-bytes (compressed), one under it (plain).
    // (The page cuts long texts at 2000 characters: this one is shown whole.)
    const big = "a big one: " + "price 101.25 ".repeat(100) + "the end";
    for (const body of [big, "small one"]) {
      const res = await fetch(`${server.httpUrl}/publish?channel=news`, {
        method: "POST",
        headers: { "content-type": "text/plain" },
        body,
      });
      assertEquals(res.status, 200, await res.text());
    }
    await page.waitFor(`${publications}.length === 2`, "two publications in #log");
    const shown = await page.evaluate<string[]>(publications);
    assertStringIncludes(shown[0], big);
    assertStringIncludes(shown[1], "small one");
    assertEquals(await gauge(server, "push_deflate_compressions_total"), 1, "the big one only");
    // Chromium compresses what it sends once deflate is agreed: its subscribe was inflated.
    assert(await gauge(server, "push_deflate_in_messages_total") >= 1, "Chromium's commands");
    assertEquals(page.errors, [], "the page reported console errors or exceptions");
  } catch (err) {
    if (err instanceof Error) err.message += pageReport(page);
    throw err;
  }
});
