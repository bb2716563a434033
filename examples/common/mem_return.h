/* mem_return — give freed heap memory back to the OS after a spike.
 *
 * glibc's malloc keeps what a burst of big messages freed: its mmap
 * threshold rises once a large mmapped block is freed (so later big
 * buffers come from the heap), and free pages inside the heap stay mapped
 * until something asks for them back.  After a 1,000-connection wave of
 * 1 MiB messages, echo_server kept ~1 GB of RSS with nothing live in it.
 * malloc_trim(0) returns every free page (the heap's top and, since glibc
 * 2.8, whole free pages inside it).  It walks the free lists, so the loops
 * call it at quiet moments only: when connections have closed since the
 * last trim and none closed in the last QUIET_MS (or, on a server where
 * connections never stop closing, MAX_DELAY_MS after the first of them),
 * and at most once a second.
 * docs/reliability.md has the numbers and what a host should do.
 *
 * Without glibc (musl, ...) these are no-ops. */
#ifndef WSMSG_EXAMPLE_MEM_RETURN_H
#define WSMSG_EXAMPLE_MEM_RETURN_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#define MEM_RETURN_QUIET_MS 200
#define MEM_RETURN_EVERY_MS 1000
#define MEM_RETURN_MAX_DELAY_MS 5000

typedef struct mem_return {
  unsigned long closed; /* connections closed since the last trim */
  uint64_t first_close, last_close, last_trim;
  unsigned long trims; /* how many trims ran (for a --verbose log) */
  uint64_t last_us;    /* how long the last one took */
} mem_return;

/* Call once at start-up: big blocks (>= 256 KiB: message buffers, output
 * queues) come from mmap and go back to the OS when freed, always (glibc
 * would raise this threshold after the first such free, and big buffers
 * would then stay in the heap).  A GLIBC_TUNABLES setting of the threshold
 * wins. */
static inline void mem_return_init(void) {
#ifdef __GLIBC__
  const char *t = getenv("GLIBC_TUNABLES");
  if (!t || !strstr(t, "mmap_threshold"))
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
#endif
}

/* A connection was freed at `now`. */
static inline void mem_return_closed(mem_return *m, uint64_t now) {
  if (!m->closed++)
    m->first_close = now;
  m->last_close = now;
}

/* When the next trim is due as an absolute time, or 0 if none pending. */
static inline uint64_t mem_return_due(const mem_return *m) {
  if (!m->closed)
    return 0;
  uint64_t quiet = m->last_close + MEM_RETURN_QUIET_MS;
  uint64_t late = m->first_close + MEM_RETURN_MAX_DELAY_MS;
  uint64_t a = quiet < late ? quiet : late;
  uint64_t b = m->last_trim + MEM_RETURN_EVERY_MS;
  return a > b ? a : b;
}

/* Trim if one is due at `now`; returns 1 if it did. */
static inline int mem_return_run(mem_return *m, uint64_t now) {
  uint64_t due = mem_return_due(m);
  if (!due || now < due)
    return 0;
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
#ifdef __GLIBC__
  malloc_trim(0);
#endif
  clock_gettime(CLOCK_MONOTONIC, &b);
  m->last_us = (uint64_t)(b.tv_sec - a.tv_sec) * 1000000u +
               (uint64_t)(b.tv_nsec - a.tv_nsec) / 1000u;
  m->closed = 0;
  m->last_trim = now;
  m->trims++;
  return 1;
}

#endif
