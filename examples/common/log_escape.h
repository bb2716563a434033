/* log_escape — make peer-controlled text safe for a log line.
 *
 * Request paths and queries, close reasons, and jansson's error text (which
 * quotes the offending input) come from the peer.  Written raw to a
 * terminal, bytes such as ESC start control sequences (retitle the window,
 * rewrite earlier lines, ...) and CR or LF forge log lines.  Every example
 * writes its log lines through log_escape: printable ASCII stays, a
 * backslash becomes "\\" and every other byte "\xNN" (UTF-8 included, so
 * a log stays plain ASCII). */
#ifndef WSMSG_EXAMPLE_LOG_ESCAPE_H
#define WSMSG_EXAMPLE_LOG_ESCAPE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

/* Write the `n` bytes at `src` escaped into `dst` (`cap` bytes, cap >= 4),
 * always NUL-terminated; if they do not fit, the line ends with "...".
 * Returns dst. */
static inline char *log_escape(char *dst, size_t cap, const char *src,
                               size_t n) {
  static const char hex[] = "0123456789abcdef";
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)src[i];
    size_t need = ch == '\\' ? 2 : (ch >= 0x20 && ch < 0x7f) ? 1 : 4;
    if (k + need + 4 > cap) { /* room for "..." and the NUL */
      dst[k++] = '.';
      dst[k++] = '.';
      dst[k++] = '.';
      break;
    }
    if (ch == '\\') {
      dst[k++] = '\\';
      dst[k++] = '\\';
    } else if (need == 1) {
      dst[k++] = (char)ch;
    } else {
      dst[k++] = '\\';
      dst[k++] = 'x';
      dst[k++] = hex[ch >> 4];
      dst[k++] = hex[ch & 15];
    }
  }
  dst[k] = '\0';
  return dst;
}

/* printf `fmt` (at most 1023 bytes of it) and escape the result into `dst`
 * (`cap` bytes) as log_escape does.  Returns dst. */
static inline char *log_vformat(char *dst, size_t cap, const char *fmt,
                                va_list ap) {
  char raw[1024];
  int n = vsnprintf(raw, sizeof(raw), fmt, ap);
  size_t len = n < 0                      ? 0
               : (size_t)n >= sizeof(raw) ? sizeof(raw) - 1
                                          : (size_t)n;
  return log_escape(dst, cap, raw, len);
}

#endif
