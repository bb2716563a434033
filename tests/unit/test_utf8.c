/* UTF-8 validation: valid edge cases, every class of invalid sequence,
 * and incremental feeding split at every position. */
#include "internal.h"
#include "pair.h"

typedef struct u8case {
  const char *s;
  size_t n;
  int valid;
} u8case;

#define C(lit, v)                                                              \
  { lit, sizeof(lit) - 1, v }

static const u8case CASES[] = {
    C("", 1),
    C("plain ascii", 1),
    C("\x7f", 1),
    C("\xc2\x80", 1),         /* U+0080, smallest 2-byte */
    C("\xdf\xbf", 1),         /* U+07FF */
    C("\xe0\xa0\x80", 1),     /* U+0800, smallest 3-byte */
    C("\xed\x9f\xbf", 1),     /* U+D7FF, below surrogates */
    C("\xee\x80\x80", 1),     /* U+E000, above surrogates */
    C("\xef\xbf\xbf", 1),     /* U+FFFF */
    C("\xef\xbb\xbf", 1),     /* BOM is a valid character */
    C("\xf0\x90\x80\x80", 1), /* U+10000 */
    C("\xf4\x8f\xbf\xbf", 1), /* U+10FFFF, the last one */
    C("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", 1), /* κόσμε */
    C("\x80", 0), /* lone continuation */
    C("\xbf", 0),
    C("\xc0\x80", 0),     /* overlong NUL */
    C("\xc1\xbf", 0),     /* overlong */
    C("\xe0\x80\x80", 0), /* overlong 3-byte */
    C("\xe0\x9f\xbf", 0),
    C("\xf0\x80\x80\x80", 0), /* overlong 4-byte */
    C("\xf0\x8f\xbf\xbf", 0),
    C("\xed\xa0\x80", 0),     /* U+D800 surrogate */
    C("\xed\xbf\xbf", 0),     /* U+DFFF */
    C("\xf4\x90\x80\x80", 0), /* U+110000 */
    C("\xf5\x80\x80\x80", 0),
    C("\xf8\x88\x80\x80\x80", 0), /* 5-byte form */
    C("\xfe", 0),
    C("\xff", 0),
    C("\xc2", 0), /* truncated */
    C("\xe2\x82", 0),
    C("\xf0\x9f\x98", 0),
    C("\xc2\x41", 0), /* continuation missing */
    C("\xe2\x28\xa1", 0),
    C("abcdefgh\xc3\xa9ijklmnop\xff", 0), /* after the 8-byte fast path */
    C("abcdefghijklmnopqrstuvwxyz0123456789\xe2\x82\xac", 1),
};

static void test_whole(void **s) {
  (void)s;
  for (size_t i = 0; i < sizeof(CASES) / sizeof(CASES[0]); i++)
    if (wsmsg_utf8_valid(CASES[i].s, CASES[i].n) != CASES[i].valid)
      fail_msg("case %zu: expected %d", i, CASES[i].valid);
}

/* Feeding in two pieces, split anywhere, gives the same verdict; a reject
 * is known as soon as the bad byte is seen. */
static void test_split(void **s) {
  (void)s;
  for (size_t i = 0; i < sizeof(CASES) / sizeof(CASES[0]); i++) {
    const uint8_t *p = (const uint8_t *)CASES[i].s;
    size_t n = CASES[i].n;
    for (size_t cut = 0; cut <= n; cut++) {
      uint32_t st = wsm_utf8_feed(WSM_UTF8_ACCEPT, p, cut);
      st = wsm_utf8_feed(st, p + cut, n - cut);
      assert_int_equal(st == WSM_UTF8_ACCEPT, CASES[i].valid);
    }
    /* byte at a time */
    uint32_t st = WSM_UTF8_ACCEPT;
    for (size_t k = 0; k < n; k++)
      st = wsm_utf8_feed(st, p + k, 1);
    assert_int_equal(st == WSM_UTF8_ACCEPT, CASES[i].valid);
  }
}

static void test_fail_fast(void **s) {
  (void)s;
  /* the reject is sticky and reported at the first bad byte */
  uint32_t st = wsm_utf8_feed(WSM_UTF8_ACCEPT, (const uint8_t *)"ab\xff", 3);
  assert_int_equal(st, WSM_UTF8_REJECT);
  st = wsm_utf8_feed(st, (const uint8_t *)"cd", 2);
  assert_int_equal(st, WSM_UTF8_REJECT);
  /* an incomplete sequence is neither accept nor reject */
  st = wsm_utf8_feed(WSM_UTF8_ACCEPT, (const uint8_t *)"\xe2\x82", 2);
  assert_true(st != WSM_UTF8_ACCEPT && st != WSM_UTF8_REJECT);
}

static void test_cut(void **s) {
  (void)s;
  const char *e = "a\xe2\x82\xac"; /* a€ */
  assert_int_equal(wsm_utf8_cut(e, 4, 123), 4);
  assert_int_equal(wsm_utf8_cut(e, 4, 3), 1);
  assert_int_equal(wsm_utf8_cut(e, 4, 2), 1);
  assert_int_equal(wsm_utf8_cut(e, 4, 1), 1);
  assert_int_equal(wsm_utf8_cut(e, 4, 0), 0);
}

/* Every code point round trip: all valid scalar values encode to sequences
 * the validator accepts. */
static void test_all_scalars(void **s) {
  (void)s;
  for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
    uint8_t b[4];
    size_t n;
    if (cp < 0x80) {
      b[0] = (uint8_t)cp;
      n = 1;
    } else if (cp < 0x800) {
      b[0] = (uint8_t)(0xC0 | cp >> 6);
      b[1] = (uint8_t)(0x80 | (cp & 0x3F));
      n = 2;
    } else if (cp < 0x10000) {
      b[0] = (uint8_t)(0xE0 | cp >> 12);
      b[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
      b[2] = (uint8_t)(0x80 | (cp & 0x3F));
      n = 3;
    } else {
      b[0] = (uint8_t)(0xF0 | cp >> 18);
      b[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
      b[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
      b[3] = (uint8_t)(0x80 | (cp & 0x3F));
      n = 4;
    }
    int want = !(cp >= 0xD800 && cp <= 0xDFFF);
    if (wsmsg_utf8_valid(b, n) != want)
      fail_msg("U+%04X: expected %d", cp, want);
  }
}

static void test_scrub(void **s) {
  (void)s;
  static const struct {
    const char *in, *out;
  } C[] = {
      {"", ""},
      {"plain", "plain"},
      {"near '\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80'",
       "near '\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80'"},
      {"near '\\u000\xc8'", "near '\\u000?'"}, /* cut after the lead */
      {"x\xe2\x82", "x??"},                    /* cut at the end */
      {"\x80\xbf.", "??."},                    /* stray continuations */
      {"\xed\xa0\x80", "???"},                 /* a surrogate */
      {"\xf0\x9f\x98 ok", "??? ok"},           /* 3 of 4 bytes */
      {"\xc0\xaf", "??"},                      /* overlong */
  };
  for (size_t i = 0; i < sizeof(C) / sizeof(C[0]); i++) {
    char buf[64];
    snprintf(buf, sizeof(buf), "%s", C[i].in);
    wsm_utf8_scrub(buf);
    assert_string_equal(buf, C[i].out);
    assert_true(wsmsg_utf8_valid(buf, strlen(buf)));
  }
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_whole),       cmocka_unit_test(test_split),
      cmocka_unit_test(test_fail_fast),   cmocka_unit_test(test_cut),
      cmocka_unit_test(test_all_scalars), cmocka_unit_test(test_scrub),
  };
  return unit_run("utf8", tests, argc, argv);
}
