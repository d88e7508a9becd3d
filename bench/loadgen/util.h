/* Small helpers of loadgen.c: errors, a tiny JSON reader for the flat config, escaping,
   base64, encodeURIComponent, and the few math functions it needs without libm. */
#ifndef LOADGEN_UTIL_H
#define LOADGEN_UTIL_H
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- math without -lm (the runner builds with plain `cc -O2`) */
static double m_floor(double x) {
  if (!(x > -9e18 && x < 9e18)) return x; /* NaN, huge, infinite */
  double t = (double)(long long)x;
  return t > x ? t - 1 : t;
}
static double m_ceil(double x) {
  if (!(x > -9e18 && x < 9e18)) return x;
  double t = (double)(long long)x;
  return t < x ? t + 1 : t;
}
/** Math.round: halves go up, also below zero. */
static double m_round(double x) { return m_floor(x + 0.5); }
#define floor m_floor
#define ceil m_ceil
#define round m_round

/** Writes `s` as a JSON string literal (quotes included) into out. */
static void json_escape(const char *s, char *out, size_t cap) {
  size_t o = 0;
  if (cap < 3) return;
  out[o++] = '"';
  for (; *s && o + 8 < cap; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\') out[o++] = '\\', out[o++] = ch;
    else if (ch == '\n') out[o++] = '\\', out[o++] = 'n';
    else if (ch == '\r') out[o++] = '\\', out[o++] = 'r';
    else if (ch < 0x20) o += snprintf(out + o, cap - o, "\\u%04x", ch);
    else out[o++] = ch;
  }
  out[o++] = '"';
  out[o] = 0;
}

/** Emits the `error` event and exits 1 (load_client.ts's catch at the top). */
__attribute__((noreturn, format(printf, 1, 2))) static void fail(const char *fmt, ...) {
  char msg[2048], esc[4200];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  json_escape(msg, esc, sizeof esc);
  printf("{\"event\":\"error\",\"message\":%s}\n", esc);
  fflush(stdout);
  exit(1);
}

/* ---- JSON reader for the config: one flat object of numbers, booleans, strings, arrays */
typedef struct {
  const char *p;
} JsonCursor;

static void json_ws(JsonCursor *c) {
  while (*c->p == ' ' || *c->p == '\n' || *c->p == '\r' || *c->p == '\t') c->p++;
}
static char json_peek(JsonCursor *c) {
  json_ws(c);
  return *c->p;
}
static int json_expect(JsonCursor *c, char ch) {
  json_ws(c);
  if (*c->p != ch) return 0;
  c->p++;
  return 1;
}
/** A string into out (UTF-8; \uXXXX escapes as UTF-8, surrogate pairs joined). */
static int json_string(JsonCursor *c, char *out, size_t cap) {
  if (!json_expect(c, '"')) return 0;
  size_t o = 0;
  while (*c->p && *c->p != '"') {
    unsigned cp = (unsigned char)*c->p++;
    if (cp == '\\') {
      char e = *c->p++;
      if (e == 'n') cp = '\n';
      else if (e == 't') cp = '\t';
      else if (e == 'r') cp = '\r';
      else if (e == 'b') cp = '\b';
      else if (e == 'f') cp = '\f';
      else if (e == 'u') {
        cp = (unsigned)strtoul((char[5]){c->p[0], c->p[1], c->p[2], c->p[3], 0}, NULL, 16);
        c->p += 4;
        if (cp >= 0xD800 && cp < 0xDC00 && c->p[0] == '\\' && c->p[1] == 'u') {
          unsigned lo =
              (unsigned)strtoul((char[5]){c->p[2], c->p[3], c->p[4], c->p[5], 0}, NULL, 16);
          c->p += 6;
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        }
        char u[4];
        int n = 0;
        if (cp < 0x80) u[n++] = (char)cp;
        else if (cp < 0x800) u[n++] = 0xC0 | (cp >> 6), u[n++] = 0x80 | (cp & 0x3F);
        else if (cp < 0x10000)
          u[n++] = 0xE0 | (cp >> 12), u[n++] = 0x80 | ((cp >> 6) & 0x3F), u[n++] = 0x80 | (cp & 0x3F);
        else
          u[n++] = 0xF0 | (cp >> 18), u[n++] = 0x80 | ((cp >> 12) & 0x3F),
          u[n++] = 0x80 | ((cp >> 6) & 0x3F), u[n++] = 0x80 | (cp & 0x3F);
        for (int k = 0; k < n; k++)
          if (o + 1 < cap) out[o++] = u[k];
        continue;
      } else cp = (unsigned char)e;
    }
    if (o + 1 < cap) out[o++] = (char)cp;
    else return 0;
  }
  out[o] = 0;
  return json_expect(c, '"');
}
static double json_number(JsonCursor *c) {
  json_ws(c);
  char *end;
  double v = strtod(c->p, &end);
  if (end == c->p) fail("a number was expected in the config at: %.40s", c->p);
  c->p = end;
  return v;
}
static int json_bool(JsonCursor *c) {
  json_ws(c);
  if (!strncmp(c->p, "true", 4)) return c->p += 4, 1;
  if (!strncmp(c->p, "false", 5)) return c->p += 5, 0;
  if (!strncmp(c->p, "null", 4)) return c->p += 4, 0;
  fail("a boolean was expected in the config at: %.40s", c->p);
}
/** Skips any value (for fields this client does not know). */
static void json_skip(JsonCursor *c) {
  char ch = json_peek(c);
  if (ch == '"') {
    char sink[8192];
    if (!json_string(c, sink, sizeof sink)) fail("bad string in the config");
  } else if (ch == '{' || ch == '[') {
    char close = ch == '{' ? '}' : ']';
    c->p++;
    if (json_peek(c) == close) {
      c->p++;
      return;
    }
    do {
      if (close == '}') {
        char sink[256];
        if (!json_string(c, sink, sizeof sink) || !json_expect(c, ':')) fail("bad config JSON");
      }
      json_skip(c);
    } while (json_expect(c, ','));
    if (!json_expect(c, close)) fail("bad config JSON");
  } else if (ch == 't' || ch == 'f' || ch == 'n') json_bool(c);
  else json_number(c);
}

/** encodeURIComponent of a UTF-8 string. */
static void uri_encode(const char *s, char *out, size_t cap) {
  size_t o = 0;
  for (; *s && o + 4 < cap; s++) {
    unsigned char ch = (unsigned char)*s;
    if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
        strchr("-_.!~*'()", ch))
      out[o++] = ch;
    else o += snprintf(out + o, cap - o, "%%%02X", ch);
  }
  out[o] = 0;
}

/** Standard base64 with padding; out gets 4 * ceil(n / 3) chars and a NUL. */
static void base64(const uint8_t *in, size_t n, char *out) {
  static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t o = 0;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) |
                 (i + 2 < n ? in[i + 2] : 0);
    out[o++] = A[v >> 18 & 63];
    out[o++] = A[v >> 12 & 63];
    out[o++] = i + 1 < n ? A[v >> 6 & 63] : '=';
    out[o++] = i + 2 < n ? A[v & 63] : '=';
  }
  out[o] = 0;
}
#endif
