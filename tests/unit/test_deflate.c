/* permessage-deflate (RFC 7692): the extension-header parser, negotiation
 * on both sides, compressed round trips for every parameter combination,
 * fragmented and streamed messages, bombs, corrupt data, the RSV1 rules,
 * broadcast, and the memory an idle or busy connection holds. */
#include "internal.h"
#include "pair.h"

#include <zlib.h>

/* the tables leave trailing fields zero */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

/* ---- a counting allocator (bytes live, peak, allocation count) ---- */

typedef struct counter {
  size_t live, peak, allocs;
} counter;

static void *count_malloc(size_t n, void *u) {
  counter *k = u;
  size_t *p = malloc(n + 16);
  if (!p)
    return NULL;
  p[0] = n;
  k->live += n;
  k->allocs++;
  if (k->live > k->peak)
    k->peak = k->live;
  return (char *)p + 16;
}

static void count_free(void *q, void *u) {
  if (!q)
    return;
  counter *k = u;
  size_t *p = (size_t *)((char *)q - 16);
  k->live -= p[0];
  free(p);
}

/* ---- the offer parser ---- */

typedef struct parse_case {
  const char *in;
  int verdict;
  int snct, cnct, swb, cwb;
} parse_case;

static const parse_case PARSE[] = {
    {"permessage-deflate", WSM_PMD_OK, 0, 0, 0, 0},
    {"PerMessage-Deflate", WSM_PMD_OK, 0, 0, 0, 0},
    {"permessage-deflate; client_max_window_bits", WSM_PMD_OK, 0, 0, 0,
     WSM_PMD_WB_NOVAL},
    {"permessage-deflate;client_max_window_bits=10", WSM_PMD_OK, 0, 0, 0, 10},
    {"permessage-deflate ; client_max_window_bits = 15 ", WSM_PMD_OK, 0, 0, 0,
     15},
    {"permessage-deflate; server_max_window_bits=8", WSM_PMD_OK, 0, 0, 8, 0},
    {"permessage-deflate; server_max_window_bits=\"12\"", WSM_PMD_OK, 0, 0, 12,
     0},
    {"permessage-deflate; client_max_window_bits=\"9\"", WSM_PMD_OK, 0, 0, 0,
     9},
    {"permessage-deflate; server_no_context_takeover", WSM_PMD_OK, 1, 0, 0, 0},
    {"permessage-deflate; client_no_context_takeover", WSM_PMD_OK, 0, 1, 0, 0},
    {"permessage-deflate; Server_No_Context_Takeover; "
     "CLIENT_NO_CONTEXT_TAKEOVER; server_max_window_bits=15; "
     "client_max_window_bits=8",
     WSM_PMD_OK, 1, 1, 15, 8},
    {"\tpermessage-deflate\t;\tclient_no_context_takeover\t", WSM_PMD_OK, 0, 1,
     0, 0},
    /* bad values, duplicates, unknown parameters: the offer is declined */
    {"permessage-deflate; server_max_window_bits", WSM_PMD_BAD},
    {"permessage-deflate; server_max_window_bits=7", WSM_PMD_BAD},
    {"permessage-deflate; server_max_window_bits=16", WSM_PMD_BAD},
    {"permessage-deflate; server_max_window_bits=08", WSM_PMD_BAD},
    {"permessage-deflate; server_max_window_bits=010", WSM_PMD_BAD},
    {"permessage-deflate; server_max_window_bits=1", WSM_PMD_BAD},
    {"permessage-deflate; server_max_window_bits=abc", WSM_PMD_BAD},
    {"permessage-deflate; server_max_window_bits=\"\"", WSM_PMD_BAD},
    {"permessage-deflate; server_max_window_bits=\"1 2\"", WSM_PMD_BAD},
    {"permessage-deflate; client_max_window_bits=0", WSM_PMD_BAD},
    {"permessage-deflate; client_max_window_bits=100000000000", WSM_PMD_BAD},
    {"permessage-deflate; server_no_context_takeover=1", WSM_PMD_BAD},
    {"permessage-deflate; client_no_context_takeover=\"x\"", WSM_PMD_BAD},
    {"permessage-deflate; server_no_context_takeover; "
     "server_no_context_takeover",
     WSM_PMD_BAD},
    {"permessage-deflate; client_max_window_bits; client_max_window_bits=9",
     WSM_PMD_BAD},
    {"permessage-deflate; server_max_window_bits=9; server_max_window_bits=9",
     WSM_PMD_BAD},
    {"permessage-deflate; x_unknown", WSM_PMD_BAD},
    {"permessage-deflate; x=1", WSM_PMD_BAD},
    /* other extensions, whatever their parameters */
    {"x-webkit-deflate-frame", WSM_PMD_OTHER},
    {"permessage-deflate2; foo=bar", WSM_PMD_OTHER},
    {"foo; a=\"b\\\"c\"", WSM_PMD_OTHER},
    /* not extension syntax */
    {"", WSM_PMD_SYNTAX},
    {";", WSM_PMD_SYNTAX},
    {"permessage-deflate;", WSM_PMD_SYNTAX},
    {"permessage-deflate; =1", WSM_PMD_SYNTAX},
    {"permessage-deflate; a=", WSM_PMD_SYNTAX},
    {"permessage-deflate; a=\"unterminated", WSM_PMD_SYNTAX},
    {"permessage-deflate x", WSM_PMD_SYNTAX},
    {"\"quoted\"", WSM_PMD_SYNTAX},
    {"permessage-deflate; server_max_window_bits=10 10", WSM_PMD_SYNTAX},
};

static void test_parse_table(void **st) {
  (void)st;
  for (size_t i = 0; i < sizeof(PARSE) / sizeof(PARSE[0]); i++) {
    const parse_case *t = &PARSE[i];
    wsm_pmd_params p;
    int v = wsm_pmd_parse(t->in, strlen(t->in), &p);
    if (v != t->verdict)
      fail_msg("'%s': verdict %d, want %d", t->in, v, t->verdict);
    if (v == WSM_PMD_OK &&
        (p.server_no_ctx != t->snct || p.client_no_ctx != t->cnct ||
         p.server_wbits != t->swb || p.client_wbits != t->cwb))
      fail_msg("'%s': parsed %d %d %d %d", t->in, p.server_no_ctx,
               p.client_no_ctx, p.server_wbits, p.client_wbits);
  }
}

static void test_split(void **st) {
  (void)st;
  const char *h = " a; x=\"1,2\" ,, b ,\tpermessage-deflate; y=\"\\\",\" ";
  const char *want[] = {"a; x=\"1,2\"", "b", "permessage-deflate; y=\"\\\",\""};
  size_t len, k = 0;
  for (const char *s = h; (s = wsm_ext_next(s, &len)) != NULL; s += len) {
    assert_true(k < 3);
    assert_int_equal(len, strlen(want[k]));
    assert_memory_equal(s, want[k], len);
    k++;
  }
  assert_int_equal(k, 3);
}

/* ---- server negotiation ---- */

typedef struct neg_case {
  const char *offers[3]; /* header values (NULL-terminated) */
  int mode;              /* endpoint preset */
  int ours, peers;       /* 0: the preset's windows */
  int take_ours, take_peers; /* -1: the preset's */
  const char *answer;        /* NULL: declined */
  int tx_wbits, rx_wbits, tx_no_ctx, rx_no_ctx;
} neg_case;

static const neg_case NEG[] = {
    /* a browser's offer, default preset: no context takeover both ways */
    {{"permessage-deflate; client_max_window_bits"},
     WSMSG_DEFLATE_ON, 0, 0, -1, -1,
     "permessage-deflate; server_no_context_takeover; "
     "client_no_context_takeover",
     15, 15, 1, 1},
    /* takeover both ways, nothing asked */
    {{"permessage-deflate"},
     WSMSG_DEFLATE_MAX_RATIO, 0, 0, -1, -1, "permessage-deflate", 15, 15, 0,
     0},
    /* the client asks for a smaller server window and no takeover */
    {{"permessage-deflate; server_max_window_bits=10; "
      "server_no_context_takeover"},
     WSMSG_DEFLATE_MAX_RATIO, 0, 0, -1, -1,
     "permessage-deflate; server_no_context_takeover; "
     "server_max_window_bits=10",
     10, 15, 1, 0},
    /* low memory: we ask for window 11 of a client that supports it */
    {{"permessage-deflate; client_max_window_bits"},
     WSMSG_DEFLATE_LOW_MEMORY, 0, 0, -1, -1,
     "permessage-deflate; server_max_window_bits=11; "
     "client_max_window_bits=11",
     11, 11, 0, 0},
    /* ... and of one that does not: it keeps 15 */
    {{"permessage-deflate"},
     WSMSG_DEFLATE_LOW_MEMORY, 0, 0, -1, -1,
     "permessage-deflate; server_max_window_bits=11", 11, 15, 0, 0},
    /* the client's own smaller window is honoured */
    {{"permessage-deflate; client_max_window_bits=9"},
     WSMSG_DEFLATE_LOW_MEMORY, 0, 0, -1, -1,
     "permessage-deflate; server_max_window_bits=11; "
     "client_max_window_bits=9",
     11, 9, 0, 0},
    /* server_max_window_bits=8: accepted, answered 8, we send uncompressed */
    {{"permessage-deflate; server_max_window_bits=8"},
     WSMSG_DEFLATE_MAX_RATIO, 0, 0, -1, -1,
     "permessage-deflate; server_max_window_bits=8", 8, 15, 0, 0},
    /* first acceptable offer wins; a bad one is skipped */
    {{"permessage-deflate; server_max_window_bits=20, permessage-deflate; "
      "client_no_context_takeover, permessage-deflate"},
     WSMSG_DEFLATE_MAX_RATIO, 0, 0, -1, -1,
     "permessage-deflate; client_no_context_takeover", 15, 15, 0, 1},
    /* over several headers, after another extension */
    {{"x-foo; a=\"b,c\"", "permessage-deflate; x=1",
      "permessage-deflate; server_no_context_takeover"},
     WSMSG_DEFLATE_MAX_RATIO, 0, 0, -1, -1,
     "permessage-deflate; server_no_context_takeover", 15, 15, 1, 0},
    /* every offer bad: declined */
    {{"permessage-deflate; server_max_window_bits",
      "permessage-deflate; client_no_context_takeover; "
      "client_no_context_takeover"},
     WSMSG_DEFLATE_ON, 0, 0, -1, -1, NULL},
    /* no offer at all, or only others */
    {{"x-webkit-deflate-frame"}, WSMSG_DEFLATE_ON, 0, 0, -1, -1, NULL},
    /* off: declined */
    {{"permessage-deflate"}, WSMSG_DEFLATE_OFF, 0, 0, -1, -1, NULL},
    /* explicit windows and takeover */
    {{"permessage-deflate; client_max_window_bits=12; "
      "server_max_window_bits=13"},
     WSMSG_DEFLATE_ON, 14, 10, 1, 1,
     "permessage-deflate; server_max_window_bits=13; "
     "client_max_window_bits=10",
     13, 10, 0, 0},
};

static void set_cfg(wsmsg_endpoint *ep, int mode, int ours, int peers,
                    int take_ours, int take_peers) {
  assert_int_equal(wsmsg_endpoint_set_deflate(ep, mode), 0);
  if (ours)
    assert_int_equal(wsmsg_endpoint_set_deflate_window(ep, ours, peers), 0);
  if (take_ours >= 0)
    assert_int_equal(
        wsmsg_endpoint_set_deflate_takeover(ep, take_ours, take_peers), 0);
}

/* h[0] is {name, value}; then one Sec-WebSocket-Extensions header for each
 * of values[0..max) up to a NULL, the second spelled in lower case (header
 * names are case-insensitive).  Returns how many headers there are. */
static size_t ext_headers(wsm_header *h, const char *name, const char *value,
                          const char *const *values, int max) {
  h[0].name = (char *)name;
  h[0].value = (char *)value;
  size_t n = 1;
  for (int k = 0; k < max && values[k]; k++) {
    h[n].name =
        k == 1 ? "sec-websocket-extensions" : "Sec-WebSocket-Extensions";
    h[n].value = (char *)values[k];
    n++;
  }
  return n;
}

/* The agreed windows and takeover settings are these. */
static void assert_agreed(const wsm_pmd *a, int tx_wbits, int rx_wbits,
                          int tx_no_ctx, int rx_no_ctx) {
  assert_int_equal(a->tx_wbits, tx_wbits);
  assert_int_equal(a->rx_wbits, rx_wbits);
  assert_int_equal(a->tx_no_ctx, tx_no_ctx);
  assert_int_equal(a->rx_no_ctx, rx_no_ctx);
}

static void test_negotiate_table(void **st) {
  (void)st;
  for (size_t i = 0; i < sizeof(NEG) / sizeof(NEG[0]); i++) {
    const neg_case *t = &NEG[i];
    wsmsg_endpoint *ep = wsmsg_endpoint_new();
    set_cfg(ep, t->mode, t->ours, t->peers, t->take_ours, t->take_peers);
    wsm_header h[4];
    size_t n = ext_headers(h, "Host", "x", t->offers, 3);
    wsm_pmd a;
    char ans[160] = "";
    bool ok = wsm_pmd_negotiate(h, n, &ep->pmd, &a, ans, sizeof(ans));
    if (ok != (t->answer != NULL))
      fail_msg("case %zu: accepted=%d", i, ok);
    if (ok) {
      if (strcmp(ans, t->answer) != 0)
        fail_msg("case %zu: answer '%s', want '%s'", i, ans, t->answer);
      assert_agreed(&a, t->tx_wbits, t->rx_wbits, t->tx_no_ctx, t->rx_no_ctx);
      /* the answer is itself a valid permessage-deflate element */
      wsm_pmd_params pp;
      assert_int_equal(wsm_pmd_parse(ans, strlen(ans), &pp), WSM_PMD_OK);
    }
    wsmsg_endpoint_free(ep);
  }
}

/* ---- the client's check of the answer ---- */

typedef struct ans_case {
  int mode, ours, peers, take_ours, take_peers;
  const char *answer[2]; /* Sec-WebSocket-Extensions values, or none */
  int ok;
  int on, tx_wbits, rx_wbits, tx_no_ctx, rx_no_ctx;
} ans_case;

static const ans_case ANS[] = {
    {WSMSG_DEFLATE_ON, 0, 0, -1, -1, {NULL}, 1, 0},
    {WSMSG_DEFLATE_ON, 0, 0, -1, -1,
     {"permessage-deflate; server_no_context_takeover; "
      "client_no_context_takeover"},
     1, 1, 15, 15, 1, 1},
    {WSMSG_DEFLATE_ON, 0, 0, -1, -1,
     {"permessage-deflate; server_no_context_takeover; "
      "client_max_window_bits=9"},
     1, 1, 9, 15, 1, 1},
    /* we asked server_no_context_takeover: it must be in the answer */
    {WSMSG_DEFLATE_ON, 0, 0, -1, -1, {"permessage-deflate"}, 0},
    {WSMSG_DEFLATE_MAX_RATIO, 0, 0, -1, -1, {"permessage-deflate"}, 1, 1, 15,
     15, 0, 0},
    {WSMSG_DEFLATE_MAX_RATIO, 0, 0, -1, -1,
     {"permessage-deflate; server_max_window_bits=10"}, 1, 1, 15, 10, 0, 0},
    /* low memory: we offered server_max_window_bits=11 */
    {WSMSG_DEFLATE_LOW_MEMORY, 0, 0, -1, -1,
     {"permessage-deflate; server_max_window_bits=12"}, 0},
    {WSMSG_DEFLATE_LOW_MEMORY, 0, 0, -1, -1, {"permessage-deflate"}, 0},
    {WSMSG_DEFLATE_LOW_MEMORY, 0, 0, -1, -1,
     {"permessage-deflate; server_max_window_bits=11; "
      "client_max_window_bits=12"},
     0},
    {WSMSG_DEFLATE_LOW_MEMORY, 0, 0, -1, -1,
     {"permessage-deflate; server_max_window_bits=9; "
      "client_max_window_bits=10"},
     1, 1, 10, 9, 0, 0},
    /* answers outside any offer */
    {WSMSG_DEFLATE_MAX_RATIO, 0, 0, -1, -1, {"x-webkit-deflate-frame"}, 0},
    {WSMSG_DEFLATE_MAX_RATIO, 0, 0, -1, -1,
     {"permessage-deflate", "permessage-deflate"}, 0},
    {WSMSG_DEFLATE_MAX_RATIO, 0, 0, -1, -1,
     {"permessage-deflate, permessage-deflate"}, 0},
    {WSMSG_DEFLATE_MAX_RATIO, 0, 0, -1, -1,
     {"permessage-deflate; client_max_window_bits"}, 0},
    {WSMSG_DEFLATE_MAX_RATIO, 0, 0, -1, -1,
     {"permessage-deflate; server_max_window_bits=7"}, 0},
    {WSMSG_DEFLATE_MAX_RATIO, 0, 0, -1, -1, {"permessage-deflate; foo"}, 0},
    {WSMSG_DEFLATE_MAX_RATIO, 0, 0, -1, -1, {"permessage-deflate;"}, 0},
    {WSMSG_DEFLATE_OFF, 0, 0, -1, -1, {"permessage-deflate"}, 0},
};

static void test_answer_table(void **st) {
  (void)st;
  for (size_t i = 0; i < sizeof(ANS) / sizeof(ANS[0]); i++) {
    const ans_case *t = &ANS[i];
    wsmsg_endpoint *ep = wsmsg_endpoint_new();
    set_cfg(ep, t->mode, t->ours, t->peers, t->take_ours, t->take_peers);
    wsm_header h[3];
    size_t n = ext_headers(h, "Upgrade", "websocket", t->answer, 2);
    wsm_pmd a;
    const char *why = NULL;
    int r = wsm_pmd_check_answer(h, n, &ep->pmd, &a, &why);
    if ((r == 0) != t->ok)
      fail_msg("case %zu: result %d (%s)", i, r, why ? why : "");
    if (r == 0) {
      assert_int_equal(a.on, t->on);
      if (a.on)
        assert_agreed(&a, t->tx_wbits, t->rx_wbits, t->tx_no_ctx,
                      t->rx_no_ctx);
    } else {
      assert_non_null(why);
    }
    wsmsg_endpoint_free(ep);
  }
}

/* The client's offer for each preset is what the server accepts. */
static void test_offer_accepted(void **st) {
  (void)st;
  for (int mode = WSMSG_DEFLATE_ON; mode <= WSMSG_DEFLATE_MAX_RATIO; mode++) {
    wsmsg_endpoint *ep = wsmsg_endpoint_new();
    set_cfg(ep, mode, 0, 0, -1, -1);
    char offer[160], ans[160];
    wsm_pmd_offer(&ep->pmd, offer, sizeof(offer));
    wsm_pmd_params pp;
    assert_int_equal(wsm_pmd_parse(offer, strlen(offer), &pp), WSM_PMD_OK);
    wsm_header h = {"Sec-WebSocket-Extensions", offer};
    wsm_pmd a, b;
    assert_true(wsm_pmd_negotiate(&h, 1, &ep->pmd, &a, ans, sizeof(ans)));
    wsm_header h2 = {"Sec-WebSocket-Extensions", ans};
    const char *why = NULL;
    assert_int_equal(wsm_pmd_check_answer(&h2, 1, &ep->pmd, &b, &why), 0);
    assert_true(b.on);
    /* each side's send window is the other's receive window */
    assert_agreed(&b, a.rx_wbits, a.tx_wbits, a.rx_no_ctx, a.tx_no_ctx);
    wsmsg_endpoint_free(ep);
  }
}

/* ---- round trips ---- */

static int g_mode, g_ours, g_peers, g_take_ours, g_take_peers;
static int g_cmode; /* client preset (-1: same as the server) */

static void setup_deflate(pair *p) {
  set_cfg(p->sep, g_mode, g_ours, g_peers, g_take_ours, g_take_peers);
  set_cfg(p->cep, g_cmode >= 0 ? g_cmode : g_mode, g_ours, g_peers,
          g_take_ours, g_take_peers);
  wsmsg_endpoint_set_deflate_threshold(p->sep, 0);
  wsmsg_endpoint_set_deflate_threshold(p->cep, 0);
  wsmsg_endpoint_set_max_message_size(p->sep, 4u << 20);
  wsmsg_endpoint_set_max_message_size(p->cep, 4u << 20);
}

/* Text of n bytes that compresses like prose/JSON. */
static char *make_text(size_t n, unsigned seed) {
  static const char *words[] = {"{\"type\":\"chat\",", "\"user\":\"alice\",",
                                "\"text\":\"hello world ", "lorem ipsum ",
                                "dolor sit amet ", "\"ts\":1733400000},",
                                "caf\xc3\xa9 ", "na\xc3\xafve "};
  char *s = malloc(n + 1);
  size_t k = 0;
  unsigned x = seed * 2654435761u + 1;
  while (k < n) {
    x = x * 1103515245u + 12345u;
    const char *w = words[(x >> 16) % 8];
    size_t wl = strlen(w);
    if (k + wl > n) {
      memset(s + k, 'x', n - k);
      k = n;
      break;
    }
    memcpy(s + k, w, wl);
    k += wl;
  }
  s[n] = 0;
  return s;
}

/* Send `n` bytes client->server and server->client; both must arrive
 * intact.  Returns the bytes the server's message took on the wire. */
static size_t round_trip(pair *p, const char *msg, size_t n, int binary) {
  int before_s = binary ? p->sr.binaries : p->sr.texts;
  int before_c = binary ? p->cr.binaries : p->cr.texts;
  if (binary)
    assert_int_equal(wsmsg_send_binary(p->c, msg, n), 0);
  else
    assert_int_equal(wsmsg_send_text(p->c, msg, n), 0);
  pump(p);
  if ((binary ? p->sr.binaries : p->sr.texts) != before_s + 1)
    fail_msg("%zu bytes (binary %d) not received: closes %d '%s'", n, binary,
             p->sr.closes, p->sr.close_detail);
  assert_int_equal(p->sr.last_len, n);
  assert_memory_equal(p->sr.last, msg, n);
  if (binary)
    assert_int_equal(wsmsg_send_binary(p->s, msg, n), 0);
  else
    assert_int_equal(wsmsg_send_text(p->s, msg, n), 0);
  size_t wire = wsmsg_conn_pending(p->s, NULL);
  pump(p);
  assert_int_equal(binary ? p->cr.binaries : p->cr.texts, before_c + 1);
  assert_int_equal(p->cr.last_len, n);
  assert_memory_equal(p->cr.last, msg, n);
  return wire;
}

static void run_combo(int mode, int ours, int peers, int take_ours,
                      int take_peers) {
  g_mode = mode;
  g_cmode = -1;
  g_ours = ours;
  g_peers = peers;
  g_take_ours = take_ours;
  g_take_peers = take_peers;
  pair p;
  pair_open(&p, setup_deflate);
  assert_true(wsmsg_conn_deflate(p.s));
  assert_true(wsmsg_conn_deflate(p.c));
  static const size_t sizes[] = {0, 1, 16, 200, 5000, 70000, 300000};
  for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
    for (int rep = 0; rep < 2; rep++) { /* twice: the context is reused */
      char *m = make_text(sizes[i], (unsigned)(i * 7 + (size_t)rep));
      size_t wire = round_trip(&p, m, sizes[i], rep);
      /* windows of 2^8 send uncompressed; the rest must shrink text */
      if (sizes[i] >= 5000 && p.s->pmd.tx_wbits > 8 && wire * 2 > sizes[i])
        fail_msg("%zu bytes took %zu on the wire (wbits %d)", sizes[i], wire,
                 p.s->pmd.tx_wbits);
      free(m);
    }
  }
  assert_int_equal(p.sr.closes + p.cr.closes, 0);
  wsmsg_close(p.c, 1000, "bye");
  pump(&p);
  assert_int_equal(p.sr.close.code, 1000);
  assert_true(p.cr.close.clean);
  pair_free(&p);
}

static void test_round_trip_presets(void **st) {
  (void)st;
  for (int mode = WSMSG_DEFLATE_ON; mode <= WSMSG_DEFLATE_MAX_RATIO; mode++)
    run_combo(mode, 0, 0, -1, -1);
}

/* Every window size on each side, every takeover combination. */
static void test_round_trip_all_params(void **st) {
  (void)st;
  for (int w = 8; w <= 15; w++)
    for (int take = 0; take < 4; take++)
      run_combo(WSMSG_DEFLATE_ON, w, 23 - w, take & 1, take >> 1);
  run_combo(WSMSG_DEFLATE_ON, 8, 8, 1, 1);
  run_combo(WSMSG_DEFLATE_ON, 15, 15, 0, 0);
}

/* A compressing client against a server with compression off, and the
 * other way round: plain messages. */
static void test_one_side_off(void **st) {
  (void)st;
  for (int side = 0; side < 2; side++) {
    g_mode = side ? WSMSG_DEFLATE_OFF : WSMSG_DEFLATE_ON;
    g_cmode = side ? WSMSG_DEFLATE_ON : WSMSG_DEFLATE_OFF;
    g_ours = 0;
    g_take_ours = -1;
    pair p;
    pair_open(&p, setup_deflate);
    assert_false(wsmsg_conn_deflate(p.s));
    assert_false(wsmsg_conn_deflate(p.c));
    char *m = make_text(3000, 1);
    size_t wire = round_trip(&p, m, 3000, 0);
    assert_true(wire >= 3000);
    free(m);
    pair_free(&p);
  }
}

/* The threshold: short messages go without RSV1. */
static void test_threshold(void **st) {
  (void)st;
  g_mode = WSMSG_DEFLATE_ON;
  g_cmode = -1;
  g_ours = 0;
  g_take_ours = -1;
  pair p;
  pair_open(&p, setup_deflate);
  /* re-set after open is refused: the endpoint is frozen */
  assert_int_equal(wsmsg_endpoint_set_deflate_threshold(p.sep, 10),
                   WSMSG_ERR_STATE);
  p.sep->pmd.threshold = 100; /* (test only) */
  char *m = make_text(99, 3);
  assert_int_equal(wsmsg_send_text(p.s, m, 99), 0);
  const void *out;
  size_t n = wsmsg_conn_pending(p.s, &out);
  assert_int_equal(n, 2 + 99);
  assert_int_equal(((const uint8_t *)out)[0], 0x81); /* no RSV1 */
  pump(&p);
  assert_int_equal(wsmsg_send_text(p.s, "", 0), 0);
  pump(&p);
  free(m);
  m = make_text(100, 3);
  assert_int_equal(wsmsg_send_text(p.s, m, 100), 0);
  n = wsmsg_conn_pending(p.s, &out);
  assert_int_equal(((const uint8_t *)out)[0], 0xc1); /* RSV1 */
  assert_true(n < 2 + 100);
  pump(&p);
  assert_int_equal(p.cr.last_len, 100);
  assert_memory_equal(p.cr.last, m, 100);
  free(m);
  pair_free(&p);
}

/* ---- raw compressed frames from a "client" ---- */

static size_t deflate_raw(const void *in, size_t n, uint8_t *out, size_t cap,
                          int wbits) {
  z_stream z;
  memset(&z, 0, sizeof(z));
  assert_int_equal(
      deflateInit2(&z, 6, Z_DEFLATED, -wbits, 8, Z_DEFAULT_STRATEGY), Z_OK);
  z.next_in = (Bytef *)in;
  z.avail_in = (uInt)n;
  z.next_out = out;
  z.avail_out = (uInt)cap;
  assert_int_equal(deflate(&z, Z_SYNC_FLUSH), Z_OK);
  size_t k = cap - z.avail_out;
  deflateEnd(&z);
  assert_true(k >= 4);
  assert_memory_equal(out + k - 4, "\0\0\xff\xff", 4);
  return k - 4;
}

static void setup_server_on(pair *p) {
  wsmsg_endpoint_set_deflate(p->sep, WSMSG_DEFLATE_ON);
  wsmsg_endpoint_set_deflate(p->cep, WSMSG_DEFLATE_ON);
}

/* A compressed message split over fragments at every position. */
static void test_fragmented(void **st) {
  (void)st;
  char *m = make_text(4000, 9);
  uint8_t z[8192];
  size_t zn = deflate_raw(m, 4000, z, sizeof(z), 15);
  for (size_t cut = 0; cut <= zn; cut += zn / 7 + 1) {
    pair p;
    pair_open(&p, setup_server_on);
    assert_int_equal(to_server(&p, 0, 4, 1, z, cut), 0);
    assert_int_equal(to_server(&p, 0, 0, 0, z + cut, (zn - cut) / 2), 0);
    assert_int_equal(
        to_server(&p, 1, 0, 0, z + cut + (zn - cut) / 2, zn - cut - (zn - cut) / 2),
        0);
    assert_int_equal(p.sr.texts, 1);
    assert_int_equal(p.sr.last_len, 4000);
    assert_memory_equal(p.sr.last, m, 4000);
    /* then an uncompressed message on the same connection */
    assert_int_equal(to_server(&p, 1, 0, 1, "plain", 5), 0);
    assert_int_equal(p.sr.texts, 2);
    assert_memory_equal(p.sr.last, "plain", 5);
    pair_free(&p);
  }
  free(m);
}

/* The compressed bytes delivered one byte per recv call. */
static void test_byte_by_byte(void **st) {
  (void)st;
  char *m = make_text(3000, 4);
  uint8_t z[8192], fr[8300];
  size_t zn = deflate_raw(m, 3000, z, sizeof(z), 15);
  size_t fn = frame(fr, 1, 4, 1, z, zn, 1);
  pair p;
  pair_open(&p, setup_server_on);
  for (size_t i = 0; i < fn; i++)
    assert_int_equal(wsmsg_conn_recv(p.s, fr + i, 1), 0);
  assert_int_equal(p.sr.texts, 1);
  assert_memory_equal(p.sr.last, m, 3000);
  pair_free(&p);
  free(m);
}

static void expect_fail(pair *p, int code, const char *detail_part) {
  assert_int_equal(p->sr.closes, 1);
  assert_int_equal(pending_close_code(p->s), code);
  if (detail_part && !strstr(p->sr.close_detail, detail_part))
    fail_msg("detail '%s' lacks '%s'", p->sr.close_detail, detail_part);
}

static void test_rsv1_rules(void **st) {
  (void)st;
  uint8_t z[64];
  size_t zn = deflate_raw("hi", 2, z, sizeof(z), 15);
  pair p;
  /* RSV1 on a continuation frame */
  pair_open(&p, setup_server_on);
  to_server(&p, 0, 4, 1, z, zn);
  to_server(&p, 1, 4, 0, "", 0);
  expect_fail(&p, 1002, "continuation");
  pair_free(&p);
  /* on control frames */
  for (int op = 8; op <= 10; op++) {
    pair_open(&p, setup_server_on);
    to_server(&p, 1, 4, op, "", 0);
    expect_fail(&p, 1002, "control");
    pair_free(&p);
  }
  /* RSV2/RSV3 stay reserved */
  pair_open(&p, setup_server_on);
  to_server(&p, 1, 6, 1, z, zn);
  expect_fail(&p, 1002, "reserved bits");
  pair_free(&p);
  /* RSV1 when the extension was not agreed */
  pair_open(&p, NULL);
  to_server(&p, 1, 4, 1, z, zn);
  expect_fail(&p, 1002, "reserved bits");
  pair_free(&p);
}

static void test_corrupt(void **st) {
  (void)st;
  pair p;
  pair_open(&p, setup_server_on);
  const uint8_t bad[] = {0xff, 0xff, 0xff, 0xff, 0x00, 0x12};
  to_server(&p, 1, 4, 2, bad, sizeof(bad));
  expect_fail(&p, 1007, "invalid compressed data");
  assert_int_equal(p.sr.close.error, WSMSG_ERR_PROTOCOL);
  pair_free(&p);
  /* a BFINAL block followed by junk: the junk is ignored */
  pair_open(&p, setup_server_on);
  uint8_t z[64];
  z_stream zs;
  memset(&zs, 0, sizeof(zs));
  deflateInit2(&zs, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
  zs.next_in = (Bytef *)"final";
  zs.avail_in = 5;
  zs.next_out = z;
  zs.avail_out = sizeof(z);
  assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
  size_t zn = sizeof(z) - zs.avail_out;
  deflateEnd(&zs);
  z[zn++] = 0x42;
  to_server(&p, 1, 4, 1, z, zn);
  assert_int_equal(p.sr.texts, 1);
  assert_memory_equal(p.sr.last, "final", 5);
  /* and the connection goes on */
  char *m = make_text(500, 2);
  round_trip(&p, m, 500, 0);
  free(m);
  assert_int_equal(p.sr.closes, 0);
  pair_free(&p);
}

static void test_invalid_utf8_after_inflate(void **st) {
  (void)st;
  char bad[3000];
  memset(bad, 'a', sizeof(bad));
  bad[1000] = (char)0xc0; /* never valid */
  uint8_t z[4096];
  size_t zn = deflate_raw(bad, sizeof(bad), z, sizeof(z), 15);
  pair p;
  pair_open(&p, setup_server_on);
  to_server(&p, 1, 4, 1, z, zn);
  expect_fail(&p, 1007, "UTF-8");
  assert_int_equal(p.sr.texts, 0);
  pair_free(&p);
  /* a text message ending inside a character */
  pair_open(&p, setup_server_on);
  zn = deflate_raw("ab\xc3", 3, z, sizeof(z), 15);
  to_server(&p, 1, 4, 1, z, zn);
  expect_fail(&p, 1007, "inside a character");
  pair_free(&p);
}

static void on_chunk(wsmsg_conn *c, int type, const uint8_t *d, size_t n,
                     int first, int final, void *u);

static counter g_cnt;
static const wsmsg_mem counting_mem = {&g_cnt, count_malloc, count_free, NULL};

/* A few KB that inflate to 1 GB: closed with 1009 once the inflated size
 * passes the limit, with memory staying near the limit. */
static void test_bomb(void **st) {
  (void)st;
  size_t zeros = 64u << 20; /* 64 MiB of zeros: ~64 KiB compressed */
  uint8_t *zbuf = malloc(zeros / 500 + 4096);
  uint8_t *src = calloc(1, 1u << 20);
  z_stream zs;
  memset(&zs, 0, sizeof(zs));
  deflateInit2(&zs, 9, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY);
  zs.next_out = zbuf;
  zs.avail_out = (uInt)(zeros / 500 + 4096);
  for (size_t done = 0; done < zeros; done += 1u << 20) {
    zs.next_in = src;
    zs.avail_in = 1u << 20;
    assert_int_equal(deflate(&zs, Z_NO_FLUSH), Z_OK);
  }
  assert_int_equal(deflate(&zs, Z_SYNC_FLUSH), Z_OK);
  size_t zn = (size_t)(zs.next_out - zbuf) - 4;
  deflateEnd(&zs);
  free(src);
  assert_true(zn < 200000);
  for (int stream = 0; stream < 2; stream++) {
    memset(&g_cnt, 0, sizeof(g_cnt));
    pair p;
    memset(&p, 0, sizeof(p));
    p.sep = wsmsg_endpoint_new_mem(&counting_mem);
    p.cep = wsmsg_endpoint_new();
    p.srv = wsmsg_server_new_mem(&counting_mem);
    ep_callbacks(p.sep);
    ep_callbacks(p.cep);
    wsmsg_server_route(p.srv, "/ws", p.sep);
    setup_server_on(&p);
    if (stream) /* streamed: chunks go out, the total still counts */
      wsmsg_endpoint_on_chunk(p.sep, on_chunk, WSMSG_STREAM_BINARY);
    p.s = wsmsg_server_accept(p.srv, &p.sr);
    p.c = wsmsg_client_new(p.cep, "localhost:1", "/ws", &p.cr);
    pump(&p);
    assert_int_equal(wsmsg_conn_state(p.s), WSMSG_STATE_OPEN);
    size_t base = g_cnt.peak;
    to_server(&p, 1, 4, 2, zbuf, zn);
    expect_fail(&p, 1009, "inflates to");
    assert_int_equal(p.sr.close.error, WSMSG_ERR_TOO_BIG);
    assert_int_equal(p.sr.binaries, 0);
    /* the 1 MiB limit, the compressed frame (~64 KiB in wslay's buffer
     * is not ours), and zlib's ~45 KiB: well under 3 MiB */
    if (g_cnt.peak - base > (3u << 20))
      fail_msg("peak grew by %zu bytes", g_cnt.peak - base);
    pair_free(&p);
    assert_int_equal(g_cnt.live, 0);
  }
  free(zbuf);
}

/* ---- streaming ---- */

static size_t g_chunks, g_chunk_bytes;
static uint8_t *g_chunk_data;
static int g_chunk_final;

static void on_chunk(wsmsg_conn *c, int type, const uint8_t *d, size_t n,
                     int first, int final, void *u) {
  (void)c;
  (void)type;
  (void)u;
  if (first)
    g_chunk_bytes = 0;
  g_chunk_data = realloc(g_chunk_data, g_chunk_bytes + n + 1);
  memcpy(g_chunk_data + g_chunk_bytes, d, n);
  g_chunk_bytes += n;
  g_chunks++;
  g_chunk_final = final;
}

static void setup_stream_rx(pair *p) {
  setup_server_on(p);
  wsmsg_endpoint_on_chunk(p->sep, on_chunk,
                          WSMSG_STREAM_TEXT | WSMSG_STREAM_BINARY);
  wsmsg_endpoint_set_max_message_size(p->sep, 0);
}

static void test_stream_receive(void **st) {
  (void)st;
  size_t n = 200000;
  char *m = make_text(n, 5);
  uint8_t *z = malloc(n);
  size_t zn = deflate_raw(m, n, z, n, 15);
  pair p;
  pair_open(&p, setup_stream_rx);
  g_chunks = 0;
  to_server(&p, 0, 4, 1, z, zn / 2);
  to_server(&p, 1, 0, 0, z + zn / 2, zn - zn / 2);
  assert_true(g_chunks > 2); /* inflated pieces, not one buffer */
  assert_int_equal(g_chunk_final, 1);
  assert_int_equal(g_chunk_bytes, n);
  assert_memory_equal(g_chunk_data, m, n);
  assert_int_equal(p.sr.closes, 0);
  pair_free(&p);
  free(z);
  free(m);
  free(g_chunk_data);
  g_chunk_data = NULL;
}

typedef struct src {
  const char *d;
  size_t n, off;
} src;

static int64_t read_src(wsmsg_conn *c, uint8_t *buf, size_t len, int *eof,
                        void *u) {
  (void)c;
  src *s = u;
  size_t k = s->n - s->off < len ? s->n - s->off : len;
  if (k > 50000)
    k = 50000; /* several fragments */
  memcpy(buf, s->d + s->off, k);
  s->off += k;
  *eof = s->off == s->n;
  return (int64_t)k;
}

static void test_stream_send(void **st) {
  (void)st;
  for (int mode = WSMSG_DEFLATE_ON; mode <= WSMSG_DEFLATE_MAX_RATIO; mode++) {
    g_mode = mode;
    g_cmode = -1;
    g_ours = 0;
    g_take_ours = -1;
    pair p;
    pair_open(&p, setup_deflate);
    size_t n = 300000;
    char *m = make_text(n, 6);
    for (int rep = 0; rep < 2; rep++) {
      int texts0 = p.cr.texts;
      src s = {m, n, 0};
      assert_int_equal(wsmsg_send_stream(p.s, WSMSG_EV_TEXT, read_src, &s), 0);
      size_t wire = 0;
      for (int i = 0; i < 100 && wsmsg_conn_want_write(p.s); i++)
        wire += pump1(p.s, p.c, 0);
      assert_true(wire < n / 2);
      assert_int_equal(p.cr.texts, texts0 + 1);
      assert_int_equal(p.cr.last_len, n);
      assert_memory_equal(p.cr.last, m, n);
      /* a plain message after it still decodes */
      round_trip(&p, "after the stream, long enough to be compressed.....", 51,
                 0);
    }
    free(m);
    pair_free(&p);
  }
}

/* ---- broadcast ---- */

static void test_broadcast(void **st) {
  (void)st;
  /* 3 clients without takeover, 1 with, 1 without the extension */
  wsmsg_server *srv = wsmsg_server_new();
  wsmsg_endpoint *sep = wsmsg_endpoint_new();
  ep_callbacks(sep);
  wsmsg_endpoint_set_deflate(sep, WSMSG_DEFLATE_ON);
  wsmsg_endpoint_set_deflate_takeover(sep, 1, 1); /* the client decides */
  wsmsg_endpoint_set_deflate_threshold(sep, 0);
  wsmsg_server_route(srv, "/ws", sep);
  enum { N = 5 };
  wsmsg_endpoint *ceps[N];
  wsmsg_conn *s[N], *c[N];
  rec sr[N], cr[N];
  memset(sr, 0, sizeof(sr));
  memset(cr, 0, sizeof(cr));
  for (int i = 0; i < N; i++) {
    ceps[i] = wsmsg_endpoint_new();
    ep_callbacks(ceps[i]);
    if (i < 3)
      wsmsg_endpoint_set_deflate(ceps[i], WSMSG_DEFLATE_ON);
    else if (i == 3)
      wsmsg_endpoint_set_deflate(ceps[i], WSMSG_DEFLATE_MAX_RATIO);
    s[i] = wsmsg_server_accept(srv, &sr[i]);
    c[i] = wsmsg_client_new(ceps[i], "h:1", "/ws", &cr[i]);
    pump1(c[i], s[i], 0);
    pump1(s[i], c[i], 0);
    assert_int_equal(wsmsg_conn_state(c[i]), WSMSG_STATE_OPEN);
    assert_int_equal(wsmsg_conn_deflate(c[i]), i < 4);
  }
  char *m = make_text(5000, 8);
  for (int rep = 0; rep < 3; rep++) {
    assert_int_equal(wsmsg_broadcast(s, N, WSMSG_EV_TEXT, m, 5000), N);
    size_t w0 = wsmsg_conn_pending(s[0], NULL);
    assert_int_equal(wsmsg_conn_pending(s[1], NULL), w0);
    assert_true(w0 < 2500);
    assert_int_equal(wsmsg_conn_pending(s[4], NULL), 5000 + 4);
    if (rep > 0) /* takeover: later copies reference earlier ones */
      assert_true(wsmsg_conn_pending(s[3], NULL) < w0);
    for (int i = 0; i < N; i++) {
      pump1(s[i], c[i], 0);
      assert_int_equal(cr[i].texts, rep + 1);
      assert_int_equal(cr[i].last_len, 5000);
      assert_memory_equal(cr[i].last, m, 5000);
    }
  }
  free(m);
  for (int i = 0; i < N; i++) {
    wsmsg_conn_free(s[i]);
    wsmsg_conn_free(c[i]);
    wsmsg_endpoint_free(ceps[i]);
    free(sr[i].last);
    free(cr[i].last);
  }
  wsmsg_server_free(srv);
  wsmsg_endpoint_free(sep);
}

/* ---- memory ---- */

/* Bytes a server holds for one open connection after `msgs` echoes. */
static size_t idle_bytes(int mode, int msgs, size_t *allocs_last) {
  memset(&g_cnt, 0, sizeof(g_cnt));
  pair p;
  memset(&p, 0, sizeof(p));
  p.sep = wsmsg_endpoint_new_mem(&counting_mem);
  p.cep = wsmsg_endpoint_new();
  p.srv = wsmsg_server_new_mem(&counting_mem);
  ep_callbacks(p.sep);
  ep_callbacks(p.cep);
  p.sr.echo = 1;
  wsmsg_server_route(p.srv, "/ws", p.sep);
  if (mode >= 0) {
    wsmsg_endpoint_set_deflate(p.sep, mode);
    wsmsg_endpoint_set_deflate(p.cep, mode);
  }
  p.s = wsmsg_server_accept(p.srv, &p.sr);
  p.c = wsmsg_client_new(p.cep, "localhost:1", "/ws", &p.cr);
  pump(&p);
  char *m = make_text(600, 1);
  size_t a0 = 0;
  for (int i = 0; i < msgs; i++) {
    a0 = g_cnt.allocs;
    wsmsg_send_text(p.c, m, 600);
    pump(&p);
  }
  *allocs_last = g_cnt.allocs - a0;
  assert_int_equal(p.cr.texts, msgs);
  free(m);
  /* the pool's idle parsers, buffers and zlib streams are the server's,
   * not the connection's: free them by measuring with a fresh pool */
  size_t pooled = 0;
  wsm_pool *pl = &p.srv->pool;
  for (wsm_slot *sl = pl->slots; sl; sl = sl->next)
    pooled += sizeof(*sl) + 4096 + 200; /* parser (approximate) */
  (void)pooled;
  wsm_pool_destroy(pl);
  wsm_pool_init(pl, &p.srv->mem);
  size_t live = g_cnt.live;
  pair_free(&p);
  return live;
}

static void test_idle_memory(void **st) {
  (void)st;
  size_t al;
  size_t none = idle_bytes(-1, 3, &al);
  size_t on = idle_bytes(WSMSG_DEFLATE_ON, 3, &al);
  /* no context takeover: not a byte more once idle, none per message */
  assert_true(on <= none + 1024);
  assert_int_equal(al, 0);
  size_t low = idle_bytes(WSMSG_DEFLATE_LOW_MEMORY, 3, &al);
  assert_int_equal(al, 0); /* takeover, warmed up: no allocation either */
  assert_true(low - none < 64 * 1024);
  size_t max = idle_bytes(WSMSG_DEFLATE_MAX_RATIO, 3, &al);
  assert_int_equal(al, 0);
  print_message("idle server bytes per connection: plain %zu, ON %zu, "
                "LOW_MEMORY %zu, MAX_RATIO %zu\n",
                none, on, low, max);
}

/* zlib allocates through the hook: an allocation failure anywhere in a
 * compressed exchange fails cleanly (no crash, no leak). */
static void test_alloc_failures(void **st) {
  (void)st;
  char *m = make_text(20000, 11);
  for (int n = 1; n < 80; n++) {
    pair p;
    memset(&p, 0, sizeof(p));
    p.sep = wsmsg_endpoint_new();
    p.cep = wsmsg_endpoint_new();
    p.srv = wsmsg_server_new_mem(&failing_mem);
    ep_callbacks(p.sep);
    ep_callbacks(p.cep);
    p.sr.echo = 1;
    wsmsg_server_route(p.srv, "/ws", p.sep);
    setup_server_on(&p);
    wsmsg_endpoint_set_deflate_takeover(p.sep, n & 1, n & 1);
    p.s = wsmsg_server_accept(p.srv, &p.sr);
    p.c = wsmsg_client_new(p.cep, "localhost:1", "/ws", &p.cr);
    pump(&p);
    fail_countdown = n;
    wsmsg_send_text(p.c, m, 20000);
    pump(&p);
    fail_countdown = 0;
    /* whatever arrived is intact (a failed echo send is the
     * application's to see; a failed inflate closes) */
    if (p.cr.texts == 1)
      assert_memory_equal(p.cr.last, m, 20000);
    if (p.sr.texts == 1)
      assert_memory_equal(p.sr.last, m, 20000);
    pair_free(&p);
  }
  free(m);
}

/* Unfinished compressed messages hold inflaters: they count in the
 * server's memory budget, and past it a new one is refused with 1013
 * while the connections that hold theirs go on; a send that finds no
 * room for a compressor goes plain. */
static void test_memory_budget(void **st) {
  (void)st;
  enum { N = 12 };
  wsmsg_server *srv = wsmsg_server_new();
  wsmsg_endpoint *sep = wsmsg_endpoint_new();
  ep_callbacks(sep);
  wsmsg_endpoint_set_deflate(sep, WSMSG_DEFLATE_ON);
  wsmsg_endpoint_set_deflate_threshold(sep, 0);
  wsmsg_server_route(srv, "/ws", sep);
  /* each inflater (window 2^15) is about 40 KiB, plus the message so far:
   * 3 fit in 150 KiB with room left to finish a message, and the 8 KiB
   * share fits none */
  assert_int_equal(wsmsg_server_set_memory_budget(srv, 150 * 1024, 8192), 0);
  wsmsg_endpoint *cep = wsmsg_endpoint_new();
  ep_callbacks(cep);
  wsmsg_endpoint_set_deflate(cep, WSMSG_DEFLATE_ON);
  wsmsg_conn *s[N], *c[N];
  rec sr[N], cr[N];
  memset(sr, 0, sizeof(sr));
  memset(cr, 0, sizeof(cr));
  char *m = make_text(3000, 12);
  uint8_t z[4096], fr[4200];
  size_t zn = deflate_raw(m, 3000, z, sizeof(z), 15);
  size_t fn = frame(fr, 0, 4, 1, z, zn / 2, 1); /* first half, FIN=0 */
  int refused = 0, held = 0;
  for (int i = 0; i < N; i++) {
    s[i] = wsmsg_server_accept(srv, &sr[i]);
    c[i] = wsmsg_client_new(cep, "h:1", "/ws", &cr[i]);
    pump1(c[i], s[i], 0);
    pump1(s[i], c[i], 0);
    assert_true(wsmsg_conn_deflate(s[i]));
    wsmsg_conn_recv(s[i], fr, fn);
    if (sr[i].closes) {
      assert_int_equal(sr[i].close.error, WSMSG_ERR_BUDGET);
      assert_int_equal(pending_close_code(s[i]), 1013);
      refused++;
    } else {
      held++;
    }
  }
  assert_true(held >= 2 && held <= 4);
  for (int i = 0; i < N; i++) /* the refused ones' close frames go out */
    if (sr[i].closes)
      pump1(s[i], c[i], 0);
  assert_int_equal(refused, N - held);
  size_t used = wsmsg_server_memory_used(srv);
  assert_true(used <= 150 * 1024 + 48 * 1024);
  assert_true(used >= (size_t)held * 32 * 1024);
  /* a holder finishes its message: delivered, and its inflater goes back */
  int h = 0;
  while (sr[h].closes)
    h++;
  fn = frame(fr, 1, 0, 0, z + zn / 2, zn - zn / 2, 1);
  assert_int_equal(wsmsg_conn_recv(s[h], fr, fn), 0);
  assert_int_equal(sr[h].texts, 1);
  assert_memory_equal(sr[h].last, m, 3000);
  assert_true(wsmsg_server_memory_used(srv) < used);
  /* no room for a compressor (about 260 KiB at window 15, memLevel 8):
   * a send still goes, plain */
  int before = cr[h].texts;
  assert_int_equal(wsmsg_send_text(s[h], m, 3000), 0);
  pump1(s[h], c[h], 0);
  assert_int_equal(cr[h].texts, before + 1);
  assert_memory_equal(cr[h].last, m, 3000);
  for (int i = 0; i < N; i++) {
    wsmsg_conn_free(s[i]);
    wsmsg_conn_free(c[i]);
    free(sr[i].last);
    free(cr[i].last);
  }
  assert_int_equal(wsmsg_server_memory_used(srv), 0);
  free(m);
  wsmsg_server_free(srv);
  wsmsg_endpoint_free(sep);
  wsmsg_endpoint_free(cep);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse_table),
      cmocka_unit_test(test_split),
      cmocka_unit_test(test_negotiate_table),
      cmocka_unit_test(test_answer_table),
      cmocka_unit_test(test_offer_accepted),
      cmocka_unit_test(test_round_trip_presets),
      cmocka_unit_test(test_round_trip_all_params),
      cmocka_unit_test(test_one_side_off),
      cmocka_unit_test(test_threshold),
      cmocka_unit_test(test_fragmented),
      cmocka_unit_test(test_byte_by_byte),
      cmocka_unit_test(test_rsv1_rules),
      cmocka_unit_test(test_corrupt),
      cmocka_unit_test(test_invalid_utf8_after_inflate),
      cmocka_unit_test(test_bomb),
      cmocka_unit_test(test_stream_receive),
      cmocka_unit_test(test_stream_send),
      cmocka_unit_test(test_broadcast),
      cmocka_unit_test(test_idle_memory),
      cmocka_unit_test(test_alloc_failures),
      cmocka_unit_test(test_memory_budget),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
