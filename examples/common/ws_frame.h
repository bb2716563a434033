/* Masked client frames written by hand, for the tools that must speak
 * WebSocket without wsmsg (examples/wsbench.c, tests/soak/soak.c,
 * tests/bench/micro.c): the RFC 6455 section 5.2 header and the masking.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef WSMSG_EXAMPLE_WS_FRAME_H
#define WSMSG_EXAMPLE_WS_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Write the header of a masked frame (first byte b0 = FIN/RSV/opcode, a
 * payload of len bytes, masking key `key`) to out, which has room for 14
 * bytes.  Returns the header's length; the payload goes right after it. */
static inline size_t ws_frame_header(uint8_t *out, uint8_t b0, uint64_t len,
                                     const uint8_t key[4]) {
  size_t h = 0;
  out[h++] = b0;
  if (len < 126) {
    out[h++] = (uint8_t)(0x80 | len);
  } else if (len < 65536) {
    out[h++] = 0x80 | 126;
    out[h++] = (uint8_t)(len >> 8);
    out[h++] = (uint8_t)len;
  } else {
    out[h++] = 0x80 | 127;
    for (int i = 7; i >= 0; i--)
      out[h++] = (uint8_t)(len >> (8 * i));
  }
  memcpy(out + h, key, 4);
  return h + 4;
}

/* Mask (or unmask) n payload bytes in place, from the payload's start. */
static inline void ws_frame_mask(uint8_t *p, size_t n, const uint8_t key[4]) {
  uint64_t k8;
  const uint8_t kk[8] = {key[0], key[1], key[2], key[3],
                         key[0], key[1], key[2], key[3]};
  memcpy(&k8, kk, 8);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    memcpy(&w, p + i, 8);
    w ^= k8;
    memcpy(p + i, &w, 8);
  }
  for (; i < n; i++)
    p[i] ^= key[i & 3];
}

#endif
