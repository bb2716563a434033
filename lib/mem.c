/* Allocator hooks (wsmsg_mem): every allocation of lib/ goes through
 * these (tests/unit/test_alloc.c checks it). */
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
