/**
 * `GET /events` with a real browser `EventSource` in headless Chromium: the server ends the
 * stream (`POST /disconnect`, the `closed` notice), the browser reconnects by itself after
 * `retry:` with `Last-Event-ID`, and every channel resumes with no gap and no duplicate while
 * publications continue during the gap.
 *
 * Needs Debian's `chromium`: without it this test fails and says so.
 */
import { assertEquals } from "@std/assert";
import { Browser } from "../support/browser.ts";
import { startTestServer } from "../support/server.ts";
import { publishOk } from "../support/push_api.ts";
import { claims, hsToken, SECRET } from "../support/jwt.ts";

Deno.test("a browser EventSource resumes every channel with Last-Event-ID after the server ends its stream, no gap, no duplicate", async () => {
  await using server = await startTestServer(["--jwt-secret", SECRET]);
  await using browser = await Browser.launch();
  const page = await browser.newPage();
  const token = await hsToken(claims("alice", { channels: ["a", "b"] }));
  const both = async (n: number) => {
    await publishOk(server, "a", `a${n}`);
    await publishOk(server, "b", `b${n}`);
  };
  try {
    // The page's origin, so the stream is same-origin; the page itself stays disconnected.
    await page.navigate(`${server.httpUrl}/?autoconnect=0`);
    await page.evaluate(`(() => {
      globalThis.seen = { a: [], b: [] };
      globalThis.notices = [];
      globalThis.opens = 0;
      const es = globalThis.es = new EventSource("/events?channels=a,b&token=${token}");
      es.onopen = () => opens++;
      es.onmessage = (e) => {
        const p = JSON.parse(e.data);
        seen[p.channel].push(p.id);
        globalThis.lastId = e.lastEventId; // what the browser sends back as Last-Event-ID
      };
      es.addEventListener("notice", (e) => notices.push(JSON.parse(e.data)));
      return true;
    })()`);
    await page.waitFor(
      `notices.filter((n) => n.notice === "subscribed").length === 2`,
      "both channels to be subscribed",
    );
    await both(1);
    await both(2);
    await page.waitFor(`seen.a.length === 2 && seen.b.length === 2`, "two publications each");

    // The server ends the stream; the browser will reconnect after retry: 1000 by itself.
    const res = await fetch(`${server.httpUrl}/disconnect?user=alice`, { method: "POST" });
    assertEquals(await res.json(), { disconnected: 1 });
    await page.waitFor(`notices.some((n) => n.notice === "closed")`, "the closed notice");
    // Published while the browser is away: without Last-Event-ID these would be a gap.
    await both(3);
    await both(4);
    await page.waitFor(`opens === 2`, "the EventSource to reconnect", 10_000);
    await page.waitFor(`seen.a.length === 4 && seen.b.length === 4`, "the missed publications");
    await both(5);
    await page.waitFor(`seen.a.length === 5 && seen.b.length === 5`, "five publications each");
    assertEquals(await page.evaluate(`seen`), { a: [1, 2, 3, 4, 5], b: [1, 2, 3, 4, 5] });
    // The resume was the server's replay (recovered), not a fresh start.
    const recovered = await page.evaluate<boolean[]>(
      `notices.filter((n) => n.notice === "subscribed").slice(2).map((n) => n.recovered === true)`,
    );
    assertEquals(recovered, [true, true]);
    assertEquals(
      await page.evaluate(`lastId`),
      `a:${server.epoch}:5,b:${server.epoch}:5`,
    );
    await page.evaluate(`es.close()`);
  } catch (err) {
    if (err instanceof Error) {
      err.message += `\npage errors: ${JSON.stringify(page.errors)}` +
        `\nserver logged:\n${server.logs.slice(-40).join("\n")}`;
    }
    throw err;
  }
});
