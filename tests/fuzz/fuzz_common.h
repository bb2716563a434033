/* Shared helpers for the libFuzzer targets in tests/fuzz/.  Header-only:
 * every target is one translation unit that includes this file.
 *
 * - fz: a reader over the fuzzer's input (never reads past the end)
 * - a deterministic getrandom() so that a crash input replays the same way
 *   (client keys and masking keys come from it)
 * - a fake clock
 * - an independent UTF-8 validator (the oracle for lib/utf8.c)
 * - fz_wire: a checker for the frames a connection writes
 * - fz_out: pending()/consume() bookkeeping with its invariants
 *
 * A broken invariant prints what broke and calls abort(): libFuzzer then
 * saves the input as a crash. */
#ifndef WSMSG_FUZZ_COMMON_H
#define WSMSG_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include <wsmsg.h>

#define FZ_CHECK(cond)                                                         \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "fuzz invariant failed: %s (%s:%d)\n", #cond, __FILE__,  \
              __LINE__);                                                       \
      abort();                                                                 \
    }                                                                          \
  } while (0)

#define FZ_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* FZ_TRACE=1 in the environment: targets print what they do (triage). */
static int fz_trace;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fz_trace = getenv("FZ_TRACE") != NULL;
  return 0;
}

/* ---- input reader ------------------------------------------------------- */

typedef struct fz {
  const uint8_t *p;
  size_t n;
} fz;

static inline uint8_t fz_u8(fz *f) {
  if (!f->n)
    return 0;
  f->n--;
  return *f->p++;
}

static inline uint16_t fz_u16(fz *f) {
  uint16_t hi = fz_u8(f);
  return (uint16_t)(hi << 8 | fz_u8(f));
}

/* Take up to `want` bytes; returns how many (possibly fewer). */
static inline size_t fz_take(fz *f, size_t want, const uint8_t **out) {
  size_t k = want < f->n ? want : f->n;
  *out = f->p;
  f->p += k;
  f->n -= k;
  return k;
}

/* Split off the first `k` bytes into their own reader. */
static inline fz fz_sub(fz *f, size_t k) {
  fz s;
  k = fz_take(f, k, &s.p);
  s.n = k;
  return s;
}

/* ---- deterministic randomness -------------------------------------------
 * wsmsg asks getrandom() for client keys and masking keys.  The executable's
 * definition wins over libc's, so every run of an input sees the same
 * bytes: a crash replays exactly. */

static uint64_t fz_rng = 0x9E3779B97F4A7C15ull;

static inline void fz_rng_reset(uint64_t seed) {
  fz_rng = seed ^ 0x9E3779B97F4A7C15ull;
  if (!fz_rng)
    fz_rng = 1;
}

static inline uint64_t fz_rand(void) {
  uint64_t x = fz_rng;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  fz_rng = x;
  return x * 0x2545F4914F6CDD1Dull;
}

ssize_t getrandom(void *buf, size_t len, unsigned int flags);
ssize_t getrandom(void *buf, size_t len, unsigned int flags) {
  (void)flags;
  uint8_t *b = buf;
  for (size_t i = 0; i < len; i++)
    b[i] = (uint8_t)(fz_rand() >> 24);
  return (ssize_t)len;
}

/* ---- fake clock --------------------------------------------------------- */

static uint64_t fz_now;

static inline uint64_t fz_clock(void *user) {
  (void)user;
  return fz_now;
}

/* Steps the fake clock can take (ms). */
static const uint32_t FZ_STEPS[16] = {0,    1,    9,     10,    99,   100,
                                      101,  499,  500,   999,   1000, 1001,
                                      4000, 9999, 10001, 120000};

/* ---- allocation failures -----------------------------------------------
 * A wsmsg_mem whose allocation number `fail_at` fails (and, if `sticky`,
 * every one after it): the NOMEM paths must not crash, leak or corrupt
 * what is delivered. */

typedef struct fz_oom_state {
  uint64_t n, fail_at;
  int sticky, armed, failed;
} fz_oom_state;

static fz_oom_state fz_oom;

static inline int fz_oom_now(void) {
  if (!fz_oom.armed || !fz_oom.fail_at)
    return 0;
  fz_oom.n++;
  if (fz_oom.n == fz_oom.fail_at ||
      (fz_oom.sticky && fz_oom.n > fz_oom.fail_at)) {
    fz_oom.failed = 1;
    return 1;
  }
  return 0;
}

static inline void *fz_oom_malloc(size_t size, void *user) {
  (void)user;
  return fz_oom_now() ? NULL : malloc(size);
}

static inline void fz_oom_free(void *p, void *user) {
  (void)user;
  free(p);
}

static inline void *fz_oom_realloc(void *p, size_t size, void *user) {
  (void)user;
  return fz_oom_now() ? NULL : realloc(p, size);
}

static const wsmsg_mem FZ_OOM_MEM = {NULL, fz_oom_malloc, fz_oom_free,
                                     fz_oom_realloc};

/* r is acceptable only because an allocation failed */
#define FZ_OOM_OK(r) (fz_oom.failed && (r) == WSMSG_ERR_NOMEM)

/* ---- reference UTF-8 validator -------------------------------------------
 * Deliberately written differently from lib/utf8.c (decode, then range
 * checks) so that it can serve as the oracle. */

static inline int fz_utf8_ok(const uint8_t *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    uint32_t c = s[i];
    size_t k;
    uint32_t min;
    if (c < 0x80) {
      i++;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      k = 1;
      c &= 0x1F;
      min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      k = 2;
      c &= 0x0F;
      min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      k = 3;
      c &= 0x07;
      min = 0x10000;
    } else {
      return 0;
    }
    if (n - i <= k)
      return 0;
    for (size_t j = 1; j <= k; j++) {
      if ((s[i + j] & 0xC0) != 0x80)
        return 0;
      c = c << 6 | (s[i + j] & 0x3Fu);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
      return 0;
    i += k + 1;
  }
  return 1;
}

static inline int fz_close_code_ok(unsigned code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
         (code >= 3000 && code <= 4999);
}

/* ---- growable byte buffer ----------------------------------------------- */

typedef struct fz_buf {
  uint8_t *p;
  size_t n, cap;
} fz_buf;

static inline void fz_buf_add(fz_buf *b, const void *d, size_t n) {
  if (!n)
    return;
  if (b->n + n > b->cap) {
    size_t c = b->cap ? b->cap : 256;
    while (c < b->n + n)
      c *= 2;
    b->p = realloc(b->p, c);
    FZ_CHECK(b->p != NULL);
    b->cap = c;
  }
  memcpy(b->p + b->n, d, n);
  b->n += n;
}

static inline void fz_buf_free(fz_buf *b) {
  free(b->p);
  memset(b, 0, sizeof(*b));
}

/* ---- the frames a connection writes ---------------------------------------
 * Every byte consumed from a connection goes through fz_wire_feed, which
 * checks what RFC 6455 requires of a sender: no reserved bits or opcodes,
 * masked iff from a client, minimal length encoding, control frames final
 * and <= 125 bytes, valid close payloads, continuation frames only inside
 * a message, text messages valid UTF-8, and nothing after a close frame.
 * Completed messages can be collected (for fuzz_pair's delivery checks). */

typedef struct fz_wire {
  int masked;      /* frames must be masked (client output) */
  uint8_t hdr[14]; /* header being collected */
  size_t hlen, hneed;
  int in_payload;
  uint64_t plen, poff;
  uint8_t key[4];
  int op, fin;
  int msg_op;       /* data message in progress: 1 text, 2 binary */
  fz_buf msg;       /* its payload so far */
  uint8_t ctl[125]; /* control payload */
  int closed;       /* a close frame was seen */
  unsigned close_code;
  uint64_t frames, messages;
} fz_wire;

static inline void fz_wire_init(fz_wire *w, int masked) {
  memset(w, 0, sizeof(*w));
  w->masked = masked;
  w->hneed = 2;
}

static inline void fz_wire_free(fz_wire *w) { fz_buf_free(&w->msg); }

static inline void fz_wire_header_done(fz_wire *w) {
  const uint8_t *h = w->hdr;
  int fin = h[0] >> 7, rsv = (h[0] >> 4) & 7, op = h[0] & 15;
  int mask = h[1] >> 7;
  unsigned l7 = h[1] & 127;
  uint64_t len = l7;
  size_t at = 2;
  if (l7 == 126) {
    len = (uint64_t)h[2] << 8 | h[3];
    FZ_CHECK(len >= 126); /* minimal encoding */
    at = 4;
  } else if (l7 == 127) {
    len = 0;
    for (int i = 2; i < 10; i++)
      len = len << 8 | h[i];
    FZ_CHECK(len >= 65536 && !(len >> 63));
    at = 10;
  }
  FZ_CHECK(!w->closed); /* nothing after a close frame */
  FZ_CHECK(rsv == 0);
  FZ_CHECK(mask == w->masked);
  if (mask)
    memcpy(w->key, h + at, 4);
  FZ_CHECK(op == 0 || op == 1 || op == 2 || op == 8 || op == 9 || op == 10);
  if (op >= 8) {
    FZ_CHECK(fin);
    FZ_CHECK(len <= 125);
  } else if (op == 0) {
    FZ_CHECK(w->msg_op != 0);
  } else {
    FZ_CHECK(w->msg_op == 0);
    w->msg_op = op;
    w->msg.n = 0;
  }
  w->op = op;
  w->fin = fin;
  w->plen = len;
  w->poff = 0;
  w->in_payload = 1;
  w->frames++;
}

static inline void fz_wire_frame_done(fz_wire *w) {
  w->in_payload = 0;
  w->hlen = 0;
  w->hneed = 2;
  if (w->op == 8) {
    FZ_CHECK(w->plen != 1);
    if (w->plen >= 2) {
      w->close_code = (unsigned)(w->ctl[0] << 8 | w->ctl[1]);
      FZ_CHECK(fz_close_code_ok(w->close_code));
      FZ_CHECK(fz_utf8_ok(w->ctl + 2, (size_t)w->plen - 2));
    } else {
      w->close_code = 1005;
    }
    w->closed = 1;
    return;
  }
  if (w->op >= 8 || !w->fin)
    return;
  if (w->msg_op == 1)
    FZ_CHECK(fz_utf8_ok(w->msg.p, w->msg.n));
  w->msg_op = 0;
  w->messages++;
}

/* Feed bytes the connection wrote.  `on_msg` (may be NULL) gets every
 * complete data message. */
typedef void (*fz_wire_msg_cb)(void *ctx, int op, const uint8_t *d, size_t n);

static inline void fz_wire_feed(fz_wire *w, const uint8_t *d, size_t n,
                                fz_wire_msg_cb on_msg, void *ctx) {
  while (n > 0 || (w->in_payload && w->poff == w->plen)) {
    if (!w->in_payload) {
      w->hdr[w->hlen++] = *d++;
      n--;
      if (w->hlen == 2) {
        unsigned l7 = w->hdr[1] & 127;
        w->hneed = 2 +
                   (l7 == 126   ? 2
                    : l7 == 127 ? 8
                                : 0) +
                   (w->hdr[1] & 0x80 ? 4 : 0);
      }
      if (w->hlen == w->hneed)
        fz_wire_header_done(w);
      continue;
    }
    uint64_t left = w->plen - w->poff;
    size_t k = left < n ? (size_t)left : n;
    uint8_t tmp[4096];
    for (size_t done = 0; done < k;) {
      size_t m = k - done < sizeof(tmp) ? k - done : sizeof(tmp);
      const uint8_t *src = d + done;
      if (w->masked) {
        uint64_t at = w->poff + done;
        for (size_t i = 0; i < m; i++)
          tmp[i] = src[i] ^ w->key[(at + i) & 3];
        src = tmp;
      }
      if (w->op >= 8)
        memcpy(w->ctl + w->poff + done, src, m);
      else
        fz_buf_add(&w->msg, src, m);
      done += m;
    }
    w->poff += k;
    d += k;
    n -= k;
    if (w->poff == w->plen) {
      int op = w->op, fin = w->fin, mop = w->msg_op;
      fz_wire_frame_done(w);
      if (op < 8 && fin && on_msg)
        on_msg(ctx, mop, w->msg.p, w->msg.n);
    }
  }
}

/* The stream ended (the connection is done): a frame may be cut only if
 * the connection dropped its output (abort, timeout). */
static inline void fz_wire_end(const fz_wire *w, int cut_allowed) {
  if (!cut_allowed)
    FZ_CHECK(!w->in_payload && w->hlen == 0);
}

/* ---- pending() / consume() ------------------------------------------------
 * The host's view of a connection's output.  Between consumes, what
 * pending() returns may only grow at its end: the bytes already offered
 * keep their value.  It may shrink only when the connection drops its
 * output (abort, write/close timeout), which it records as an error. */

#define FZ_SNAP_MAX 4096

typedef struct fz_out {
  uint8_t *snap; /* copy of the first min(n, FZ_SNAP_MAX) pending bytes */
  size_t snap_n;
  size_t n;    /* pending length at the last look */
  int dropped; /* output was dropped at some point */
  int done;    /* wsmsg_conn_done was seen true */
  int aborted; /* the host called wsmsg_conn_abort: output may go */
  uint64_t written;
} fz_out;

static inline void fz_out_free(fz_out *o) {
  free(o->snap);
  memset(o, 0, sizeof(*o));
}

static inline void fz_out_snap(fz_out *o, const void *p, size_t n) {
  size_t k = n < FZ_SNAP_MAX ? n : FZ_SNAP_MAX;
  if (!o->snap)
    o->snap = malloc(FZ_SNAP_MAX);
  FZ_CHECK(o->snap != NULL);
  if (k)
    memcpy(o->snap, p, k);
  o->snap_n = k;
  o->n = n;
}

/* Look at the output after an operation that is not a consume. */
static inline size_t fz_out_look(wsmsg_conn *c, fz_out *o, const void **pp) {
  const void *p = NULL;
  size_t n = wsmsg_conn_pending(c, &p);
  FZ_CHECK(n == 0 || p != NULL);
  if (n < o->n) {
    /* only a connection that gave up (abort, timeout) drops its output,
     * all of it, and it is then closed */
    FZ_CHECK(n == 0);
    FZ_CHECK(wsmsg_conn_state(c) == WSMSG_STATE_CLOSED);
    o->dropped = 1;
  } else {
    size_t k = o->snap_n < n ? o->snap_n : n;
    FZ_CHECK(k == 0 || memcmp(p, o->snap, k) == 0);
  }
  if (o->done) /* done means done: nothing more to write, ever */
    FZ_CHECK(n == 0);
  if (o->aborted) /* so does an abort */
    FZ_CHECK(n == 0);
  fz_out_snap(o, p, n);
  if (wsmsg_conn_done(c)) {
    FZ_CHECK(n == 0);
    FZ_CHECK(wsmsg_conn_state(c) == WSMSG_STATE_CLOSED);
    o->done = 1;
  }
  if (pp)
    *pp = p;
  return n;
}

/* Write `k` of the pending bytes (clamped) into the wire checker. */
static inline void fz_out_write(wsmsg_conn *c, fz_out *o, size_t k, fz_wire *w,
                                fz_wire_msg_cb on_msg, void *ctx) {
  const void *p;
  size_t n = fz_out_look(c, o, &p);
  if (k > n)
    k = n;
  if (w && k)
    fz_wire_feed(w, p, k, on_msg, ctx);
  o->written += k;
  wsmsg_conn_consume(c, k);
  /* the rest stays, in order: shift the snapshot */
  size_t keep = o->snap_n > k ? o->snap_n - k : 0;
  if (keep)
    memmove(o->snap, o->snap + k, keep);
  o->snap_n = keep;
  o->n = n - k;
  /* consume may call on_drain, which may send: look again */
  fz_out_look(c, o, NULL);
}

/* Write everything (bounded: a stream source can keep refilling). */
static inline void fz_out_drain(wsmsg_conn *c, fz_out *o, fz_wire *w,
                                fz_wire_msg_cb on_msg, void *ctx) {
  for (int i = 0; i < 64; i++) {
    size_t n = fz_out_look(c, o, NULL);
    if (!n)
      return;
    fz_out_write(c, o, n, w, on_msg, ctx);
  }
}

/* ---- payload patterns -----------------------------------------------------
 */

/* Text payloads repeat MB: 40 bytes, mostly ASCII (the common case, and
 * cheap to validate) with a 2-, a 3- and a 4-byte character, so any
 * multiple of PAT_TEXT_PERIOD is whole characters. */
#define PAT_TEXT_PERIOD 40
static const char MB[] = "abcdefghijklmnopqrstuvwxyz0123"
                         "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80!";

/* Payload patterns, periodic so that any offset can be copied at once:
 * text repeats MB, binary (31 * i + 7) & 255 (period 256). */
#define PAT_SPAN 65536
static uint8_t pat_text[PAT_SPAN + PAT_TEXT_PERIOD], pat_bin[PAT_SPAN + 256];

static inline void fz_patterns_init(void) {
  if (pat_bin[1])
    return;
  for (size_t i = 0; i < sizeof(pat_text); i++)
    pat_text[i] = (uint8_t)MB[i % PAT_TEXT_PERIOD];
  for (size_t i = 0; i < sizeof(pat_bin); i++)
    pat_bin[i] = (uint8_t)(i * 31 + 7);
}

static inline void fill_pattern(uint8_t *d, size_t n, uint64_t pos, int text) {
  while (n) {
    size_t k = n < PAT_SPAN ? n : PAT_SPAN;
    memcpy(d, text ? pat_text + pos % PAT_TEXT_PERIOD : pat_bin + pos % 256, k);
    d += k;
    pos += k;
    n -= k;
  }
}

/* ---- streaming send source ------------------------------------------------
 * Produces `left` bytes of the pattern, at most `step` per call, pausing
 * every `pause_every` calls (0 without eof), failing at call `fail_at`,
 * and, for `bad` text, with 0xFF at offset 5. */

typedef struct stream_src {
  wsmsg_conn *c;
  uint64_t left; /* bytes still to produce */
  uint64_t pos;  /* bytes produced */
  uint64_t total;
  size_t step; /* at most this many per call */
  unsigned pause_every, fail_at, calls;
  int text, bad;
} stream_src;

static inline void stream_src_init(stream_src *s, wsmsg_conn *c, uint8_t p,
                                   int text) {
  static const uint64_t TOTAL[8] = {0, 1, 10, 100, 1000, 65536, 65540, 200000};
  static const size_t STEP[4] = {1, 7, 1000, 65536};
  memset(s, 0, sizeof(*s));
  s->c = c;
  s->text = text;
  s->left = TOTAL[p & 7];
  if (text)
    s->left -= s->left % PAT_TEXT_PERIOD; /* whole characters */
  s->step = STEP[(p >> 3) & 3];
  if (s->step < 1000 && s->left > 1000)
    s->left = 1000; /* tiny fragments: keep the frame count sane */
  s->total = s->left;
  s->pause_every = (p & 0x20) ? 3 : 0;
  s->fail_at = (p & 0x40) ? 2 : 0;
  s->bad = text && (p & 0x80);
}

static inline int64_t src_read(wsmsg_conn *c, uint8_t *buf, size_t len,
                               int *eof, void *user) {
  stream_src *s = user;
  FZ_CHECK(c == s->c);
  FZ_CHECK(len > 0);
  s->calls++;
  if (s->fail_at && s->calls == s->fail_at)
    return -1;
  if (s->pause_every && s->calls % s->pause_every == 0)
    return 0; /* pause: the script resumes it */
  size_t k = s->step < len ? s->step : len;
  if (k > s->left)
    k = (size_t)s->left;
  fill_pattern(buf, k, s->pos, s->text);
  if (s->bad && k && s->pos <= 5 && s->pos + k > 5)
    buf[5 - s->pos] = 0xFF; /* invalid UTF-8 in a text stream */
  s->pos += k;
  s->left -= k;
  *eof = s->left == 0;
  return (int64_t)k;
}

#endif
