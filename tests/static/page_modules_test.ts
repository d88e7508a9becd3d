/**
 * The page's DOM-free modules run in Deno as they do in a browser: the connection reconnects by
 * itself and says `quit` on disconnect; the channel set keeps the resume position.
 */
import { assertEquals } from "@std/assert";
import { PushConnection } from "../../static/connection.js";
import { ChannelSet, parseObject } from "../../static/channels.js";
import { startTestServer } from "../support/server.ts";
import { withDeadline } from "../support/async.ts";

Deno.test("PushConnection: opens, reconnects after a drop, and disconnects with quit", async () => {
  await using server = await startTestServer();
  const states: string[] = [];
  let opened = 0;
  let waiter: { state: string; resolve: () => void } | null = null;
  const reached = (state: string) =>
    withDeadline(
      new Promise<void>((resolve) => {
        if (states.at(-1) === state) resolve();
        else waiter = { state, resolve };
      }),
      5000,
      `state ${state}`,
    );
  const connection = new PushConnection(() => Promise.resolve(server.wsUrl + "/"), {
    state(state: string) {
      states.push(state);
      if (waiter?.state === state) waiter.resolve();
    },
    open: () => opened++,
  });
  connection.connect();
  await reached("open");
  connection.socket!.close(4000, "test drop");
  await reached("reconnecting");
  await reached("open");
  assertEquals(opened, 2);
  connection.disconnect();
  await reached("closed");
  await server.waitForLog("client.quit");
  assertEquals(states, ["connecting", "open", "reconnecting", "connecting", "open", "closed"]);
});

Deno.test("ChannelSet: positions follow publications; a recovered resume keeps ours", () => {
  const changed: string[] = [];
  const channels = new ChannelSet((ch: { name: string }) => changed.push(ch.name), () => {});
  const news = channels.add("news");
  assertEquals(channels.subscribeCommand(news), "subscribe news");
  channels.subscribed({ notice: "subscribed", channel: "news", epoch: "e1", id: 4 });
  channels.received({ channel: "news", epoch: "e1", id: 5, data: "x" });
  assertEquals(channels.subscribeCommand(news), "subscribe news e1:5");
  // Resuming from 5 while the channel is at 9: our position stays 5 until replays arrive.
  channels.subscribed({
    notice: "subscribed",
    channel: "news",
    epoch: "e1",
    id: 9,
    recovered: true,
  });
  assertEquals([news.epoch, news.id, news.status], ["e1", 5, "subscribed"]);
  channels.lost({ notice: "lost", channel: "news" });
  assertEquals(news.status, "lost");
  assertEquals(parseObject('{"a":1}'), { a: 1 });
  assertEquals(parseObject("[1]"), null);
  assertEquals(parseObject("I am waiting 2 seconds"), null);
  assertEquals(changed, ["news", "news", "news", "news", "news"]); // add, subscribed, received, subscribed, lost
});
