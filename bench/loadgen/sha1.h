/* SHA-1 (FIPS 180-4), small: only for checking Sec-WebSocket-Accept. Part of loadgen.c. */
#ifndef LOADGEN_SHA1_H
#define LOADGEN_SHA1_H
#include <stddef.h>
#include <stdint.h>
#include <string.h>

static uint32_t sha1_rol(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

static void sha1_block(uint32_t h[5], const uint8_t *p) {
  uint32_t w[80];
  for (int i = 0; i < 16; i++)
    w[i] = ((uint32_t)p[4 * i] << 24) | ((uint32_t)p[4 * i + 1] << 16) |
           ((uint32_t)p[4 * i + 2] << 8) | p[4 * i + 3];
  for (int i = 16; i < 80; i++) w[i] = sha1_rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
  uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
  for (int i = 0; i < 80; i++) {
    uint32_t f, k;
    if (i < 20) f = (b & c) | (~b & d), k = 0x5A827999;
    else if (i < 40) f = b ^ c ^ d, k = 0x6ED9EBA1;
    else if (i < 60) f = (b & c) | (b & d) | (c & d), k = 0x8F1BBCDC;
    else f = b ^ c ^ d, k = 0xCA62C1D6;
    uint32_t t = sha1_rol(a, 5) + f + e + k + w[i];
    e = d, d = c, c = sha1_rol(b, 30), b = a, a = t;
  }
  h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e;
}

/** out = SHA-1(data[0..n)). */
static void sha1(const uint8_t *data, size_t n, uint8_t out[20]) {
  uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
  size_t i = 0;
  for (; i + 64 <= n; i += 64) sha1_block(h, data + i);
  uint8_t last[128] = {0};
  size_t rest = n - i;
  memcpy(last, data + i, rest);
  last[rest] = 0x80;
  size_t blocks = rest + 9 > 64 ? 2 : 1;
  uint64_t bits = (uint64_t)n * 8;
  for (int k = 0; k < 8; k++) last[blocks * 64 - 1 - k] = (uint8_t)(bits >> (8 * k));
  for (size_t b = 0; b < blocks; b++) sha1_block(h, last + 64 * b);
  for (int k = 0; k < 5; k++) {
    out[4 * k] = h[k] >> 24, out[4 * k + 1] = h[k] >> 16;
    out[4 * k + 2] = h[k] >> 8, out[4 * k + 3] = (uint8_t)h[k];
  }
}
#endif
