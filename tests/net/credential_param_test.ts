/**
 * The credential in the query (`?token=`): not kept on the connection, `***` in log lines; the
 * other parameters byte for byte.
 */
import { assertEquals } from "@std/assert";
import { redactParam, withoutParam } from "../../src/net/peer.ts";

Deno.test("withoutParam drops the token and keeps the rest as sent", () => {
  assertEquals(withoutParam("?token=a.b.c&channels=news,chat", "token"), "?channels=news,chat");
  assertEquals(
    withoutParam("?channels=a%2Cb&token=x&since=a:e:1", "token"),
    "?channels=a%2Cb&since=a:e:1",
  );
  assertEquals(withoutParam("?token=x", "token"), "");
  assertEquals(withoutParam("?tok%65n=x&demo=false", "token"), "?demo=false");
  assertEquals(withoutParam("?tokens=1&x=token", "token"), "?tokens=1&x=token");
  assertEquals(withoutParam("", "token"), "");
});

Deno.test("redactParam hides the token's value for a log line", () => {
  assertEquals(redactParam("?channels=news&token=a.b.c", "token"), "?channels=news&token=***");
  assertEquals(redactParam("?token=a&token=b", "token"), "?token=***&token=***");
  assertEquals(redactParam("?channels=news", "token"), "?channels=news");
});
