/* Exact multipleOf: decimal arithmetic on the shortest round-trip text of
 * each number, never floating-point division.
 *
 * A JSON number within double range is D x 10^E with D an integer of at
 * most 19 digits (17 for a double's shortest representation, 19 for a
 * 64-bit integer) and |E| < 350.  Whether x = Dx 10^Ex is a multiple of
 * m = Dm 10^Em is then a question about 64-bit integers:
 *   k = Ex - Em >= 0:  Dm divides Dx 10^k: (Dx mod Dm) times 10, k times,
 *                      modulo Dm (at most ~700 steps, no bignum needed);
 *   k < 0:             Dm 10^-k divides Dx, impossible once Dm 10^-k
 *                      exceeds Dx (a 64-bit value).
 * docs/schema.md ("Numbers") says why not GMP. */
#include "schema_internal.h"

#include <float.h>
#include <stdio.h>
#include <stdlib.h>

/* a + b mod m, for a, b < m, without overflow */
static uint64_t addmod(uint64_t a, uint64_t b, uint64_t m) {
  return a >= m - b ? a - (m - b) : a + b;
}

/* 10 a mod m, for a < m */
static uint64_t mul10mod(uint64_t a, uint64_t m) {
  uint64_t a2 = addmod(a, a, m);   /* 2a */
  uint64_t a4 = addmod(a2, a2, m); /* 4a */
  uint64_t a5 = addmod(a4, a, m);  /* 5a */
  return addmod(a5, a5, m);        /* 10a */
}

static void normalize(uint64_t *d, int *e) {
  if (*d == 0) {
    *e = 0;
    return;
  }
  while (*d % 10 == 0) {
    *d /= 10;
    (*e)++;
  }
}

void wsm_decimal_of_double(double v, uint64_t *digits, int *exp) {
  /* The shortest "%.Ne" text that reads back as the same double (the
   * nearest one among the shortest, as Python's repr).  For a normal
   * double, any decimal of at most DBL_DIG (15) digits survives a round
   * trip, so if one of <= 15 digits denotes v, v printed with 15 digits is
   * that decimal padded with zeros (stripped by normalize): try 15, 16,
   * then 17 digits (17 always round-trips).  Subnormals have fewer bits,
   * so shorter texts can denote them: try every length. */
  char t[40];
  int prec = v != 0 && (v < 0 ? -v : v) < DBL_MIN ? 0 : DBL_DIG - 1;
  for (; prec < 17; prec++) {
    snprintf(t, sizeof(t), "%.*e", prec, v);
    if (strtod(t, NULL) == v)
      break;
  }
  /* t = [-]D[.DDD]e(+|-)XX */
  uint64_t d = 0;
  int nfrac = 0;
  bool frac = false;
  const char *p = t;
  if (*p == '-')
    p++;
  for (; *p && *p != 'e'; p++) {
    if (*p == '.') {
      frac = true;
      continue;
    }
    d = d * 10 + (uint64_t)(*p - '0');
    if (frac)
      nfrac++;
  }
  int e = *p == 'e' ? atoi(p + 1) : 0;
  *digits = d;
  *exp = e - nfrac;
  normalize(digits, exp);
}

void wsm_decimal_of_int(json_int_t v, uint64_t *digits, int *exp) {
  *digits = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
  *exp = 0;
  normalize(digits, exp);
}

bool wsm_decimal_multiple(uint64_t xd, int xe, uint64_t md, int me) {
  if (xd == 0)
    return true;
  if (md == 0)
    return false;
  int k = xe - me;
  if (k >= 0) {
    uint64_t r = xd % md;
    for (int i = 0; i < k && r != 0; i++)
      r = mul10mod(r, md);
    return r == 0;
  }
  /* md 10^-k must divide xd: it must not exceed it */
  uint64_t div = md;
  for (int i = 0; i < -k; i++) {
    if (div > xd / 10)
      return false;
    div *= 10;
  }
  return xd % div == 0;
}
