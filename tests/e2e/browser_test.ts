/**
 * End to end in a real browser: headless Chromium, driven over the Chrome DevTools Protocol,
 * opens the client page served by an in-process server, receives the demo feed, sends a
 * message, disconnects, reconnects and closes the tab; the page and the server's log must agree
 * at every step; the token field and a close by `POST /disconnect` (4003).
 *
 * Needs Debian's `chromium` (CI installs it): without it this test fails and says so.
 */
import { assert, assertEquals, assertMatch, assertStringIncludes } from "@std/assert";
import { delay, withDeadline } from "../support/async.ts";
import { type Page } from "../support/page.ts";
import { DEFAULT_TIMEOUT_MS } from "../support/cdp_connection.ts";
import { Browser } from "../support/browser.ts";
import { startTestServer, type TestServer } from "../support/server.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const SCREENSHOT = `${ROOT}.artifacts/browser-page.png`;

/** Waits for a server log line containing `text`, with a deadline. */
function serverLog(server: TestServer, text: string, ms = DEFAULT_TIMEOUT_MS): Promise<string> {
  return withDeadline(server.waitForLog(text), ms, `the server to log "${text}"`).catch(
    (err) => {
      err.message += `; the server logged:\n${server.logs.join("\n")}`;
      throw err;
    },
  );
}

/** The page's log entries as {kind, type, text}. */
interface Entry {
  kind: string;
  type?: string;
  text: string;
}

const ENTRIES = `[...document.querySelectorAll("#log .entry")].map((e) => ({
  kind: e.dataset.kind, type: e.dataset.type, text: e.querySelector(".text").textContent }))`;

function entries(page: Page): Promise<Entry[]> {
  return page.evaluate<Entry[]>(ENTRIES);
}

/** Polls the page until one of its log entries satisfies the JS predicate `test` (over `e`). */
function waitForEntry(page: Page, test: string, what: string): Promise<Entry> {
  return page.waitFor<Entry>(`${ENTRIES}.find((e) => ${test})`, what);
}

/** Polls the server's log until a line matches `pattern`; returns the match. */
async function serverLogMatching(
  server: TestServer,
  pattern: RegExp,
  what: string,
  ms = DEFAULT_TIMEOUT_MS,
): Promise<RegExpMatchArray> {
  const deadline = performance.now() + ms;
  while (true) {
    for (const line of server.logs) {
      const m = line.match(pattern);
      if (m) return m;
    }
    if (performance.now() >= deadline) {
      throw new Error(
        `timed out after ${ms} ms waiting for the server to log ${what}; it logged:\n${
          server.logs.join("\n")
        }`,
      );
    }
    await delay(20);
  }
}

/** What the page said, for failure messages. */
function pageReport(page: Page): string {
  return `\npage errors: ${JSON.stringify(page.errors, null, 2)}` +
    `\npage console: ${JSON.stringify(page.console, null, 2)}`;
}

Deno.test("the page in Chromium: demo feed, send, disconnect, reconnect, close tab", async () => {
  await using server = await startTestServer(["--demo", "true", "--demo-interval", "50-100"]);
  await using browser = await Browser.launch();
  const page = await browser.newPage();
  await page.setViewport(1100, 760);

  try {
    // 1. Open the page: it connects by itself and the demo feed shows up in the log.
    await page.navigate(server.httpUrl + "/");
    await page.waitFor(
      `document.getElementById("status").textContent === "open"`,
      `#status to show "open"`,
    );
    const firstClient = (await serverLog(server, "handshake.accepted")).match(/client=(\d+)/)![1];
    await waitForEntry(
      page,
      `e.kind === "message" && /^I am waiting [0-9.]+ seconds$/.test(e.text)`,
      `a demo push ("I am waiting … seconds") in #log as .entry[data-kind="message"]`,
    );
    await page.waitFor(
      `document.querySelectorAll('#log .entry[data-kind="message"]').length >= 3`,
      "at least 3 pushed messages in #log",
    );
    for (const e of (await entries(page)).filter((e) => e.kind === "message")) {
      assertMatch(e.text, /^I am waiting 0\.(0[5-9]|1)\d* seconds$/);
      assertEquals(e.type, "text");
    }
    assertEquals(
      await page.evaluate(`document.getElementById("ws-url").textContent`),
      server.wsUrl + "/",
    );
    assertEquals(await page.evaluate(`pushClient.state`), "open");

    // 2. Type a message and press Send: the server acknowledges it and logs it.
    const text = "hello from Chromium ✓";
    await page.click("#message");
    await page.insertText(text);
    assertEquals(await page.evaluate(`document.getElementById("message").value`), text);
    await page.click("#send");
    const ack = await waitForEntry(
      page,
      `e.kind === "message" && e.text === ${JSON.stringify(`Server received: ${text}`)}`,
      `the acknowledgement "Server received: ${text}" in #log`,
    );
    assertEquals(ack.type, "ack");
    assert(
      (await entries(page)).some((e) => e.kind === "sent" && e.text === text),
      "the page logged the sent message",
    );
    assertEquals(await page.evaluate(`document.getElementById("message").value`), "");
    await serverLog(server, `client.message client=${firstClient} text=${JSON.stringify(text)}`);

    // 5. The page as it looks open, with messages: saved for people to look at.
    const png = await page.screenshot();
    assertEquals([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    await Deno.writeFile(SCREENSHOT, png);
    console.log(`screenshot of the open page with messages: ${SCREENSHOT}`);

    // 3. Disconnect: the page sends quit, the server closes with 1000 and both sides log it.
    await page.click("#disconnect");
    await serverLog(server, `client.quit client=${firstClient}`);
    const closed = await serverLog(server, `connection.closed client=${firstClient}`);
    assertStringIncludes(closed, "code_sent=1000");
    const closeEntry = await waitForEntry(
      page,
      `e.kind === "close"`,
      `a close entry in #log after Disconnect`,
    );
    assertStringIncludes(closeEntry.text, "code=1000");
    assertStringIncludes(closeEntry.text, "reason=quit");
    assert(!closeEntry.text.includes("not clean"), `unclean close: ${closeEntry.text}`);
    await page.waitFor(
      `document.getElementById("status").textContent === "closed"`,
      `#status to show "closed" after Disconnect`,
    );
    assertEquals(await page.evaluate(`document.getElementById("status").dataset.state`), "closed");
    assertEquals(await page.evaluate(`pushClient.state`), "closed");

    // 4. Connect again, then close the tab: beforeunload sends quit for the new client.
    await page.click("#connect");
    await page.waitFor(
      `document.getElementById("status").textContent === "open"`,
      `#status to show "open" after Connect`,
    );
    await page.waitFor(
      `document.querySelectorAll('#log .entry[data-kind="open"]').length === 2`,
      "a second open entry in #log",
    );
    const secondClient = (await serverLogMatching(
      server,
      new RegExp(`handshake\\.accepted client=(?!${firstClient} )(\\d+)`),
      "a handshake.accepted line for a new client",
    ))[1];
    const messagesBefore = (await entries(page)).filter((e) => e.kind === "message").length;
    await page.waitFor(
      `document.querySelectorAll('#log .entry[data-kind="message"]').length > ${messagesBefore}`,
      "a demo push on the new connection",
    );

    // Checked while the page still exists: its own log shows no errors, the console none either.
    const pageErrors = (await entries(page)).filter((e) => e.kind === "error");
    assertEquals(pageErrors, [], "the page logged errors in #log");

    // Page.close runs beforeunload like a user closing the tab. (Target.closeTarget would not: in
    // Chromium 156 it runs only pagehide/unload, so the page's goodbye would never be sent.)
    await page.close();
    await serverLog(server, `client.quit client=${secondClient}`);
    await serverLog(server, `connection.closed client=${secondClient}`);
    assertEquals(
      server.logs.filter((l) => l.includes("client.quit")).length,
      2,
      `expected exactly two client.quit lines:\n${server.logs.join("\n")}`,
    );

    assertEquals(page.errors, [], "the page reported console errors or exceptions");
  } catch (err) {
    if (err instanceof Error) err.message += pageReport(page);
    throw err;
  }
});

Deno.test("the page in Chromium: subscribe, publications, resume without gap after a drop", async () => {
  await using server = await startTestServer();
  await using browser = await Browser.launch();
  const page = await browser.newPage();
  const publish = async (text: string) => {
    const res = await fetch(`${server.httpUrl}/publish?channel=news`, {
      method: "POST",
      headers: { "content-type": "text/plain" },
      body: text,
    });
    assertEquals(res.status, 200, await res.text());
  };
  const publications = `[...document.querySelectorAll('#log .entry[data-type="publication"]')]
    .map((e) => e.dataset.channel + "#" + e.dataset.id)`;

  try {
    await page.navigate(server.httpUrl + "/");
    await page.waitFor(`pushClient.state === "open"`, `the page to connect`);
    // Subscribe through the form, as a user would.
    await page.click("#channel");
    await page.insertText("news");
    await page.click("#subscribe");
    await page.waitFor(
      `document.querySelector('#channels li[data-channel="news"]')?.dataset.status === "subscribed"`,
      `the news channel to show "subscribed"`,
    );
    for (let i = 1; i <= 3; i++) await publish(`live ${i}`);
    await page.waitFor(`${publications}.length === 3`, "three publications in #log");

    // The socket drops (not a user Disconnect): the page reconnects by itself and resumes from
    // the last id it received; what was published meanwhile arrives exactly once, in order.
    await page.evaluate(`pushClient.socket.close(4000, "test drop")`);
    await page.waitFor(`pushClient.state === "reconnecting"`, `the page to be reconnecting`);
    for (let i = 4; i <= 6; i++) await publish(`missed ${i}`);
    await page.waitFor(`pushClient.state === "open"`, `the page to reconnect`);
    await page.waitFor(`${publications}.length === 6`, "six publications in #log");
    for (let i = 7; i <= 8; i++) await publish(`live ${i}`);
    await page.waitFor(`${publications}.length === 8`, "eight publications in #log");
    assertEquals(
      await page.evaluate<string[]>(publications),
      [1, 2, 3, 4, 5, 6, 7, 8].map((id) => `news#${id}`),
    );
    const resumed = await waitForEntry(
      page,
      `e.type === "notice" && e.text.includes("(recovered)")`,
      "a subscribed notice with recovered:true after the reconnect",
    );
    // The notice carries the channel's last id (6); the page asked to resume after 3.
    assertStringIncludes(resumed.text, `[news] subscribed at ${server.epoch}:6`);
    await serverLog(server, `channel=news since=${server.epoch}:3`);
    assertEquals(
      await page.evaluate(`pushClient.channels`),
      [{ name: "news", epoch: server.epoch, id: 8, status: "subscribed" }],
    );
    assertEquals(page.errors, [], "the page reported console errors or exceptions");
  } catch (err) {
    if (err instanceof Error) err.message += pageReport(page);
    throw err;
  }
});

Deno.test("the page in Chromium: ?token= fills the field and the handshake; 4003 is explained, not retried", async () => {
  await using server = await startTestServer(["--publish-token", "api-key"]);
  await using browser = await Browser.launch();
  const page = await browser.newPage();
  const token = "aaa.bbb.ccc";
  try {
    await page.navigate(`${server.httpUrl}/?token=${token}`);
    await page.waitFor(`pushClient.state === "open"`, `the page to connect`);
    // The field holds it, the address bar no longer does, the log never shows it.
    assertEquals(await page.evaluate(`document.getElementById("token").value`), token);
    assertEquals(await page.evaluate(`location.search`), "");
    assert(!(await entries(page)).some((e) => e.text.includes(token)), "the token is in #log");
    const [connection] = [...server.ws.clients];
    // The handshake carried it (logged redacted), and the server keeps no copy of it.
    assertStringIncludes(await serverLog(server, "handshake.accepted"), "token=***");
    assert(!server.logs.some((line) => line.includes(token)), "the token is in the server log");
    assertEquals(connection.request.query.get("token"), null, "the kept request has no token");
    // Disconnected by the server: the page says what happened and does not reconnect.
    server.sessions.add("alice", connection);
    const res = await fetch(`${server.httpUrl}/disconnect?user=alice`, {
      method: "POST",
      headers: { authorization: "Bearer api-key" },
    });
    assertEquals(await res.json(), { disconnected: 1 });
    await waitForEntry(page, `e.kind === "error" && e.text.includes("(4003)")`, "the 4003 entry");
    await page.waitFor(
      `!document.getElementById("auth-notice").hidden &&
        document.getElementById("auth-notice").textContent.includes("press Connect")`,
      "the notice to say what to do",
    );
    // "closed", not "reconnecting": no retry was scheduled.
    assertEquals(await page.evaluate(`pushClient.state`), "closed");
  } catch (err) {
    (err as Error).message += pageReport(page);
    throw err;
  }
});
