/* "format" assertions: date-time (RFC 3339), email (RFC 5321 mailbox), uuid
 * (RFC 4122 text form), ipv4 / ipv6 (inet_pton), uri (RFC 3986 URI). */
#include "schema_internal.h"

#include <arpa/inet.h>
#include <string.h>

const char *wsm_format_name(int fmt) {
  switch (fmt) {
  case WSM_FMT_DATE_TIME:
    return "date-time";
  case WSM_FMT_EMAIL:
    return "email";
  case WSM_FMT_UUID:
    return "uuid";
  case WSM_FMT_IPV4:
    return "ipv4";
  case WSM_FMT_IPV6:
    return "ipv6";
  case WSM_FMT_URI:
    return "uri";
  default:
    return "";
  }
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }
static bool is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
static bool is_hex(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* n ASCII digits at s -> value, or -1 */
static int digits(const char *s, size_t n) {
  int v = 0;
  for (size_t i = 0; i < n; i++) {
    if (!is_digit(s[i]))
      return -1;
    v = v * 10 + (s[i] - '0');
  }
  return v;
}

/* ---- date-time -------------------------------------------------------------
 */

static bool date_time(const char *s, size_t n) {
  /* YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM) : at least 20 chars */
  if (n < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') ||
      s[13] != ':' || s[16] != ':')
    return false;
  int year = digits(s, 4), mon = digits(s + 5, 2), day = digits(s + 8, 2);
  int hour = digits(s + 11, 2), min = digits(s + 14, 2),
      sec = digits(s + 17, 2);
  if (year < 0 || mon < 1 || mon > 12 || day < 1 || hour < 0 || hour > 23 ||
      min < 0 || min > 59 || sec < 0 || sec > 60)
    return false;
  static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  int dim = mdays[mon - 1];
  if (mon == 2 && ((year % 4 == 0 && year % 100 != 0) || year % 400 == 0))
    dim = 29;
  if (day > dim)
    return false;
  size_t i = 19;
  if (i < n && s[i] == '.') {
    i++;
    size_t f = i;
    while (i < n && is_digit(s[i]))
      i++;
    if (i == f)
      return false;
  }
  int off = 0; /* minutes east of UTC */
  if (i < n && (s[i] == 'Z' || s[i] == 'z')) {
    i++;
  } else if (i < n && (s[i] == '+' || s[i] == '-')) {
    if (n - i < 6 || s[i + 3] != ':')
      return false;
    int oh = digits(s + i + 1, 2), om = digits(s + i + 4, 2);
    if (oh < 0 || oh > 23 || om < 0 || om > 59)
      return false;
    off = (oh * 60 + om) * (s[i] == '-' ? -1 : 1);
    i += 6;
  } else {
    return false;
  }
  if (i != n)
    return false;
  if (sec == 60) {
    /* a leap second is 23:59:60 UTC */
    int utc = ((hour * 60 + min - off) % 1440 + 1440) % 1440;
    if (utc != 23 * 60 + 59)
      return false;
  }
  return true;
}

/* ---- hostnames, IP addresses --------------------------------------------- */

static bool hostname(const char *s, size_t n) {
  if (n == 0 || n > 253)
    return false;
  size_t label = 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (c == '.') {
      if (label == 0 || s[i - 1] == '-')
        return false;
      label = 0;
    } else if (is_alpha(c) || is_digit(c) || c == '-') {
      if (label == 0 && c == '-')
        return false;
      if (++label > 63)
        return false;
    } else {
      return false;
    }
  }
  return label > 0 && s[n - 1] != '-';
}

static bool ip(int af, const char *s, size_t n) {
  char buf[64];
  unsigned char out[16];
  if (n == 0 || n >= sizeof(buf) || memchr(s, '\0', n))
    return false;
  memcpy(buf, s, n);
  buf[n] = '\0';
  return inet_pton(af, buf, out) == 1;
}

/* ---- email --------------------------------------------------------------- */

static bool atext(char c) {
  return is_alpha(c) || is_digit(c) || (c && strchr("!#$%&'*+-/=?^_`{|}~", c));
}

static bool email(const char *s, size_t n) {
  size_t i = 0;
  if (n > 0 && s[0] == '"') {
    /* quoted-string local part */
    i = 1;
    for (;;) {
      if (i >= n)
        return false;
      char c = s[i];
      if (c == '"')
        break;
      if (c == '\\') {
        if (i + 1 >= n || (unsigned char)s[i + 1] < 0x20 ||
            (unsigned char)s[i + 1] > 0x7e)
          return false;
        i += 2;
        continue;
      }
      if ((unsigned char)c < 0x20 || (unsigned char)c > 0x7e)
        return false;
      i++;
    }
    i++; /* closing quote */
  } else {
    bool prev_dot = true; /* no leading dot */
    while (i < n && s[i] != '@') {
      if (s[i] == '.') {
        if (prev_dot)
          return false;
        prev_dot = true;
      } else if (atext(s[i])) {
        prev_dot = false;
      } else {
        return false;
      }
      i++;
    }
    if (i == 0 || prev_dot)
      return false;
  }
  if (i > 64 || i >= n || s[i] != '@')
    return false;
  const char *d = s + i + 1;
  size_t dn = n - i - 1;
  if (dn >= 2 && d[0] == '[' && d[dn - 1] == ']') {
    if (dn > 7 && strncmp(d + 1, "IPv6:", 5) == 0)
      return ip(AF_INET6, d + 6, dn - 7);
    return ip(AF_INET, d + 1, dn - 2);
  }
  return hostname(d, dn);
}

/* ---- uuid ---------------------------------------------------------------- */

static bool uuid(const char *s, size_t n) {
  if (n != 36)
    return false;
  for (size_t i = 0; i < n; i++) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (s[i] != '-')
        return false;
    } else if (!is_hex(s[i])) {
      return false;
    }
  }
  return true;
}

/* ---- uri (RFC 3986 "URI", i.e. absolute with a scheme) ------------------- */

static bool unreserved(char c) {
  return is_alpha(c) || is_digit(c) || c == '-' || c == '.' || c == '_' ||
         c == '~';
}
static bool sub_delim(char c) { return c && strchr("!$&'()*+,;=", c); }

/* Every char of s[0..n) is allowed by `extra` or unreserved / sub-delims /
 * pct-encoded. */
static bool uri_chars(const char *s, size_t n, const char *extra) {
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (c == '%') {
      if (i + 2 >= n)
        return false;
      if (!is_hex(s[i + 1]) || !is_hex(s[i + 2]))
        return false;
      i += 2;
    } else if (!(unreserved(c) || sub_delim(c) || (c && strchr(extra, c)))) {
      return false;
    }
  }
  return true;
}

static bool uri_host(const char *h, size_t n) {
  if (n > 0 && h[0] == '[') {
    if (n < 2 || h[n - 1] != ']')
      return false;
    const char *in = h + 1;
    size_t m = n - 2;
    if (m > 0 && (in[0] == 'v' || in[0] == 'V')) { /* IPvFuture */
      size_t i = 1;
      while (i < m && is_hex(in[i]))
        i++;
      if (i == 1 || i >= m || in[i] != '.' || i + 1 >= m)
        return false;
      for (i++; i < m; i++)
        if (!(unreserved(in[i]) || sub_delim(in[i]) || in[i] == ':'))
          return false;
      return true;
    }
    return ip(AF_INET6, in, m);
  }
  return uri_chars(h, n, "");
}

static bool uri(const char *s, size_t n) {
  if (memchr(s, '\0', n))
    return false;
  size_t i = 0;
  if (n == 0 || !is_alpha(s[0]))
    return false;
  while (i < n && (is_alpha(s[i]) || is_digit(s[i]) || s[i] == '+' ||
                   s[i] == '-' || s[i] == '.'))
    i++;
  if (i >= n || s[i] != ':')
    return false;
  i++;
  /* split off fragment and query */
  size_t end = n;
  const char *hash = memchr(s + i, '#', n - i);
  if (hash) {
    if (!uri_chars(hash + 1, (size_t)(s + n - hash - 1), ":@/?"))
      return false;
    end = (size_t)(hash - s);
  }
  const char *q = memchr(s + i, '?', end - i);
  if (q) {
    if (!uri_chars(q + 1, (size_t)(s + end - q - 1), ":@/?"))
      return false;
    end = (size_t)(q - s);
  }
  if (end - i >= 2 && s[i] == '/' && s[i + 1] == '/') {
    i += 2;
    const char *slash = memchr(s + i, '/', end - i);
    size_t aend = slash ? (size_t)(slash - s) : end;
    const char *a = s + i;
    size_t an = aend - i;
    const char *at = memchr(a, '@', an);
    if (at) {
      if (!uri_chars(a, (size_t)(at - a), ":"))
        return false;
      an -= (size_t)(at - a) + 1;
      a = at + 1;
    }
    /* port: after the last ':' that is not inside [...] */
    size_t hn = an;
    for (size_t k = an; k > 0; k--) {
      if (a[k - 1] == ']')
        break;
      if (a[k - 1] == ':') {
        for (size_t p = k; p < an; p++)
          if (!is_digit(a[p]))
            return false;
        hn = k - 1;
        break;
      }
    }
    if (!uri_host(a, hn))
      return false;
    i = aend;
  }
  return uri_chars(s + i, end - i, ":@/");
}

bool wsm_format_check(int fmt, const char *s, size_t n) {
  switch (fmt) {
  case WSM_FMT_DATE_TIME:
    return date_time(s, n);
  case WSM_FMT_EMAIL:
    return email(s, n);
  case WSM_FMT_UUID:
    return uuid(s, n);
  case WSM_FMT_IPV4:
    return ip(AF_INET, s, n);
  case WSM_FMT_IPV6:
    return ip(AF_INET6, s, n);
  case WSM_FMT_URI:
    return uri(s, n);
  default:
    return true;
  }
}
