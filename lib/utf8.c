/* Incremental UTF-8 validation (RFC 3629): no overlongs, no surrogates,
 * nothing above U+10FFFF.  A small state machine; ASCII runs are skipped
 * eight bytes at a time. */
#include "internal.h"

#include <string.h>

/* States: 0 accept, 1 reject, then "bytes still needed / constraint on the
 * next byte":
 *   2: 1 more, 80..BF          3: 2 more, 80..BF
 *   4: 2 more, next A0..BF (E0: no overlong)
 *   5: 2 more, next 80..9F (ED: no surrogates)
 *   6: 3 more, next 90..BF (F0: no overlong)
 *   7: 3 more, 80..BF          8: 3 more, next 80..8F (F4: <= U+10FFFF) */

static uint32_t lead(uint8_t b) {
  if (b < 0x80)
    return 0;
  if (b < 0xC2)
    return 1;
  if (b < 0xE0)
    return 2;
  if (b == 0xE0)
    return 4;
  if (b == 0xED)
    return 5;
  if (b < 0xF0)
    return 3;
  if (b == 0xF0)
    return 6;
  if (b < 0xF4)
    return 7;
  if (b == 0xF4)
    return 8;
  return 1;
}

static uint32_t cont(uint32_t st, uint8_t b) {
  if ((b & 0xC0) != 0x80)
    return 1;
  switch (st) {
  case 2:
    return 0;
  case 3:
    return 2;
  case 4:
    return b >= 0xA0 ? 2 : 1;
  case 5:
    return b <= 0x9F ? 2 : 1;
  case 6:
    return b >= 0x90 ? 3 : 1;
  case 7:
    return 3;
  case 8:
    return b <= 0x8F ? 3 : 1;
  default:
    return 1;
  }
}

uint32_t wsm_utf8_feed(uint32_t st, const uint8_t *p, size_t n) {
  size_t i = 0;
  while (i < n) {
    if (st == WSM_UTF8_ACCEPT) {
      while (i + 8 <= n) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        if (w & 0x8080808080808080ull)
          break;
        i += 8;
      }
      while (i < n && p[i] < 0x80)
        i++;
      if (i == n)
        break;
      st = lead(p[i++]);
    } else if (st == WSM_UTF8_REJECT) {
      return st;
    } else {
      st = cont(st, p[i++]);
    }
  }
  return st;
}

size_t wsm_utf8_cut(const char *s, size_t n, size_t max) {
  if (n <= max)
    return n;
  size_t k = max;
  while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80)
    k--;
  return k;
}

void wsm_utf8_scrub(char *s) {
  uint8_t *p = (uint8_t *)s;
  size_t i = 0;
  while (p[i]) {
    if (p[i] < 0x80) {
      i++;
      continue;
    }
    uint32_t st = lead(p[i]);
    size_t k = 1;
    while (st > WSM_UTF8_REJECT && p[i + k])
      st = cont(st, p[i + k++]);
    if (st == WSM_UTF8_ACCEPT)
      i += k; /* a whole character */
    else
      p[i++] = '?';
  }
}

int wsmsg_utf8_valid(const void *data, size_t len) {
  if (!data && len)
    return 0;
  return wsm_utf8_feed(WSM_UTF8_ACCEPT, data, len) == WSM_UTF8_ACCEPT;
}
