import { assert, assertEquals, assertStringIncludes, fail } from "@std/assert";
import {
  acceptKey,
  buildAcceptResponse,
  buildRejectResponse,
  findHeaderEnd,
  type HandshakeRejection,
  hostName,
  hostPolicy,
  isHostAllowed,
  isOriginAllowed,
  isRejection,
  parseRequestHead,
  type RequestHead,
  type UpgradeOptions,
  type UpgradeRequest,
  validateUpgrade,
  WEBSOCKET_GUID,
} from "../../src/protocol/handshake.ts";
import { concat, utf8 } from "../support/bytes.ts";

const decoder = new TextDecoder();

/** The RFC 6455 §1.3 sample key. */
const KEY = "dGhlIHNhbXBsZSBub25jZQ==";

const OPTIONS: UpgradeOptions = {
  paths: ["/echo", "/chat"],
  allowedOrigins: ["https://app.example", "http://localhost:8000"],
};

/** The header lines of a valid upgrade request to /echo. */
const VALID_HEADERS: Record<string, string> = {
  Host: "server.example.com",
  Upgrade: "websocket",
  Connection: "Upgrade",
  "Sec-WebSocket-Key": KEY,
  "Sec-WebSocket-Version": "13",
};

/**
 * Builds request head bytes. `headers` are merged over {@linkcode VALID_HEADERS}; a `null` value
 * drops that header.
 */
function request(
  headers: Record<string, string | null> = {},
  requestLine = "GET /echo HTTP/1.1",
): Uint8Array {
  let text = requestLine + "\r\n";
  for (const [name, value] of Object.entries({ ...VALID_HEADERS, ...headers })) {
    if (value !== null) text += `${name}: ${value}\r\n`;
  }
  return utf8(text + "\r\n");
}

/** Parses `bytes`, failing the test if the head itself is rejected. */
function head(bytes: Uint8Array): RequestHead {
  const parsed = parseRequestHead(bytes);
  if (isRejection(parsed)) fail(`head rejected: ${parsed.status} ${parsed.reason}`);
  return parsed;
}

/** Parses and validates a request built by {@linkcode request}. */
function upgrade(
  headers: Record<string, string | null> = {},
  requestLine?: string,
  options: UpgradeOptions = OPTIONS,
): UpgradeRequest | HandshakeRejection {
  return validateUpgrade(head(request(headers, requestLine)), options);
}

/** Asserts that `result` is a rejection with `status` (and exactly `headers`, when given). */
function assertRejected(
  result: UpgradeRequest | HandshakeRejection,
  status: number,
  headers?: Record<string, string>,
): HandshakeRejection {
  if (!isRejection(result)) fail(`expected ${status}, got an accepted upgrade`);
  assertEquals(result.status, status, result.reason);
  assert(result.reason.length > 0, "a rejection explains itself");
  if (headers !== undefined) assertEquals(result.headers, headers);
  return result;
}

/** Asserts that `result` is an accepted upgrade and returns it. */
function assertAccepted(result: UpgradeRequest | HandshakeRejection): UpgradeRequest {
  if (isRejection(result)) fail(`expected acceptance, got ${result.status} ${result.reason}`);
  return result;
}

// findHeaderEnd.

Deno.test("findHeaderEnd returns the index just past the blank line", () => {
  const bytes = utf8("GET / HTTP/1.1\r\nHost: a\r\n\r\nbody");
  assertEquals(findHeaderEnd(bytes), bytes.length - 4);
});

Deno.test("findHeaderEnd returns -1 while the head is incomplete", () => {
  assertEquals(findHeaderEnd(new Uint8Array(0)), -1);
  assertEquals(findHeaderEnd(utf8("GET / HTTP/1.1\r\nHost: a\r\n")), -1);
  assertEquals(findHeaderEnd(utf8("GET / HTTP/1.1\r\nHost: a\r\n\r")), -1);
  assertEquals(findHeaderEnd(utf8("GET / HTTP/1.1\nHost: a\n\n")), -1);
});

Deno.test("findHeaderEnd finds a terminator split across reads when resuming with from", () => {
  const full = utf8("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  // Every way the stream can be cut into a first read and the rest.
  for (let cut = 0; cut < full.length; cut++) {
    const first = full.subarray(0, cut);
    assertEquals(findHeaderEnd(first), -1, `first read of ${cut} bytes`);
    assertEquals(findHeaderEnd(full, cut), full.length, `resumed at ${cut}`);
  }
});

Deno.test("findHeaderEnd resumes across several reads that each add one byte", () => {
  const full = concat(utf8("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), utf8("extra"));
  let searched = 0;
  let end = -1;
  for (let length = 1; length <= full.length && end === -1; length++) {
    end = findHeaderEnd(full.subarray(0, length), searched);
    searched = length;
  }
  assertEquals(end, full.length - 5);
});

// parseRequestHead.

Deno.test("parseRequestHead parses the request line and lower-cases header names", () => {
  const parsed = head(utf8("GET /echo?x=1 HTTP/1.1\r\nHost: a\r\nX-Mixed-Case:  v  \r\n\r\n"));
  assertEquals(parsed.method, "GET");
  assertEquals(parsed.target, "/echo?x=1");
  assertEquals(parsed.version, "HTTP/1.1");
  assertEquals(parsed.headers, new Map([["host", "a"], ["x-mixed-case", "v"]]));
});

Deno.test("parseRequestHead joins repeated headers with a comma", () => {
  const parsed = head(
    utf8("GET / HTTP/1.1\r\nConnection: keep-alive\r\nconnection: Upgrade\r\n\r\n"),
  );
  assertEquals(parsed.headers.get("connection"), "keep-alive, Upgrade");
});

Deno.test("parseRequestHead rejects a malformed request line with 400", () => {
  for (
    const line of [
      "",
      "GET /",
      "GET / HTTP/1.1 extra",
      "GET  / HTTP/1.1",
      "GET  HTTP/1.1",
      "G@T / HTTP/1.1",
      "GET / HTTP/1",
      "GET / HTTX/1.1",
      "GET / http/1.1",
    ]
  ) {
    const result = parseRequestHead(utf8(line + "\r\nHost: a\r\n\r\n"));
    assert(isRejection(result), JSON.stringify(line));
    assertEquals(result.status, 400, JSON.stringify(line));
  }
});

Deno.test("parseRequestHead rejects a malformed header line with 400", () => {
  for (
    const line of ["NoColon", ": empty name", "Bad Name: x", "Host : a", " folded: x", "(x): y"]
  ) {
    const result = parseRequestHead(utf8(`GET / HTTP/1.1\r\nHost: a\r\n${line}\r\n\r\n`));
    assert(isRejection(result), JSON.stringify(line));
    assertEquals(result.status, 400, JSON.stringify(line));
    assertEquals(result.reason, "Malformed header line.");
  }
});

// validateUpgrade: acceptance.

Deno.test("validateUpgrade accepts the RFC 6455 sample request", () => {
  const accepted = assertAccepted(upgrade({ Origin: "https://app.example" }));
  assertEquals(accepted.path, "/echo");
  assertEquals(accepted.key, KEY);
  assertEquals(accepted.origin, "https://app.example");
  assertEquals(accepted.headers.get("sec-websocket-version"), "13");
});

Deno.test("validateUpgrade parses the path and query of the target", () => {
  const accepted = assertAccepted(upgrade({}, "GET /chat?room=a%20b&x=1&x=2 HTTP/1.1"));
  assertEquals(accepted.path, "/chat");
  const query = new URLSearchParams(accepted.search);
  assertEquals(query.get("room"), "a b");
  assertEquals(query.getAll("x"), ["1", "2"]);
});

Deno.test("validateUpgrade accepts header names and token values in any case", () => {
  const bytes = utf8(
    "GET /echo HTTP/1.1\r\nHOST: a\r\nuPgRaDe: WebSocket\r\nCONNECTION: UPGRADE\r\n" +
      `sec-WEBSOCKET-key: ${KEY}\r\nSEC-WEBSOCKET-VERSION: 13\r\n\r\n`,
  );
  assertAccepted(validateUpgrade(head(bytes), OPTIONS));
});

Deno.test("validateUpgrade accepts Connection: keep-alive, Upgrade", () => {
  assertAccepted(upgrade({ Connection: "keep-alive, Upgrade" }));
  assertAccepted(upgrade({ Connection: "keep-alive,upgrade" }));
});

Deno.test("validateUpgrade accepts a request without Origin whatever the allowed origins", () => {
  const accepted = assertAccepted(upgrade({}, undefined, { paths: ["/echo"], allowedOrigins: [] }));
  assertEquals(accepted.origin, undefined);
});

Deno.test("validateUpgrade accepts an allowed Origin", () => {
  assertAccepted(upgrade({ Origin: "http://localhost:8000" }));
});

Deno.test("validateUpgrade accepts any Origin when allowedOrigins is *", () => {
  const options: UpgradeOptions = { paths: ["/echo"], allowedOrigins: "*" };
  assertAccepted(upgrade({ Origin: "https://anywhere.example" }, undefined, options));
  assertAccepted(upgrade({ Origin: "null" }, undefined, options));
});

Deno.test("isOriginAllowed by default admits only the page server's origin on the Host's name", () => {
  const page: UpgradeOptions = {
    paths: ["/"],
    allowedOrigins: [],
    pageOrigin: { port: 8080, secure: false },
  };
  assert(isOriginAllowed("http://127.0.0.1:8080", "127.0.0.1:9000", page));
  assert(isOriginAllowed("http://push.example:8080", "push.example:9000", page));
  assert(isOriginAllowed("http://[::1]:8080", "[::1]:9000", page));
  assert(!isOriginAllowed("http://evil.example:8080", "push.example:9000", page), "other host");
  assert(!isOriginAllowed("http://push.example:9000", "push.example:9000", page), "other port");
  assert(!isOriginAllowed("https://push.example:8080", "push.example:9000", page), "other scheme");
  assert(!isOriginAllowed("null", "push.example:9000", page));
  assert(
    !isOriginAllowed("http://push.example:8080/path", "push.example:9000", page),
    "not an origin",
  );
  const tls: UpgradeOptions = {
    paths: ["/"],
    allowedOrigins: [],
    pageOrigin: { port: 443, secure: true },
  };
  assert(isOriginAllowed("https://push.example", "push.example:9443", tls), "default port");
  const none: UpgradeOptions = { paths: ["/"], allowedOrigins: [] };
  assert(!isOriginAllowed("http://127.0.0.1:8080", "127.0.0.1:9000", none), "no page: nothing");
  const list: UpgradeOptions = {
    paths: ["/"],
    allowedOrigins: ["https://app.example"],
    pageOrigin: page.pageOrigin,
  };
  assert(isOriginAllowed("https://app.example", "x:1", list));
  assert(
    !isOriginAllowed("http://127.0.0.1:8080", "127.0.0.1:9000", list),
    "a list replaces the default",
  );
});

// The Host rule (DNS rebinding).

Deno.test("hostName lower-cases, drops the port and IPv6 brackets, and refuses non-hosts", () => {
  assertEquals(hostName("Push.Example:9000"), "push.example");
  assertEquals(hostName("push.example."), "push.example");
  assertEquals(hostName("[::1]:9000"), "::1");
  assertEquals(hostName("[FD00::1]"), "fd00::1");
  assertEquals(hostName("127.0.0.1"), "127.0.0.1");
  assertEquals(hostName("h:"), "h");
  for (const bad of ["", "a b", "a/b", "u@h", "h:x", "h:1:2", "::1", "[::1", "[x]:1", "h:123456"]) {
    assertEquals(hostName(bad), null, bad);
  }
});

Deno.test("bound to loopback, the loopback names and addresses are accepted, any port", () => {
  const policy = hostPolicy("127.0.0.1");
  for (const host of ["127.0.0.1", "127.0.0.1:9000", "localhost:8080", "LOCALHOST", "[::1]:1"]) {
    assert(isHostAllowed(host, policy), host);
  }
  assert(isHostAllowed("127.0.0.2:9000", policy), "all of 127/8 is loopback");
  for (const host of ["rebind.attacker.example:9000", "192.168.1.5", "[fd00::1]", "a b"]) {
    assert(!isHostAllowed(host, policy), host);
  }
  assert(isHostAllowed("[::1]:9000", hostPolicy("::1")));
});

Deno.test("bound to one address, that address and --public-hosts are accepted, nothing else", () => {
  const policy = hostPolicy("10.0.0.11", ["push.example", "Other.Example:443", "fd00::2"]);
  for (const host of ["10.0.0.11:8080", "push.example", "PUSH.example:9000", "other.example"]) {
    assert(isHostAllowed(host, policy), host);
  }
  assert(isHostAllowed("[fd00::2]:9000", policy), "an IPv6 public host without brackets");
  for (const host of ["10.0.0.12", "localhost", "127.0.0.1", "evil.push.example", "example"]) {
    assert(!isHostAllowed(host, policy), host);
  }
});

Deno.test("bound to all interfaces, IP literals and localhost are accepted, names only if listed", () => {
  for (const bound of ["0.0.0.0", "::", "[::]"]) {
    const policy = hostPolicy(bound, ["push.example"]);
    for (const host of ["10.1.2.3:9000", "[fd00::1]:9000", "localhost", "push.example:443"]) {
      assert(isHostAllowed(host, policy), `${bound}: ${host}`);
    }
    for (const host of ["rebind.attacker.example", "999.1.1.1", "10.1.2.3.4"]) {
      assert(!isHostAllowed(host, policy), `${bound}: ${host}`);
    }
  }
});

Deno.test("validateUpgrade refuses a rebound Host with 403 even when Origin matches it", () => {
  const options: UpgradeOptions = {
    paths: ["/"],
    allowedOrigins: [],
    pageOrigin: { port: 8080, secure: false },
    allowedHosts: hostPolicy("127.0.0.1"),
  };
  const rebound = upgrade(
    { Host: "rebind.attacker.example:9000", Origin: "http://rebind.attacker.example:8080" },
    "GET / HTTP/1.1",
    options,
  );
  assertStringIncludes(assertRejected(rebound, 403).reason, "rebind.attacker.example");
  for (const host of ["127.0.0.1", "localhost", "[::1]"]) {
    assertAccepted(
      upgrade({ Host: `${host}:9000`, Origin: `http://${host}:8080` }, "GET / HTTP/1.1", options),
    );
  }
});

// validateUpgrade: each rejection.

Deno.test("validateUpgrade rejects a method other than GET with 405 and Allow: GET", () => {
  for (const method of ["POST", "HEAD", "PUT", "get"]) {
    assertRejected(upgrade({}, `${method} /echo HTTP/1.1`), 405, { Allow: "GET" });
  }
});

Deno.test("validateUpgrade rejects HTTP/1.0 with 400", () => {
  assertRejected(upgrade({}, "GET /echo HTTP/1.0"), 400);
  assertRejected(upgrade({}, "GET /echo HTTP/2.0"), 400);
});

Deno.test("validateUpgrade rejects a request without Host with 400", () => {
  assertRejected(upgrade({ Host: null }), 400);
  assertRejected(upgrade({ Host: "" }), 400);
});

Deno.test("validateUpgrade rejects a missing or other Upgrade with 426 and Upgrade: websocket", () => {
  const headers = { Upgrade: "websocket" };
  assertRejected(upgrade({ Upgrade: null }), 426, headers);
  assertRejected(upgrade({ Upgrade: "h2c" }), 426, headers);
  assertRejected(upgrade({ Upgrade: "websockets" }), 426, headers);
});

Deno.test("validateUpgrade rejects a Connection header without the upgrade token with 400", () => {
  assertRejected(upgrade({ Connection: null }), 400);
  assertRejected(upgrade({ Connection: "keep-alive" }), 400);
  assertRejected(upgrade({ Connection: "upgraded" }), 400);
});

Deno.test("validateUpgrade rejects a missing Sec-WebSocket-Key with 400", () => {
  assertRejected(upgrade({ "Sec-WebSocket-Key": null }), 400);
});

Deno.test("validateUpgrade rejects a Sec-WebSocket-Key that is not 16 bytes with 400", () => {
  const fifteen = btoa("x".repeat(15)); // 20 characters, no padding
  const seventeen = btoa("x".repeat(17)); // 24 characters, one "="
  for (
    const key of ["", fifteen, seventeen, "dGhlIHNhbXBsZSBub25jZQ", "not base64 at all!!!!==="]
  ) {
    assertRejected(upgrade({ "Sec-WebSocket-Key": key }), 400);
  }
});

Deno.test("validateUpgrade rejects a Sec-WebSocket-Key with whitespace inside with 400", () => {
  assertRejected(upgrade({ "Sec-WebSocket-Key": "dGhlIHNhbXBs ZSBub25jZQ==" }), 400);
  assertRejected(upgrade({ "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25j\tZQ==" }), 400);
});

Deno.test("validateUpgrade ignores optional whitespace around the key value", () => {
  assertAccepted(upgrade({ "Sec-WebSocket-Key": `  ${KEY}  ` }));
});

Deno.test("validateUpgrade rejects a repeated Sec-WebSocket-Key with 400", () => {
  const bytes = concat(
    utf8(`GET /echo HTTP/1.1\r\nSec-WebSocket-Key: ${KEY}\r\n`),
    request().subarray("GET /echo HTTP/1.1\r\n".length),
  );
  assertRejected(validateUpgrade(head(bytes), OPTIONS), 400);
});

Deno.test("validateUpgrade rejects a missing or other version with 426 and version 13", () => {
  for (const version of [null, "8", "12", "14", "13, 8"]) {
    assertRejected(upgrade({ "Sec-WebSocket-Version": version }), 426, {
      "Sec-WebSocket-Version": "13",
    });
  }
});

Deno.test("validateUpgrade rejects an unknown path with 404", () => {
  assertRejected(upgrade({}, "GET /nope HTTP/1.1"), 404);
  assertRejected(upgrade({}, "GET /echo/ HTTP/1.1"), 404);
  assertRejected(upgrade({}, "GET http://server.example.com/echo HTTP/1.1"), 404);
  assertRejected(upgrade({}, "GET * HTTP/1.1"), 404);
});

Deno.test("validateUpgrade treats a target starting with // as a path, not an authority", () => {
  const rejection = assertRejected(upgrade({}, "GET //evil.example/echo HTTP/1.1"), 404);
  assertStringIncludes(rejection.reason, "//evil.example/echo");
  const accepted = assertAccepted(
    upgrade({}, "GET //evil.example/echo HTTP/1.1", { ...OPTIONS, paths: ["//evil.example/echo"] }),
  );
  assertEquals(accepted.path, "//evil.example/echo");
});

Deno.test("validateUpgrade rejects an Origin that is not allowed with 403", () => {
  assertRejected(upgrade({ Origin: "https://evil.example" }), 403);
  assertRejected(upgrade({ Origin: "https://app.example:443" }), 403);
  assertRejected(upgrade({ Origin: "HTTPS://APP.EXAMPLE" }), 403);
  assertRejected(upgrade({ Origin: "null" }), 403);
});

Deno.test("validateUpgrade checks in a fixed order: method first, origin last", () => {
  const everythingWrong = {
    Host: null,
    Upgrade: null,
    Connection: null,
    "Sec-WebSocket-Key": null,
    "Sec-WebSocket-Version": null,
    Origin: "https://evil.example",
  };
  assertRejected(upgrade(everythingWrong, "POST /nope HTTP/1.0"), 405);
  assertRejected(upgrade(everythingWrong, "GET /nope HTTP/1.0"), 400);
  assertRejected(
    upgrade({ Upgrade: null, Origin: "https://evil.example" }, "GET /nope HTTP/1.1"),
    426,
  );
  assertRejected(upgrade({ "Sec-WebSocket-Version": "8" }, "GET /nope HTTP/1.1"), 426);
  assertRejected(upgrade({ Origin: "https://evil.example" }, "GET /nope HTTP/1.1"), 404);
});

// Accept key and responses.

Deno.test("acceptKey computes the RFC 6455 sample accept value", async () => {
  assertEquals(WEBSOCKET_GUID, "258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
  assertEquals(await acceptKey(KEY), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
});

Deno.test("buildAcceptResponse writes the exact 101 response", () => {
  assertEquals(
    decoder.decode(buildAcceptResponse("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")),
    "HTTP/1.1 101 Switching Protocols\r\n" +
      "Upgrade: websocket\r\n" +
      "Connection: Upgrade\r\n" +
      "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" +
      "\r\n",
  );
});

Deno.test("buildRejectResponse writes the exact error response with extra headers", () => {
  const bytes = buildRejectResponse({
    status: 426,
    reason: "Only WebSocket version 13 is supported.",
    headers: { "Sec-WebSocket-Version": "13" },
  });
  assertEquals(
    decoder.decode(bytes),
    "HTTP/1.1 426 Upgrade Required\r\n" +
      "Content-Type: text/plain; charset=utf-8\r\n" +
      "Content-Length: 40\r\n" +
      "Connection: close\r\n" +
      "Sec-WebSocket-Version: 13\r\n" +
      "\r\n" +
      "Only WebSocket version 13 is supported.\n",
  );
});

Deno.test("buildRejectResponse uses the standard reason phrase of each status", () => {
  const phrases: Record<number, string> = {
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    426: "Upgrade Required",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
  };
  for (const [status, phrase] of Object.entries(phrases)) {
    const text = decoder.decode(buildRejectResponse({ status: Number(status), reason: "x" }));
    assert(text.startsWith(`HTTP/1.1 ${status} ${phrase}\r\n`), text);
  }
});

Deno.test("buildRejectResponse sets Content-Length to the body's byte length", () => {
  for (const reason of ["", "short", "Origin https://é.example is not allowed.", "👋".repeat(10)]) {
    const bytes = buildRejectResponse({ status: 403, reason });
    const end = findHeaderEnd(bytes);
    assert(end > 0);
    const headText = decoder.decode(bytes.subarray(0, end));
    const body = bytes.subarray(end);
    assertStringIncludes(headText, `\r\nContent-Length: ${body.length}\r\n`);
    assertEquals(decoder.decode(body), reason + "\n");
  }
});

Deno.test("buildRejectResponse serves every rejection validateUpgrade produces", () => {
  const rejection = assertRejected(upgrade({ Upgrade: null }), 426);
  const text = decoder.decode(buildRejectResponse(rejection));
  assert(text.startsWith("HTTP/1.1 426 Upgrade Required\r\n"));
  assertStringIncludes(text, "\r\nUpgrade: websocket\r\n");
  // One Connection header, listing "upgrade" as RFC 9110 §7.8 requires of a 426 with Upgrade.
  assertEquals(text.match(/\r\nConnection:/gi)?.length, 1);
  assertStringIncludes(text, "\r\nConnection: Upgrade, close\r\n");
});

Deno.test("validateUpgrade matches the path exactly: no dot segments, no percent-decoding", () => {
  assertRejected(upgrade({}, "GET /nope/../echo HTTP/1.1"), 404);
  assertRejected(upgrade({}, "GET /./echo HTTP/1.1"), 404);
  assertRejected(upgrade({}, "GET /ech%6F HTTP/1.1"), 404);
  assertRejected(upgrade({}, "GET /echo#top HTTP/1.1"), 404);
  assertEquals(
    assertAccepted(upgrade({}, "GET /echo? HTTP/1.1")).search,
    "",
    "'?' alone: no query",
  );
  assertEquals(assertAccepted(upgrade({}, "GET /echo?a=1?b HTTP/1.1")).search, "?a=1?b");
  assertEquals(assertAccepted(upgrade({}, "GET /echo HTTP/1.1")).search, "");
});

Deno.test("loopback hosts: only real 127/8 addresses, and mapped IPv6 in both forms", () => {
  const policy = hostPolicy("127.0.0.1");
  for (const host of ["[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "127.255.255.254"]) {
    assert(isHostAllowed(host, policy), host);
  }
  for (const host of ["127.0.0.1111", "127.999.0.1", "127.0.0", "[::ffff:8000:1]"]) {
    assert(!isHostAllowed(host, policy), host);
  }
});
