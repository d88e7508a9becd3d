/*
 * loadgen: the benchmark's load client in C, one process, one epoll loop (bench tooling, not
 * the product). A drop-in replacement for bench/load_client.ts: the same LoadConfig JSON as
 * argv[1], the same JSON events on stdout (connected, ended, result, slow, closed, error), the
 * same commands on stdin (go, drain, close), the same checks (ids in order, once; send order;
 * `ts` and `seq` from the first bytes of each payload, as bench/frame_scanner.ts reads them).
 *
 * Why C: the Deno client used 90-99 % of its core against Bun, so its latency figures were the
 * client's. Here one read of up to 256 KiB goes into one shared buffer, frames are walked in
 * place with a small per-connection carry for a frame start split across reads, and nothing is
 * allocated per message.
 *
 * Build: cc -O2 -o .artifacts/loadgen bench/loadgen/loadgen.c
 * Run:   .artifacts/loadgen '{"wsPort":9100,"httpPort":8180,"clients":100,"messages":100}'
 *        then type: go, close
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h> /* macros only (isnan, INFINITY): util.h avoids libm */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sha1.h"
#include "util.h"

/* ---------------------------------------------------------------- configuration */

/** LoadConfig of bench/load_client.ts, with DEFAULT_LOAD. */
static struct {
  int wsPort, httpPort;
  int wsPorts[64];
  int wsPortCount;
  char channel[512];
  char path[4096];
  int hasPath;
  long clients, slow, messages;
  double seconds;
  long size, inflight;
  double rate;
  int echo;
  long echoWarmup;
  int idle;
  long connectConcurrency;
  double stallMs, timeoutMs, drainMs;
} cfg = {
    .channel = "bench",
    .clients = 100,
    .messages = 100,
    .size = 64,
    .inflight = 1,
    .echoWarmup = 50,
    .connectConcurrency = 64,
    .stallMs = 10000,
    .timeoutMs = 120000,
    .drainMs = 10000,
};

static void parse_config(const char *s) {
  JsonCursor c = {s};
  if (!json_expect(&c, '{')) fail("the config is not a JSON object");
  if (json_peek(&c) == '}') return;
  do {
    char key[64];
    if (!json_string(&c, key, sizeof key) || !json_expect(&c, ':')) fail("bad config JSON");
#define NUM(name) \
  else if (!strcmp(key, #name)) cfg.name = json_number(&c)
    if (0) {
    }
    NUM(wsPort);
    NUM(httpPort);
    NUM(clients);
    NUM(slow);
    NUM(messages);
    NUM(seconds);
    NUM(size);
    NUM(inflight);
    NUM(rate);
    NUM(echoWarmup);
    NUM(connectConcurrency);
    NUM(stallMs);
    NUM(timeoutMs);
    NUM(drainMs);
    else if (!strcmp(key, "echo")) cfg.echo = json_bool(&c);
    else if (!strcmp(key, "idle")) cfg.idle = json_bool(&c);
    else if (!strcmp(key, "channel")) {
      if (!json_string(&c, cfg.channel, sizeof cfg.channel)) fail("bad channel");
    } else if (!strcmp(key, "path")) {
      if (!json_string(&c, cfg.path, sizeof cfg.path)) fail("bad path");
      cfg.hasPath = 1;
    } else if (!strcmp(key, "wsPorts")) {
      if (!json_expect(&c, '[')) fail("bad wsPorts");
      if (json_peek(&c) != ']') {
        do {
          double p = json_number(&c);
          if (cfg.wsPortCount < 64) cfg.wsPorts[cfg.wsPortCount++] = (int)p;
        } while (json_expect(&c, ','));
      }
      if (!json_expect(&c, ']')) fail("bad wsPorts");
    } else {
      /* A field this client does not know (a newer LoadConfig option, e.g. deflate): fine
         while it is off, an error when set, never a silently different scenario. */
      char ch = json_peek(&c);
      if (ch == 'f' || ch == 'n') json_skip(&c);
      else if (ch == '0' && !(c.p[1] >= '0' && c.p[1] <= '9') && c.p[1] != '.') json_skip(&c);
      else fail("the C load client does not support the config field \"%s\"", key);
    }
#undef NUM
  } while (json_expect(&c, ','));
  if (!json_expect(&c, '}')) fail("bad config JSON");
  if (cfg.inflight < 1) cfg.inflight = 1;
  if (cfg.connectConcurrency < 1) cfg.connectConcurrency = 1;
}

/* ---------------------------------------------------------------- clock and CPU */

/** Milliseconds since the epoch, sub-millisecond (the clock of the published `ts`). */
static inline double clock_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/** This process's CPU time (user + system) in seconds. */
static double cpu_seconds(void) {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + u.ru_stime.tv_sec +
         u.ru_stime.tv_usec / 1e6;
}

static uint64_t rng_state;
/** xorshift64*: masking keys for pong and close frames (no proxy to protect on loopback). */
static uint32_t rng32(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return (uint32_t)((rng_state * 2685821657736338717ULL) >> 32);
}

/* ---------------------------------------------------------------- tallies */

/** Measurements shared by a group of clients (the fast ones, or the slow ones). */
typedef struct {
  long clients;
  double target; /* INFINITY while a timed phase publishes */
  double now;    /* the clock at the end of the read being scanned */
  float *lat;
  size_t latCount, latCap;
  long deliveries, gaps, duplicates, sendReorders, malformed, missingTs, unexpectedFrames;
  long completed, lost;
  double lastDeliveryAt;
} Tally;

static Tally fast, slowT;

static int tally_done(Tally *t) { return t->completed + t->lost == t->clients; }

/* ---------------------------------------------------------------- connections */

#define PEEK_BYTES 192
#define READ_BYTES (256 * 1024)

enum { C_CONNECTING, C_HANDSHAKE, C_OPEN, C_DEAD };

typedef struct {
  int fd;
  int state;
  int key; /* index into keys */
  int port;
  Tally *tally;
  int reading;    /* wants EPOLLIN */
  int registered; /* in the epoll set (a connection with no interest is removed: an idle
                     socket would still report EPOLLHUP, level-triggered, forever) */
  /* handshake */
  char *hs;
  int hsLen;
  /* checks */
  double base; /* ids up to this are warm-up; INFINITY: not measuring */
  long expected, received, lastId, maxSeq;
  int closeCode;
  char closeReason[124];
  int closeSent, stopping;
  char ended[64];
  /* frame scanner (bench/frame_scanner.ts) */
  uint64_t skip;
  uint8_t carry[14 + PEEK_BYTES];
  int carryLen;
  int head;
  uint64_t length;
  int idAt;
  /* pending writes */
  uint8_t *out;
  int outLen, outCap, wantOut;
  /* echo */
  long limit;
  uint8_t mask[4];
} Conn;

typedef struct {
  char key[25];
  char accept[29];
} Key;

static Conn *conns;
static Key *keys;
static long total;
static int epfd;
static uint8_t *readBuf;
static char target[8192];
static const char *GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

#define TAG_CONN 0ULL
#define TAG_PUB 1ULL
#define TAG_STDIN 2ULL
#define MKTAG(t, i) (((uint64_t)(t) << 32) | (uint32_t)(i))

static void ep(int op, int fd, uint32_t events, uint64_t tag) {
  struct epoll_event e = {.events = events, .data.u64 = tag};
  if (epoll_ctl(epfd, op, fd, &e) < 0 && op != EPOLL_CTL_DEL) fail("epoll_ctl: %s", strerror(errno));
}

static void conn_update(Conn *c, long i) {
  uint32_t ev = (c->reading ? EPOLLIN : 0) | (c->wantOut ? EPOLLOUT : 0);
  if (ev == 0) {
    if (c->registered) ep(EPOLL_CTL_DEL, c->fd, 0, MKTAG(TAG_CONN, i));
    c->registered = 0;
    return;
  }
  ep(c->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, ev, MKTAG(TAG_CONN, i));
  c->registered = 1;
}

/** Writes now, or queues what the socket did not take (small control and echo frames). */
static void conn_send(Conn *c, long i, const uint8_t *b, int n) {
  if (c->fd < 0) return;
  if (c->outLen == 0) {
    ssize_t w = write(c->fd, b, n);
    if (w == n) return;
    if (w < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK) return; /* the read side will see it */
      w = 0;
    }
    b += w;
    n -= (int)w;
  }
  if (c->outLen + n > c->outCap) {
    c->outCap = (c->outLen + n) * 2 + 256;
    c->out = realloc(c->out, c->outCap);
    if (!c->out) fail("out of memory");
  }
  memcpy(c->out + c->outLen, b, n);
  c->outLen += n;
  if (!c->wantOut) {
    c->wantOut = 1;
    conn_update(c, i);
  }
}

static void conn_flush(Conn *c, long i) {
  while (c->outLen > 0) {
    ssize_t w = write(c->fd, c->out, c->outLen);
    if (w < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      c->outLen = 0;
      break;
    }
    memmove(c->out, c->out + w, c->outLen - w);
    c->outLen -= (int)w;
  }
  c->wantOut = 0;
  conn_update(c, i);
}

/** A masked client frame (FIN set), payload up to 65535 bytes. */
static int masked_frame(uint8_t *out, int opcode, const uint8_t *payload, int n, const uint8_t *mask) {
  int h = 0;
  out[h++] = 0x80 | opcode;
  if (n < 126) out[h++] = 0x80 | n;
  else {
    out[h++] = 0x80 | 126;
    out[h++] = n >> 8;
    out[h++] = n & 0xff;
  }
  uint8_t m[4];
  if (mask) memcpy(m, mask, 4);
  else {
    uint32_t r = rng32();
    memcpy(m, &r, 4);
  }
  memcpy(out + h, m, 4);
  h += 4;
  for (int k = 0; k < n; k++) out[h + k] = payload[k] ^ m[k & 3];
  return h + n;
}

static void send_close(Conn *c, long i, int code) {
  uint8_t p[2] = {code >> 8, code & 0xff}, f[16];
  conn_send(c, i, f, masked_frame(f, 8, p, 2, NULL));
}

/** A measured client whose connection ended early will not complete: stop waiting for it. */
static void conn_ended(Conn *c, long i, const char *why) {
  snprintf(c->ended, sizeof c->ended, "%s", why);
  if (c->fd >= 0) {
    if (c->registered) ep(EPOLL_CTL_DEL, c->fd, 0, MKTAG(TAG_CONN, i));
    c->registered = 0;
    close(c->fd);
    c->fd = -1;
  }
  c->state = C_DEAD;
  if (c->stopping || isinf(c->base) || c->received >= c->tally->target) return;
  if (c->closeCode == 0) c->tally->lost++;
}

static void echo_send(Conn *c, long i, long id);

/** BenchClient.onText (+ EchoClient's next message). */
static void on_text(Conn *c, long i, long id, double ts, long seq) {
  Tally *t = c->tally;
  if (id < 0) {
    t->malformed++;
    return;
  }
  c->lastId = id;
  if (!((double)id <= c->base)) {
    if (id != c->expected) {
      if (id < c->expected) t->duplicates++;
      else t->gaps += id - c->expected;
    }
    c->expected = id + 1;
    if (seq >= 0) {
      if (seq < c->maxSeq) t->sendReorders++;
      else c->maxSeq = seq;
    }
    t->deliveries++;
    t->lastDeliveryAt = t->now;
    if (isnan(ts)) t->missingTs++;
    else {
      if (t->latCount == t->latCap && t->latCap > 0) {
        /* A timed phase may deliver more than its estimate: grow (rare, not per message). */
        t->latCap *= 2;
        t->lat = realloc(t->lat, t->latCap * sizeof(float));
        if (!t->lat) fail("out of memory for latency samples");
      }
      if (t->latCount < t->latCap) t->lat[t->latCount++] = (float)(t->now - ts);
    }
    if ((double)++c->received == t->target) t->completed++;
  }
  if (cfg.echo && id < c->limit && !c->stopping) echo_send(c, i, id + 1);
}

static void on_close(Conn *c, long i, int code, const uint8_t *reason, int n) {
  if (c->closeCode != 0) return;
  c->closeCode = code;
  if (n > (int)sizeof c->closeReason - 1) n = sizeof c->closeReason - 1;
  memcpy(c->closeReason, reason, n);
  c->closeReason[n] = 0;
  if (!c->stopping && !isinf(c->base) && c->received < c->tally->target) c->tally->lost++;
  if (c->closeSent) return;
  c->closeSent = 1;
  send_close(c, i, code == 1005 || code == 1006 ? 1000 : code);
}

static const uint8_t ID_KEY[] = "\"id\":";
static const uint8_t DATA_TS[] = ",\"data\":{\"ts\":";
static const uint8_t SEQ_KEY[] = ",\"seq\":";
#define ID_LEN 5
#define DATA_TS_LEN 14
#define SEQ_LEN 7

static int matches(const uint8_t *b, long at, const uint8_t *p, int n) {
  return at >= 0 && memcmp(b + at, p, n) == 0;
}

static inline int isdig(uint8_t ch) { return ch >= '0' && ch <= '9'; }

/** A JSON number without exponent from b[i..end); NaN when there is none (frame_scanner.ts). */
static double parse_number(const uint8_t *b, long i, long end) {
  double sign = 1, value = 0;
  if (i < end && b[i] == '-') {
    sign = -1;
    i++;
  }
  long start = i;
  while (i < end && isdig(b[i])) value = value * 10 + (b[i++] - '0');
  if (i == start) return NAN;
  if (i < end && b[i] == '.') {
    double fraction = 0, scale = 1;
    i++;
    while (i < end && isdig(b[i]) && scale < 1e15) {
      fraction = fraction * 10 + (b[i++] - '0');
      scale *= 10;
    }
    value += fraction / scale;
  }
  return sign * value;
}

static void scan_text(Conn *c, long ci, const uint8_t *b, long p, long peek) {
  long at = c->idAt;
  if (at < 0 || at > peek || !matches(b, p + at - ID_LEN, ID_KEY, ID_LEN)) {
    at = -1;
    for (long k = 0; k + ID_LEN <= peek; k++) {
      if (matches(b, p + k, ID_KEY, ID_LEN)) {
        at = k + ID_LEN;
        break;
      }
    }
    if (at < 0) {
      on_text(c, ci, -1, NAN, -1);
      return;
    }
    c->idAt = (int)at;
  }
  long end = p + peek, i = p + at, id = 0;
  while (i < end && isdig(b[i])) id = id * 10 + (b[i++] - '0');
  double ts = NAN;
  long seq = -1;
  if (i + DATA_TS_LEN < end && matches(b, i, DATA_TS, DATA_TS_LEN)) {
    i += DATA_TS_LEN;
    ts = parse_number(b, i, end);
    while (i < end && (isdig(b[i]) || b[i] == '.' || b[i] == '-')) i++;
    if (i + SEQ_LEN < end && matches(b, i, SEQ_KEY, SEQ_LEN)) {
      i += SEQ_LEN;
      long start = i;
      seq = 0;
      while (i < end && isdig(b[i])) seq = seq * 10 + (b[i++] - '0');
      if (i == start) seq = -1;
    }
  }
  on_text(c, ci, id, ts, seq);
}

/** The bytes needed from o to handle the frame there (header + up to PEEK_BYTES of payload). */
static long need(Conn *c, const uint8_t *b, long o, long available) {
  if (available < 2) return 2;
  uint8_t b1 = b[o + 1];
  int len7 = b1 & 0x7f;
  int head = (len7 < 126 ? 2 : len7 == 126 ? 4 : 10) + (b1 & 0x80 ? 4 : 0);
  if (available < head) return head;
  uint64_t length = len7;
  if (len7 == 126) length = ((uint64_t)b[o + 2] << 8) | b[o + 3];
  else if (len7 == 127) {
    length = 0;
    for (int k = 2; k < 10; k++) length = (length << 8) | b[o + k];
  }
  c->head = head;
  c->length = length;
  return head + (long)(length < PEEK_BYTES ? length : PEEK_BYTES);
}

static void frame(Conn *c, long ci, const uint8_t *b, long o) {
  long head = c->head;
  uint64_t length = c->length;
  long peek = (long)(length < PEEK_BYTES ? length : PEEK_BYTES);
  c->skip = length - peek;
  uint8_t b0 = b[o];
  int opcode = b0 & 0x0f, fin = (b0 & 0x80) != 0;
  long p = o + head;
  if (b[o + 1] & 0x80) c->tally->unexpectedFrames++; /* a masked server frame */
  else if (opcode == 1 && fin) scan_text(c, ci, b, p, peek);
  else if (opcode == 8) {
    int code = peek >= 2 ? (b[p] << 8) | b[p + 1] : 1005;
    on_close(c, ci, code, b + p + 2, peek > 2 ? (int)peek - 2 : 0);
  } else if (opcode == 9) {
    uint8_t f[8 + PEEK_BYTES + 8];
    conn_send(c, ci, f, masked_frame(f, 0xa, b + p, (int)peek, NULL));
  } else c->tally->unexpectedFrames++;
}

/** Moves bytes into the carry until the frame start is complete, then handles that frame. */
static long fill_carry(Conn *c, long ci, const uint8_t *b, long i, long n) {
  while (1) {
    long nd = need(c, c->carry, 0, c->carryLen);
    if (c->carryLen >= nd) {
      c->carryLen = 0;
      frame(c, ci, c->carry, 0);
      return i;
    }
    if (i == n) return i;
    long take = nd - c->carryLen;
    if (take > n - i) take = n - i;
    memcpy(c->carry + c->carryLen, b + i, take);
    c->carryLen += (int)take;
    i += take;
  }
}

/** FrameScanner.push: b[0..n) of this connection's stream. */
static void scan(Conn *c, long ci, const uint8_t *b, long n) {
  long i = 0;
  while (i < n) {
    if (c->state == C_DEAD) return;
    if (c->skip > 0) {
      uint64_t take = c->skip < (uint64_t)(n - i) ? c->skip : (uint64_t)(n - i);
      c->skip -= take;
      i += (long)take;
      continue;
    }
    if (c->carryLen > 0) {
      i = fill_carry(c, ci, b, i, n);
      if (c->carryLen > 0) return;
      continue;
    }
    long nd = need(c, b, i, n - i);
    if (n - i >= nd) {
      frame(c, ci, b, i);
      i += nd;
    } else {
      memcpy(c->carry, b + i, n - i);
      c->carryLen = (int)(n - i);
      i = n;
    }
  }
}

/* ---------------------------------------------------------------- handshakes */

static long nextConnect, inProgress, connectedCount, failedCount;
static char firstFailure[512];

static void handshake_failed(Conn *c, long i, const char *fmt, ...) {
  if (failedCount++ == 0) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(firstFailure, sizeof firstFailure, fmt, ap);
    va_end(ap);
  }
  if (c->fd >= 0) {
    if (c->registered) ep(EPOLL_CTL_DEL, c->fd, 0, MKTAG(TAG_CONN, i));
    c->registered = 0;
    close(c->fd);
    c->fd = -1;
  }
  free(c->hs);
  c->hs = NULL;
  c->state = C_DEAD;
  c->ended[0] = 'x'; /* never a client: not counted anywhere */
  inProgress--;
}

static int tcp_connect(int port, int *immediate) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  *immediate = 0;
  if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) *immediate = 1;
  else if (errno != EINPROGRESS) {
    int e = errno;
    close(fd);
    return -e;
  }
  return fd;
}

static void handshake_send(Conn *c, long i) {
  char req[10000];
  int n = snprintf(req, sizeof req,
                   "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
                   target, c->port, keys[c->key].key);
  if (write(c->fd, req, n) != n) { /* a fresh socket takes 200 bytes at once */
    handshake_failed(c, i, "write: %s", strerror(errno));
    return;
  }
  c->state = C_HANDSHAKE;
  c->hs = malloc(4096);
  c->hsLen = 0;
  ep(EPOLL_CTL_MOD, c->fd, EPOLLIN, MKTAG(TAG_CONN, i));
}

static void start_connects(void) {
  while (inProgress < cfg.connectConcurrency && nextConnect < total) {
    long i = nextConnect++;
    Conn *c = &conns[i];
    c->port = cfg.wsPortCount ? cfg.wsPorts[i % cfg.wsPortCount] : cfg.wsPort;
    inProgress++;
    int immediate;
    int fd = tcp_connect(c->port, &immediate);
    if (fd < 0) {
      c->fd = -1;
      handshake_failed(c, i, "connect: %s", strerror(-fd));
      continue;
    }
    c->fd = fd;
    c->state = C_CONNECTING;
    ep(EPOLL_CTL_ADD, fd, EPOLLOUT, MKTAG(TAG_CONN, i));
    c->registered = 1;
    if (immediate) handshake_send(c, i);
  }
}

static void handshake_read(Conn *c, long i) {
  ssize_t n = read(c->fd, c->hs + c->hsLen, 4096 - c->hsLen);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
  if (n <= 0) {
    handshake_failed(c, i, n == 0 ? "The server closed the connection during the handshake."
                                  : "read: %s", strerror(errno));
    return;
  }
  int from = c->hsLen > 3 ? c->hsLen - 3 : 0;
  c->hsLen += (int)n;
  int end = -1;
  for (int k = from; k + 3 < c->hsLen; k++) {
    if (c->hs[k] == '\r' && c->hs[k + 1] == '\n' && c->hs[k + 2] == '\r' && c->hs[k + 3] == '\n') {
      end = k + 4;
      break;
    }
  }
  if (end < 0) {
    if (c->hsLen == 4096) handshake_failed(c, i, "The handshake response head is too large.");
    return;
  }
  char *h = c->hs;
  char *eol = memmem(h, end, "\r\n", 2);
  if (strncmp(h, "HTTP/1.1 101 ", 13) != 0) {
    handshake_failed(c, i, "The server refused the upgrade: %.*s", (int)(eol - h), h);
    return;
  }
  const char *got = NULL;
  int gotLen = 0;
  for (char *line = eol + 2; line < h + end - 2;) {
    char *le = memmem(line, h + end - line, "\r\n", 2);
    if (le - line > 21 && strncasecmp(line, "sec-websocket-accept:", 21) == 0) {
      got = line + 21;
      while (got < le && (*got == ' ' || *got == '\t')) got++;
      const char *ge = le;
      while (ge > got && (ge[-1] == ' ' || ge[-1] == '\t')) ge--;
      gotLen = (int)(ge - got);
      break;
    }
    line = le + 2;
  }
  if (!got || gotLen != 28 || memcmp(got, keys[c->key].accept, 28) != 0) {
    handshake_failed(c, i, "Wrong Sec-WebSocket-Accept: %.*s, expected %s.", got ? gotLen : 9,
                     got ? got : "undefined", keys[c->key].accept);
    return;
  }
  c->state = C_OPEN;
  inProgress--;
  connectedCount++;
  /* Slow clients do not read until `drain`; the fast ones read from now on. */
  c->reading = c->tally == &fast;
  conn_update(c, i);
  int rest = c->hsLen - end;
  uint8_t leftover[4096];
  memcpy(leftover, h + end, rest);
  free(c->hs);
  c->hs = NULL;
  if (rest > 0) {
    c->tally->now = clock_ms();
    scan(c, i, leftover, rest);
  }
}

/* ---------------------------------------------------------------- echo */

static void echo_send(Conn *c, long i, long id) {
  char text[70000];
  int n = snprintf(text, sizeof text, "{\"id\":%ld,\"data\":{\"ts\":%.3f,\"p\":\"", id, clock_ms());
  long pad = (cfg.size < 65000 ? cfg.size : 65000) - n - 3;
  if (pad > 0 && n + pad + 3 < (long)sizeof text) {
    memset(text + n, 'x', pad);
    n += (int)pad;
  }
  memcpy(text + n, "\"}}", 3);
  n += 3;
  uint8_t f[70016];
  conn_send(c, i, f, masked_frame(f, 1, (uint8_t *)text, n, c->mask));
}

/* ---------------------------------------------------------------- publishers */

/** PublishOutcome of load_client.ts. */
typedef struct {
  long published, failures;
  char firstFailure[256];
  double deliveredMin, deliveredMax, lastId, seconds, perSecond, maxBehindMs;
} Outcome;

/** One publishAll call: `count` publishes over publishers [from, to). */
typedef struct {
  int active;
  int from, to;
  long count, next, firstSeq;
  double rate, t0, stopAt;
  Outcome out;
} Job;

typedef struct {
  int fd;
  int busy;
  char *req;
  int reqLen, reqOff;
  char *in;
  int inLen, inCap;
} Pub;

static Pub *pubs;
static Job job;
static char publishHead[2048];

static void outcome_init(Outcome *o) {
  memset(o, 0, sizeof *o);
  o->deliveredMin = INFINITY;
}

static void pub_write(Pub *p, int k) {
  while (p->reqOff < p->reqLen) {
    ssize_t w = write(p->fd, p->req + p->reqOff, p->reqLen - p->reqOff);
    if (w < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        ep(EPOLL_CTL_MOD, p->fd, EPOLLIN | EPOLLOUT, MKTAG(TAG_PUB, k));
        return;
      }
      fail("publish write: %s", strerror(errno));
    }
    p->reqOff += (int)w;
  }
  ep(EPOLL_CTL_MOD, p->fd, EPOLLIN, MKTAG(TAG_PUB, k));
}

/** Stamps the body right before the bytes leave (makeBody of load_client.ts). */
static void pub_start(Pub *p, int k, long seq) {
  if (p->fd < 0) fail("The server closed the publish connection.");
  char *r = p->req;
  int h = (int)strlen(publishHead);
  char bodyHead[96];
  int bh = snprintf(bodyHead, sizeof bodyHead, "{\"ts\":%.3f,\"seq\":%ld,\"pad\":\"", clock_ms(), seq);
  long pad = cfg.size - bh - 2;
  if (pad < 0) pad = 0;
  long blen = bh + pad + 2;
  int n = h + snprintf(r + h, 64, "Content-Length: %ld\r\n\r\n", blen);
  memcpy(r, publishHead, h);
  memcpy(r + n, bodyHead, bh);
  memset(r + n + bh, 'x', pad);
  memcpy(r + n + bh + pad, "\"}", 2);
  p->reqLen = n + (int)blen;
  p->reqOff = 0;
  p->busy = 1;
  pub_write(p, k);
}

static double number_after(const char *s, int n, const char *key) {
  const char *at = memmem(s, n, key, strlen(key));
  if (!at) return NAN;
  at += strlen(key);
  while (at < s + n && *at == ' ') at++;
  return parse_number((const uint8_t *)at, 0, s + n - at);
}

/** Parses a complete response from p->in, if there is one; returns its length, or 0. */
static int pub_response(Pub *p, int *status, char **body, int *bodyLen) {
  char *h = p->in;
  char *e = memmem(h, p->inLen, "\r\n\r\n", 4);
  if (!e) return 0;
  int headLen = (int)(e - h) + 4;
  *status = strncmp(h, "HTTP/1.1 ", 9) == 0 ? atoi(h + 9) : 0;
  long clen = -1;
  int chunked = 0;
  for (char *line = memmem(h, headLen, "\r\n", 2) + 2; line < e;) {
    char *le = memmem(line, e + 2 - line, "\r\n", 2);
    if (strncasecmp(line, "content-length:", 15) == 0) clen = atol(line + 15);
    else if (strncasecmp(line, "transfer-encoding:", 18) == 0 && memmem(line, le - line, "chunked", 7))
      chunked = 1;
    line = le + 2;
  }
  if (clen >= 0) {
    if (p->inLen < headLen + clen) return 0;
    *body = h + headLen;
    *bodyLen = (int)clen;
    return headLen + (int)clen;
  }
  if (!chunked) fail("A response without a length: %.*s", headLen, h);
  /* Chunked: first check that the terminating chunk is there, then decode in place (the
     decoded bytes never overtake the unread ones). */
  for (int apply = 0; apply < 2; apply++) {
    int at = headLen, w = headLen;
    while (1) {
      char *le = memmem(h + at, p->inLen - at, "\r\n", 2);
      if (!le) return 0;
      long size = strtol(h + at, NULL, 16);
      int dataAt = (int)(le - h) + 2;
      if (p->inLen < dataAt + size + 2) return 0;
      if (size == 0) {
        if (!apply) break;
        *body = h + headLen;
        *bodyLen = w - headLen;
        return dataAt + 2;
      }
      if (apply) memmove(h + w, h + dataAt, size);
      w += (int)size;
      at = dataAt + (int)size + 2;
    }
  }
  return 0;
}

static void pub_read(Pub *p) {
  if (p->inLen == p->inCap) {
    p->inCap *= 2;
    p->in = realloc(p->in, p->inCap);
  }
  ssize_t n = read(p->fd, p->in + p->inLen, p->inCap - p->inLen);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
  if (n <= 0) {
    /* Only an error when an answer is awaited; an idle connection fails at its next use. */
    if (p->busy) fail("The server closed the publish connection.");
    ep(EPOLL_CTL_DEL, p->fd, 0, 0);
    close(p->fd);
    p->fd = -1;
    return;
  }
  p->inLen += (int)n;
  int status, bodyLen;
  char *body;
  int used = pub_response(p, &status, &body, &bodyLen);
  if (!used || !p->busy) return;
  Outcome *o = &job.out;
  if (status != 200) {
    o->failures++;
    if (!o->firstFailure[0])
      snprintf(o->firstFailure, sizeof o->firstFailure, "HTTP %d: %.*s", status,
               bodyLen < 200 ? bodyLen : 200, body);
  } else {
    double id = number_after(body, bodyLen, "\"id\":");
    double delivered = number_after(body, bodyLen, "\"delivered\":");
    if (isnan(id) || isnan(delivered)) fail("publish answer is not the expected JSON: %.*s", bodyLen, body);
    o->published++;
    if (delivered < o->deliveredMin) o->deliveredMin = delivered;
    if (delivered > o->deliveredMax) o->deliveredMax = delivered;
    if (id > o->lastId) o->lastId = id;
  }
  memmove(p->in, p->in + used, p->inLen - used);
  p->inLen -= used;
  p->busy = 0;
}

/** Starts the publishes that are due on idle connections; returns ms until the next is due. */
static double pump(void) {
  if (!job.active) return INFINITY;
  double wait = INFINITY;
  for (int k = job.from; k < job.to; k++) {
    Pub *p = &pubs[k];
    if (p->busy) continue;
    double now = clock_ms();
    if (job.next >= job.count || now >= job.stopAt) break;
    if (job.rate > 0) {
      double due = job.t0 + (job.next * 1000.0) / job.rate;
      if (due - now > 0.5) {
        wait = due - now;
        break;
      }
      if (now - due > job.out.maxBehindMs) job.out.maxBehindMs = now - due;
    }
    long i = job.next++;
    pub_start(p, k, job.firstSeq + i);
  }
  return wait;
}

static int job_finished(void) {
  if (!job.active) return 1;
  for (int k = job.from; k < job.to; k++)
    if (pubs[k].busy) return 0;
  return job.next >= job.count || clock_ms() >= job.stopAt;
}

static void job_start(int from, int to, long count, long firstSeq, double rate, double seconds) {
  memset(&job, 0, sizeof job);
  outcome_init(&job.out);
  job.active = 1;
  job.from = from;
  job.to = to;
  job.count = count;
  job.firstSeq = firstSeq;
  job.rate = rate;
  job.t0 = clock_ms();
  job.stopAt = seconds > 0 ? job.t0 + seconds * 1000 : INFINITY;
}

/** Ends the job once finished: its length and rate (publishAll's tail). */
static void job_close(void) {
  job.out.seconds = (clock_ms() - job.t0) / 1000;
  job.out.perSecond = job.out.published / job.out.seconds;
  job.active = 0;
}

/* ---------------------------------------------------------------- stdin commands */

static char cmdBuf[4096];
static int cmdLen, stdinEof, stdinUnpolled;
static char cmdQueue[16][32];
static int cmdHead, cmdTail;

static void read_stdin(void) {
  ssize_t n = read(0, cmdBuf + cmdLen, sizeof cmdBuf - 1 - cmdLen);
  if (n <= 0) {
    if (n < 0 && errno == EAGAIN) return;
    stdinEof = 1;
    if (!stdinUnpolled) ep(EPOLL_CTL_DEL, 0, 0, 0);
    return;
  }
  cmdLen += (int)n;
  char *nl;
  while ((nl = memchr(cmdBuf, '\n', cmdLen))) {
    char *s = cmdBuf, *e = nl;
    while (s < e && (*s == ' ' || *s == '\t' || *s == '\r')) s++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r')) e--;
    if (e > s && cmdTail - cmdHead < 16) {
      snprintf(cmdQueue[cmdTail % 16], 32, "%.*s", (int)(e - s), s);
      cmdTail++;
    }
    int used = (int)(nl - cmdBuf) + 1;
    memmove(cmdBuf, cmdBuf + used, cmdLen - used);
    cmdLen -= used;
  }
  if (cmdLen == (int)sizeof cmdBuf - 1) cmdLen = 0;
}

/* ---------------------------------------------------------------- the loop */

static void on_conn_event(long i, uint32_t ev) {
  Conn *c = &conns[i];
  if (c->state == C_CONNECTING) {
    int err = 0;
    socklen_t l = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
    if (err) handshake_failed(c, i, "connect: %s", strerror(err));
    else handshake_send(c, i);
    return;
  }
  if (c->state == C_HANDSHAKE) {
    handshake_read(c, i);
    return;
  }
  if (c->state != C_OPEN) return;
  if (ev & EPOLLOUT) conn_flush(c, i);
  if (!(ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) || !c->reading) return;
  while (1) {
    ssize_t n = read(c->fd, readBuf, READ_BYTES);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      if (errno == EINTR) continue;
      char why[64];
      snprintf(why, sizeof why, "read error: %s", errno == ECONNRESET ? "ConnectionReset" : strerror(errno));
      if (c->stopping) why[0] = 0;
      conn_ended(c, i, c->stopping ? "closed" : why);
      return;
    }
    if (n == 0) {
      conn_ended(c, i, "eof");
      return;
    }
    c->tally->now = clock_ms();
    scan(c, i, readBuf, n);
    if (n < READ_BYTES || c->state != C_OPEN) return;
  }
}

/** One round of the loop: waits at most `maxMs` (and no later than the next due publish). */
static void poll_once(double maxMs) {
  static struct epoll_event evs[1024];
  double wait = pump();
  if (wait > maxMs) wait = maxMs;
  if (wait < 0) wait = 0;
  long long ns = (long long)(wait * 1e6);
  struct timespec ts = {(time_t)(ns / 1000000000), (long)(ns % 1000000000)};
  int n = epoll_pwait2(epfd, evs, 1024, &ts, NULL);
  if (n < 0 && errno == ENOSYS) n = epoll_wait(epfd, evs, 1024, (int)ceil(wait));
  if (n < 0) {
    if (errno == EINTR) return;
    fail("epoll_wait: %s", strerror(errno));
  }
  for (int e = 0; e < n; e++) {
    uint64_t tag = evs[e].data.u64;
    uint32_t kind = tag >> 32, idx = (uint32_t)tag;
    if (kind == TAG_CONN) on_conn_event(idx, evs[e].events);
    else if (kind == TAG_PUB) {
      Pub *p = &pubs[idx];
      if (evs[e].events & EPOLLOUT && p->reqOff < p->reqLen) pub_write(p, idx);
      if (evs[e].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        pub_read(p);
        pump(); /* the next publish leaves now, not after the rest of this batch's reads */
      }
    } else read_stdin();
  }
  if (n > 0) pump();
}

/** Runs the loop for `ms`. */
static void sleep_loop(double ms) {
  double end = clock_ms() + ms;
  for (double now; (now = clock_ms()) < end;) poll_once(end - now);
}

/** waitWithStall: 0 done, 1 stalled, 2 timeout. */
typedef int (*Pred)(void);
typedef long (*Progress)(void);
static int wait_with_stall(Pred done, Progress progress, double stallMs, double timeoutMs) {
  double start = clock_ms(), lastChange = start, lastCheck = start;
  long last = progress();
  while (!done()) {
    poll_once(100 - (clock_ms() - lastCheck) > 0 ? 100 - (clock_ms() - lastCheck) : 0);
    double now = clock_ms();
    if (now - lastCheck < 100) continue;
    lastCheck = now;
    long p = progress();
    if (p != last) {
      last = p;
      lastChange = now;
    }
    if (done()) break;
    if (now - lastChange > stallMs) return 1;
    if (now - start > timeoutMs) return 2;
  }
  return 0;
}

static void wait_for(const char *word) {
  while (1) {
    while (cmdHead < cmdTail) {
      if (!strcmp(cmdQueue[cmdHead++ % 16], word)) return;
    }
    if (stdinEof) fail("stdin closed while waiting for \"%s\"", word);
    if (stdinUnpolled) read_stdin(); /* a file or /dev/null: epoll refuses those */
    poll_once(1000);
  }
}

/* ---------------------------------------------------------------- results */

static void emit(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  putchar('\n');
  fflush(stdout);
}

/** A JSON number (null for NaN and ±Infinity, as JSON.stringify writes them). */
static const char *num(double v, char *buf) {
  if (!isfinite(v)) return "null";
  if (v == 0) return "0"; /* JSON.stringify(-0) is "0" */
  if (v == floor(v) && (v < 0 ? -v : v) < 1e15) snprintf(buf, 32, "%.0f", v);
  else {
    snprintf(buf, 32, "%.15g", v); /* the shortest that reads back the same, like JS */
    if (strtod(buf, NULL) != v) snprintf(buf, 32, "%.17g", v);
  }
  return buf;
}
#define N(v) num((v), (char[32]){0})

/** Sorts floats ascending by their bits (LSD radix, 4 passes): millions of samples in ms. */
static void sort_floats(float *a, size_t n) {
  if (n < 2) return;
  uint32_t *k = (uint32_t *)a, *tmp = malloc(n * sizeof *tmp);
  if (!tmp) fail("out of memory sorting samples");
  for (size_t i = 0; i < n; i++) k[i] = (k[i] & 0x80000000u) ? ~k[i] : k[i] | 0x80000000u;
  uint32_t *src = k, *dst = tmp;
  for (int shift = 0; shift < 32; shift += 8) {
    size_t count[257] = {0};
    for (size_t i = 0; i < n; i++) count[((src[i] >> shift) & 0xff) + 1]++;
    for (int b = 0; b < 256; b++) count[b + 1] += count[b];
    for (size_t i = 0; i < n; i++) dst[count[(src[i] >> shift) & 0xff]++] = src[i];
    uint32_t *t = src;
    src = dst;
    dst = t;
  }
  /* four passes: the result is back in k */
  for (size_t i = 0; i < n; i++) k[i] = (k[i] & 0x80000000u) ? k[i] & 0x7fffffffu : ~k[i];
  free(tmp);
}

static double quantile(const float *sorted, size_t n, double q) {
  if (n == 0) return NAN;
  long rank = (long)ceil(q * n) - 1;
  if (rank < 0) rank = 0;
  if (rank > (long)n - 1) rank = (long)n - 1;
  return sorted[rank];
}

static double round2(double v) { return round(v * 100) / 100; }

static Conn **fastList;
static long fastCount;
static Conn **slowList;
static long slowCount;

static void emit_result(const char *outcome, double start, double cpuStart, Outcome *pub) {
  double cpu = cpu_seconds() - cpuStart;
  double wall = (clock_ms() - start) / 1000;
  emit("{\"event\":\"ended\"}");
  Tally *t = &fast;
  double seconds = (t->lastDeliveryAt - start) / 1000;
  char timeline[2048];
  int tl = 0;
  size_t count = t->latCount;
  /* Each tenth sorted in place, then the whole: the same numbers as slicing and sorting. */
  for (int i = 0; i < 10; i++) {
    size_t a = (size_t)floor((double)i * count / 10), b = (size_t)floor((double)(i + 1) * count / 10);
    sort_floats(t->lat + a, b - a);
    double p50 = quantile(t->lat + a, b - a, 0.5), mx = b > a ? t->lat[b - 1] : NAN;
    tl += snprintf(timeline + tl, sizeof timeline - tl, "%s[%s,%s]", i ? "," : "", N(round2(p50)),
                   N(round2(mx)));
  }
  sort_floats(t->lat, count);
  long closed = 0;
  for (long i = 0; i < fastCount; i++)
    if (fastList[i]->closeCode != 0 || fastList[i]->ended[0]) closed++;
  char publish[1024];
  if (pub) {
    char ff[600];
    json_escape(pub->firstFailure, ff, sizeof ff);
    snprintf(publish, sizeof publish,
             "{\"published\":%ld,\"failures\":%ld,\"firstFailure\":%s,\"deliveredMin\":%s,"
             "\"deliveredMax\":%s,\"lastId\":%s,\"seconds\":%s,\"perSecond\":%s,\"maxBehindMs\":%s}",
             pub->published, pub->failures, ff, N(pub->deliveredMin), N(pub->deliveredMax),
             N(pub->lastId), N(pub->seconds), N(pub->perSecond), N(pub->maxBehindMs));
  } else strcpy(publish, "null");
  char oc[64];
  json_escape(outcome, oc, sizeof oc);
  emit("{\"event\":\"result\",\"outcome\":%s,\"expected\":%s,\"deliveries\":%ld,\"seconds\":%s,"
       "\"deliveriesPerSec\":%s,\"latency\":{\"count\":%zu,\"p50\":%s,\"p99\":%s,\"max\":%s},"
       "\"latencyTimeline\":[%s],\"sendReorders\":%ld,\"errors\":{\"gaps\":%ld,\"duplicates\":%ld,"
       "\"malformed\":%ld,\"missingTs\":%ld,\"unexpectedFrames\":%ld,\"incompleteClients\":%ld,"
       "\"closedClients\":%ld},\"publish\":%s,\"clientCpuSeconds\":%s,\"clientCpuPercent\":%s}",
       oc, N(fastCount * t->target), t->deliveries, N(seconds),
       N(seconds > 0 ? t->deliveries / seconds : 0), count, N(quantile(t->lat, count, 0.5)),
       N(quantile(t->lat, count, 0.99)), N(count ? t->lat[count - 1] : NAN), timeline,
       t->sendReorders, t->gaps, t->duplicates, t->malformed, t->missingTs, t->unexpectedFrames,
       fastCount - t->completed, closed, publish, N(cpu), N(100 * cpu / wall));
}

static const char *OUTCOMES[] = {"done", "stalled", "timeout"};

static long sum_last_id(void) {
  long s = 0;
  for (long i = 0; i < fastCount; i++) s += fastList[i]->lastId;
  return s;
}
static long zero(void) { return 0; }
static long fast_deliveries(void) { return fast.deliveries; }
static long warmTarget;
static int all_warm(void) {
  for (long i = 0; i < fastCount; i++)
    if (fastList[i]->lastId < warmTarget) return 0;
  return 1;
}
static int fast_done(void) { return tally_done(&fast); }
static int connects_done(void) { return connectedCount + failedCount == total; }

static void echo_phase(void) {
  long warm = cfg.echoWarmup;
  for (long i = 0; i < fastCount; i++) {
    Conn *c = fastList[i];
    c->limit = warm;
    echo_send(c, c - conns, 1);
  }
  warmTarget = warm;
  int w = wait_with_stall(all_warm, sum_last_id, cfg.stallMs, cfg.timeoutMs);
  if (w) fail("the echo warm-up %s", OUTCOMES[w]);
  double cpu0 = cpu_seconds(), start = clock_ms();
  fast.lastDeliveryAt = start;
  for (long i = 0; i < fastCount; i++) {
    Conn *c = fastList[i];
    c->base = warm;
    c->expected = warm + 1;
    c->limit = warm + cfg.messages;
    echo_send(c, c - conns, warm + 1);
  }
  int o = wait_with_stall(fast_done, fast_deliveries, cfg.stallMs, cfg.timeoutMs);
  emit_result(OUTCOMES[o], start, cpu0, NULL);
}

/** publishAll to completion (the warm-up publishes, one at a time). */
static Outcome publish_now(int from, int to, long count, long firstSeq) {
  job_start(from, to, count, firstSeq, 0, 0);
  while (!job_finished()) poll_once(1000);
  job_close();
  return job.out;
}

static void open_publishers(void) {
  pubs = calloc(cfg.inflight, sizeof *pubs);
  char enc[1600];
  uri_encode(cfg.channel, enc, sizeof enc);
  snprintf(publishHead, sizeof publishHead,
           "POST /publish?channel=%s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n",
           enc, cfg.httpPort);
  for (int k = 0; k < cfg.inflight; k++) {
    Pub *p = &pubs[k];
    int immediate;
    p->fd = tcp_connect(cfg.httpPort, &immediate);
    if (p->fd < 0) fail("publisher connect: %s", strerror(-p->fd));
    /* Loopback: wait for the connection with a blocking poll on this one socket. */
    ep(EPOLL_CTL_ADD, p->fd, EPOLLIN, MKTAG(TAG_PUB, k));
    if (!immediate) {
      int sfd = epoll_create1(EPOLL_CLOEXEC);
      struct epoll_event e = {.events = EPOLLOUT}, got;
      epoll_ctl(sfd, EPOLL_CTL_ADD, p->fd, &e);
      epoll_wait(sfd, &got, 1, 5000);
      close(sfd);
      int err = 0;
      socklen_t l = sizeof err;
      getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &l);
      if (err) fail("publisher connect: %s", strerror(err));
    }
    p->req = malloc(strlen(publishHead) + 64 + cfg.size + 128);
    p->inCap = 4096;
    p->in = malloc(p->inCap);
  }
}

static int slow_settled(void) {
  for (long i = 0; i < slowCount; i++) {
    Conn *c = slowList[i];
    if (!(c->received >= cfg.messages || c->closeCode != 0 || c->ended[0])) return 0;
  }
  return 1;
}

static void fanout_phase(void) {
  open_publishers();
  /* Warm-up: publish until every subscriber is registered, then once through each other
     connection (a fresh connection's first request is served later than a warm one's). */
  Outcome warm = publish_now(0, 1, 1, 0);
  for (int i = 0; warm.deliveredMax < connectedCount && warm.failures == 0 && i < 50; i++) {
    sleep_loop(100);
    warm = publish_now(0, 1, 1, 0);
  }
  for (int k = 1; k < cfg.inflight && warm.failures == 0; k++) {
    double last = warm.lastId;
    warm = publish_now(k, k + 1, 1, 0);
    if (last > warm.lastId) warm.lastId = last;
  }
  if (warm.failures > 0) fail("warm-up publish failed: %s", warm.firstFailure);
  long base = (long)warm.lastId;
  warmTarget = base;
  if (wait_with_stall(all_warm, zero, cfg.stallMs, cfg.stallMs))
    fail("the warm-up message did not reach every client");
  for (long i = 0; i < total; i++) {
    conns[i].base = base;
    conns[i].expected = base + 1;
  }

  double cpu1 = cpu_seconds(), start = clock_ms();
  fast.lastDeliveryAt = start;
  job_start(0, cfg.inflight, cfg.messages, 1, cfg.rate, cfg.seconds);
  int targetSet = !isinf(fast.target);
  double waitStart = clock_ms(), lastChange = waitStart, lastCheck = waitStart;
  long lastProgress = fast.deliveries;
  int outcome = 0;
  /* waitWithStall over (all delivered, or publishing done when there are no fast clients),
     setting a timed phase's target once its publishing is done. */
  while (1) {
    if (job.active && job_finished()) {
      job_close();
      if (!targetSet) {
        targetSet = 1;
        fast.target = job.out.published;
        for (long i = 0; i < fastCount; i++) {
          Conn *c = fastList[i];
          if (c->received >= fast.target && c->closeCode == 0 && !c->ended[0]) fast.completed++;
        }
      }
    }
    if (fast.clients == 0 ? !job.active : tally_done(&fast)) break;
    poll_once(100);
    double now = clock_ms();
    if (now - lastCheck < 100) continue;
    lastCheck = now;
    if (fast.deliveries != lastProgress) {
      lastProgress = fast.deliveries;
      lastChange = now;
    }
    if (now - lastChange > cfg.stallMs) {
      outcome = 1;
      break;
    }
    if (now - waitStart > cfg.timeoutMs) {
      outcome = 2;
      break;
    }
  }
  /* within(publishing, 1000, null) */
  double until = clock_ms() + 1000;
  while (job.active && !job_finished() && clock_ms() < until) poll_once(until - clock_ms());
  Outcome *published = NULL;
  if (job.active && job_finished()) job_close();
  if (!job.active) published = &job.out;
  emit_result(OUTCOMES[outcome], start, cpu1, published);
  for (int k = 0; k < cfg.inflight; k++) {
    if (pubs[k].fd < 0) continue;
    ep(EPOLL_CTL_DEL, pubs[k].fd, 0, 0);
    close(pubs[k].fd);
  }
  job.active = 0;

  if (slowCount > 0) {
    wait_for("drain");
    for (long i = 0; i < slowCount; i++) {
      Conn *c = slowList[i];
      if (c->state != C_OPEN) continue;
      c->reading = 1;
      conn_update(c, c - conns);
    }
    double end = clock_ms() + cfg.drainMs;
    while (!slow_settled() && clock_ms() < end) poll_once(50);
    /* closes: {"CODE REASON" | ended | "open": count} */
    char keysSeen[64][160];
    long counts[64];
    int nk = 0;
    double rmin = INFINITY, rmax = -INFINITY;
    for (long i = 0; i < slowCount; i++) {
      Conn *c = slowList[i];
      char key[160];
      if (c->closeCode) snprintf(key, sizeof key, "%d %s", c->closeCode, c->closeReason);
      else snprintf(key, sizeof key, "%s", c->ended[0] ? c->ended : "open");
      int k = 0;
      while (k < nk && strcmp(keysSeen[k], key)) k++;
      if (k == nk && nk < 64) {
        strcpy(keysSeen[nk], key);
        counts[nk++] = 0;
      }
      if (k < nk) counts[k]++;
      if (c->received < rmin) rmin = c->received;
      if (c->received > rmax) rmax = c->received;
    }
    char closes[16384];
    int cl = 0;
    for (int k = 0; k < nk; k++) {
      char ek[400];
      json_escape(keysSeen[k], ek, sizeof ek);
      cl += snprintf(closes + cl, sizeof closes - cl, "%s%s:%ld", k ? "," : "", ek, counts[k]);
    }
    closes[cl] = 0;
    emit("{\"event\":\"slow\",\"clients\":%ld,\"closes\":{%s},\"receivedMin\":%s,"
         "\"receivedMax\":%s,\"gaps\":%ld,\"duplicates\":%ld}",
         slowCount, closes, N(rmin), N(rmax), slowT.gaps, slowT.duplicates);
  }
}

static int all_ended(void) {
  for (long i = 0; i < total; i++)
    if (conns[i].state == C_OPEN) return 0;
  return 1;
}

/** Closes cleanly: a close frame, then read until the server closes TCP (at most 2 s). */
static void close_all(void) {
  for (long i = 0; i < total; i++) {
    Conn *c = &conns[i];
    if (c->state != C_OPEN) continue;
    c->stopping = 1;
    c->reading = 1;
    conn_update(c, i);
    if (!c->closeSent && !c->ended[0]) {
      c->closeSent = 1;
      send_close(c, i, 1000);
    }
  }
  double end = clock_ms() + 2000;
  while (!all_ended() && clock_ms() < end) poll_once(end - clock_ms());
  for (long i = 0; i < total; i++)
    if (conns[i].fd >= 0) close(conns[i].fd);
}

/* ---------------------------------------------------------------- main */

static void make_keys(void) {
  keys = malloc(total * sizeof *keys);
  for (long i = 0; i < total; i++) {
    uint8_t raw[16], digest[20];
    if (getrandom(raw, 16, 0) != 16) fail("getrandom failed");
    base64(raw, 16, keys[i].key);
    char buf[64];
    memcpy(buf, keys[i].key, 24);
    memcpy(buf + 24, GUID, 36);
    sha1((uint8_t *)buf, 60, digest);
    base64(digest, 20, keys[i].accept);
  }
}

int main(int argc, char **argv) {
  /* A write to a socket the server closed must be an error return, not the end of the run. */
  signal(SIGPIPE, SIG_IGN);
  parse_config(argc > 1 ? argv[1] : "{}");
  if (getrandom(&rng_state, sizeof rng_state, 0) != sizeof rng_state || rng_state == 0)
    rng_state = 88172645463325252ULL;
  total = cfg.clients + cfg.slow;
  if (cfg.echo) snprintf(target, sizeof target, "/echo");
  else if (cfg.hasPath) snprintf(target, sizeof target, "%s", cfg.path);
  else {
    char enc[1600];
    uri_encode(cfg.channel, enc, sizeof enc);
    snprintf(target, sizeof target, "/?channels=%s&demo=false", enc);
  }
  make_keys();
  /* A timed phase learns its target (the messages published) when publishing ends. */
  fast.clients = cfg.clients;
  fast.target = cfg.seconds > 0 && !cfg.echo ? INFINITY : (double)cfg.messages;
  slowT.clients = cfg.slow;
  slowT.target = (double)cfg.messages;
  if (!cfg.idle) {
    fast.latCap = (size_t)cfg.clients * (size_t)(cfg.messages > 0 ? cfg.messages : 1);
    if (fast.latCap < 1024) fast.latCap = 1024;
    fast.lat = malloc(fast.latCap * sizeof(float));
    if (!fast.lat) fail("out of memory for %zu latency samples", fast.latCap);
    memset(fast.lat, 0, fast.latCap * sizeof(float)); /* fault the pages in before the clock */
  }
  conns = calloc(total, sizeof *conns);
  fastList = malloc((total + 1) * sizeof *fastList);
  slowList = malloc((total + 1) * sizeof *slowList);
  readBuf = malloc(READ_BYTES);
  uint8_t echoMask[4];
  for (long i = 0; i < total; i++) {
    Conn *c = &conns[i];
    c->fd = -1;
    c->key = (int)i;
    c->tally = i < cfg.clients ? &fast : &slowT;
    c->base = INFINITY;
    c->maxSeq = -1;
    c->idAt = -1;
    uint32_t r = rng32();
    memcpy(echoMask, &r, 4);
    memcpy(c->mask, echoMask, 4); /* one masking key per connection (echo_client.ts) */
  }
  epfd = epoll_create1(EPOLL_CLOEXEC);
  fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
  struct epoll_event se = {.events = EPOLLIN, .data.u64 = MKTAG(TAG_STDIN, 0)};
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, 0, &se) < 0) stdinUnpolled = 1; /* read it directly */

  /* Connect phase: the server's handshake rate. */
  double cpu0 = cpu_seconds(), t0 = clock_ms();
  start_connects();
  while (!connects_done()) {
    poll_once(1000);
    start_connects();
  }
  double connectSeconds = (clock_ms() - t0) / 1000, connectCpu = cpu_seconds() - cpu0;
  for (long i = 0; i < total; i++) {
    Conn *c = &conns[i];
    if (c->state == C_DEAD && c->ended[0] == 'x') continue; /* failed handshake: no client */
    if (c->tally == &fast) fastList[fastCount++] = c;
    else slowList[slowCount++] = c;
  }
  char ff[1100];
  json_escape(firstFailure, ff, sizeof ff);
  emit("{\"event\":\"connected\",\"connected\":%ld,\"failures\":%ld%s%s,\"seconds\":%s,"
       "\"handshakesPerSec\":%s,\"clientCpuPercent\":%s}",
       connectedCount, failedCount, failedCount ? ",\"firstFailure\":" : "", failedCount ? ff : "",
       N(connectSeconds), N(connectedCount / connectSeconds), N(100 * connectCpu / connectSeconds));

  if (cfg.echo) {
    wait_for("go");
    echo_phase();
  } else if (!cfg.idle) {
    wait_for("go");
    fanout_phase();
  }
  wait_for("close");
  close_all();
  emit("{\"event\":\"closed\"}");
  return 0;
}
