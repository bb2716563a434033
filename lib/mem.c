/* Allocator hooks (wsmsg_mem) and growable buffers. */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *libc_malloc(size_t n, void *u) {
  (void)u;
  return malloc(n);
}
static void libc_free(void *p, void *u) {
  (void)u;
  free(p);
}
static void *libc_realloc(void *p, size_t n, void *u) {
  (void)u;
  return realloc(p, n);
}

void wsm_mem_init(wsmsg_mem *out, const wsmsg_mem *in) {
  if (in && in->malloc && in->free) {
    *out = *in;
  } else {
    out->user = NULL;
    out->malloc = libc_malloc;
    out->free = libc_free;
    out->realloc = libc_realloc;
  }
}

void *wsm_malloc(const wsmsg_mem *m, size_t n) {
  return m->malloc(n ? n : 1, m->user);
}

void *wsm_calloc(const wsmsg_mem *m, size_t n) {
  void *p = wsm_malloc(m, n);
  if (p)
    memset(p, 0, n);
  return p;
}

void wsm_free(const wsmsg_mem *m, void *p) {
  if (p)
    m->free(p, m->user);
}

void *wsm_realloc(const wsmsg_mem *m, void *p, size_t old, size_t n) {
  if (!p)
    return wsm_malloc(m, n);
  if (m->realloc)
    return m->realloc(p, n ? n : 1, m->user);
  void *q = wsm_malloc(m, n);
  if (!q)
    return NULL;
  memcpy(q, p, old < n ? old : n);
  wsm_free(m, p);
  return q;
}

char *wsm_strndup(const wsmsg_mem *m, const char *s, size_t n) {
  char *d = wsm_malloc(m, n + 1);
  if (d) {
    memcpy(d, s, n);
    d[n] = '\0';
  }
  return d;
}

char *wsm_strdup(const wsmsg_mem *m, const char *s) {
  return wsm_strndup(m, s, strlen(s));
}

char *wsm_vasprintf(const wsmsg_mem *m, const char *fmt, va_list ap) {
  char small[256]; /* most messages: one formatting pass */
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(small, sizeof(small), fmt, ap2);
  va_end(ap2);
  if (n < 0)
    return NULL;
  char *s = wsm_malloc(m, (size_t)n + 1);
  if (!s)
    return NULL;
  if ((size_t)n < sizeof(small))
    memcpy(s, small, (size_t)n + 1);
  else
    vsnprintf(s, (size_t)n + 1, fmt, ap);
  return s;
}

char *wsm_asprintf(const wsmsg_mem *m, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *s = wsm_vasprintf(m, fmt, ap);
  va_end(ap);
  return s;
}

/* ---- wsm_buf ---- */

int wsm_buf_reserve(wsm_buf *b, const wsmsg_mem *m, size_t extra) {
  if (b->cap - b->len >= extra)
    return 0;
  if (b->off > 0) { /* reclaim consumed space first */
    memmove(b->p, b->p + b->off, b->len - b->off);
    b->len -= b->off;
    b->off = 0;
    if (b->cap - b->len >= extra)
      return 0;
  }
  if (extra > SIZE_MAX / 2 - b->len)
    return WSMSG_ERR_NOMEM;
  size_t need = b->len + extra;
  size_t ncap = b->cap ? b->cap : 256;
  while (ncap < need)
    ncap *= 2;
  uint8_t *p = wsm_realloc(m, b->p, b->cap, ncap);
  if (!p)
    return WSMSG_ERR_NOMEM;
  b->p = p;
  b->cap = ncap;
  return 0;
}

int wsm_buf_append(wsm_buf *b, const wsmsg_mem *m, const void *d, size_t n) {
  if (n == 0)
    return 0;
  int r = wsm_buf_reserve(b, m, n);
  if (r)
    return r;
  memcpy(b->p + b->len, d, n);
  b->len += n;
  return 0;
}

void wsm_buf_compact(wsm_buf *b, const wsmsg_mem *m, size_t keep) {
  if (b->off == b->len) {
    b->off = b->len = 0;
    if (b->cap > keep) {
      wsm_free(m, b->p);
      b->p = NULL;
      b->cap = 0;
    }
  }
}

void wsm_buf_free(wsm_buf *b, const wsmsg_mem *m) {
  wsm_free(m, b->p);
  memset(b, 0, sizeof(*b));
}
