import { assertEquals, assertThrows } from "@std/assert";
import { tokenClaims } from "../src/token.ts";
import { Authenticator } from "../src/push/auth.ts";
import { hmacKey } from "../src/push/jwt_keys.ts";
import { SECRET } from "./support/jwt.ts";

Deno.test("deno task token: claims from flags", () => {
  assertEquals(
    tokenClaims(["--sub", "alice", "--channels", "news, chat.*", "--ttl", "15m"], 1000),
    { sub: "alice", iat: 1000, exp: 1900, channels: ["news", "chat.*"] },
  );
  assertEquals(
    tokenClaims(["--sub=bob", "--publish=news", "--info", '{"name":"Bob"}', "--aud", "push"], 0),
    { sub: "bob", iat: 0, exp: 3600, publish: ["news"], info: { name: "Bob" }, aud: "push" },
  );
  assertThrows(() => tokenClaims([], 0), Error, "--sub is required");
  assertThrows(() => tokenClaims(["--sub", "a", "--ttl", "soon"], 0), Error, "--ttl");
  assertThrows(() => tokenClaims(["--sub", "a", "--channels", "bad name"], 0), TypeError);
  assertThrows(() => tokenClaims(["--user", "a"], 0), Error, "unknown option");
});

Deno.test("deno task token prints a token the server accepts", async () => {
  const task = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)))
    .tasks.token as string;
  const [, ...args] = task.split(" "); // "deno run …": run it with this Deno
  const out = await new Deno.Command(Deno.execPath(), {
    args: [...args, "--sub", "alice", "--channels", "news,chat.*", "--ttl", "1h"],
    cwd: new URL("..", import.meta.url).pathname,
    env: { PUSH_JWT_SECRET: SECRET },
    stdout: "piped",
    stderr: "piped",
  }).output();
  assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
  const token = new TextDecoder().decode(out.stdout).trim();
  const id = await new Authenticator({ secret: hmacKey(SECRET) }).verify(token);
  assertEquals(id.user, "alice");
  assertEquals(id.channels.matches("chat.1"), true);
  const short = await new Deno.Command(Deno.execPath(), {
    args: [...args, "--sub", "alice"],
    cwd: new URL("..", import.meta.url).pathname,
    env: { PUSH_JWT_SECRET: "short" },
    stderr: "piped",
  }).output();
  assertEquals(short.code, 2);
});
