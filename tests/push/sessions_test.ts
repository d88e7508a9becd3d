import { assertEquals } from "@std/assert";
import { Sessions } from "../../src/push/sessions.ts";

class FakePeer {
  closed: [number | undefined, string | undefined][] = [];
  constructor(readonly id: number) {}
  close(code?: number, reason?: string): void {
    this.closed.push([code, reason]);
  }
}

Deno.test("sessions: the connections of each user, closed together", () => {
  const sessions = new Sessions<FakePeer>();
  const [a1, a2, b1] = [new FakePeer(1), new FakePeer(2), new FakePeer(3)];
  sessions.add("alice", a1);
  sessions.add("alice", a2);
  sessions.add("alice", a2); // twice is once
  sessions.add("bob", b1);
  assertEquals(sessions.users, 2);
  assertEquals(sessions.of("alice"), [a1, a2]);
  assertEquals(sessions.disconnect("alice", 4003, "disconnected by server"), 2);
  assertEquals(a1.closed, [[4003, "disconnected by server"]]);
  assertEquals(b1.closed, []);
  assertEquals(sessions.remove("alice", a1), true);
  assertEquals(sessions.remove("alice", a1), false);
  assertEquals(sessions.of("alice"), [a2]);
  assertEquals(sessions.remove("alice", a2), true);
  assertEquals(sessions.users, 1);
  assertEquals(sessions.disconnect("nobody", 4003, ""), 0);
});
