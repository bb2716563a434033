/* libFuzzer target: permessage-deflate.  The input is an extension header
 * and a stream of frames whose payloads the fuzzer writes as they go on
 * the wire after inflating (RSV1 frames carry raw deflate data).
 *
 * Input layout:
 *   [0] config: bits 0-1 server preset (OFF, ON, LOW_MEMORY, MAX_RATIO),
 *       bit 2 streaming receive (on_chunk), bit 3 small limit (4 KiB),
 *       bit 4 echo every message (compressing it), bit 5 take over both
 *       ways, bit 6 threshold 0, bit 7 server window 8
 *   [1] n: length of the Sec-WebSocket-Extensions value that follows
 *   n bytes: the client's offer (also parsed alone, and checked as a
 *       server's answer against each client preset)
 *   the rest, frames: [b0: FIN|RSV|opcode as on the wire] [len: 2 bytes]
 *       [len payload bytes], masked with a zero key by this harness.
 *
 * Invariants: nothing crashes or leaks (ASan), every message delivered
 * is within the limit and text is UTF-8, the parser's verdict on the
 * offer agrees with whether the server answered with the extension, and
 * the server's answer is one the parser accepts. */
#include "fuzz_common.h"

#include "../../lib/internal.h"

static uint64_t limit;
static int echo;

static void on_text(wsmsg_conn *c, const char *d, size_t n, void *u) {
  (void)u;
  FZ_CHECK(n <= limit);
  FZ_CHECK(wsmsg_utf8_valid(d, n));
  if (echo)
    (void)wsmsg_send_text(c, d, n);
}

static void on_binary(wsmsg_conn *c, const uint8_t *d, size_t n, void *u) {
  (void)u;
  FZ_CHECK(n <= limit);
  if (echo)
    (void)wsmsg_send_binary(c, d, n);
}

static uint64_t chunk_total;
static void on_chunk(wsmsg_conn *c, int type, const uint8_t *d, size_t n,
                     int first, int final, void *u) {
  (void)c;
  (void)type;
  (void)d;
  (void)final;
  (void)u;
  if (first)
    chunk_total = 0;
  chunk_total += n;
  FZ_CHECK(chunk_total <= limit);
}

/* Check a header value alone: the parser on each element, and the client
 * side's check of it as an answer. */
static void check_header(const char *v) {
  size_t len;
  for (const char *s = v; (s = wsm_ext_next(s, &len)) != NULL; s += len) {
    wsm_pmd_params p;
    int r = wsm_pmd_parse(s, len, &p);
    FZ_CHECK(r >= WSM_PMD_OK && r <= WSM_PMD_SYNTAX);
    if (r == WSM_PMD_OK) {
      FZ_CHECK(p.server_wbits == 0 ||
               (p.server_wbits >= 8 && p.server_wbits <= 15));
      FZ_CHECK(p.client_wbits <= WSM_PMD_WB_NOVAL ||
               (p.client_wbits >= 8 && p.client_wbits <= 15));
    }
  }
  for (int mode = 0; mode <= WSMSG_DEFLATE_MAX_RATIO; mode++) {
    wsmsg_endpoint *ep = wsmsg_endpoint_new();
    wsmsg_endpoint_set_deflate(ep, mode);
    wsm_header h = {"Sec-WebSocket-Extensions", (char *)v};
    wsm_pmd a;
    const char *why = NULL;
    if (wsm_pmd_check_answer(&h, 1, &ep->pmd, &a, &why) == 0) {
      if (a.on) {
        FZ_CHECK(mode != WSMSG_DEFLATE_OFF);
        FZ_CHECK(a.rx_wbits >= 8 && a.rx_wbits <= 15);
        FZ_CHECK(a.tx_wbits >= 8 && a.tx_wbits <= 15);
      }
    } else {
      FZ_CHECK(why != NULL);
    }
    wsmsg_endpoint_free(ep);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz f = {data, size};
  uint8_t cfg = fz_u8(&f);
  size_t hl = fz_u8(&f);
  const uint8_t *hp;
  hl = fz_take(&f, hl, &hp);
  char hv[256];
  size_t k = 0;
  for (size_t i = 0; i < hl; i++) /* a header value has no CR, LF, NUL */
    if (hp[i] != '\r' && hp[i] != '\n' && hp[i] != 0)
      hv[k++] = (char)hp[i];
  hv[k] = 0;
  check_header(hv);

  limit = cfg & 8 ? 4096 : 1u << 20;
  echo = cfg & 16;
  wsmsg_endpoint *ep = wsmsg_endpoint_new();
  wsmsg_endpoint_on_text(ep, on_text);
  wsmsg_endpoint_on_binary(ep, on_binary);
  if (cfg & 4)
    wsmsg_endpoint_on_chunk(ep, on_chunk,
                            WSMSG_STREAM_TEXT | WSMSG_STREAM_BINARY);
  wsmsg_endpoint_set_max_message_size(ep, limit);
  wsmsg_endpoint_set_deflate(ep, cfg & 3);
  if (cfg & 32)
    wsmsg_endpoint_set_deflate_takeover(ep, 1, 1);
  if (cfg & 64)
    wsmsg_endpoint_set_deflate_threshold(ep, 0);
  if (cfg & 128)
    wsmsg_endpoint_set_deflate_window(ep, 8, 15);
  wsmsg_server *srv = wsmsg_server_new();
  wsmsg_server_route(srv, "*", ep);
  wsmsg_conn *c = wsmsg_server_accept(srv, NULL);

  char req[600];
  int rl = snprintf(req, sizeof(req),
                    "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                    "Connection: Upgrade\r\n"
                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                    "Sec-WebSocket-Version: 13\r\n"
                    "Sec-WebSocket-Extensions: %s\r\n\r\n",
                    hv);
  wsmsg_conn_recv(c, req, (size_t)rl);
  const void *out;
  size_t on = wsmsg_conn_pending(c, &out);
  if (wsmsg_conn_state(c) == WSMSG_STATE_OPEN) {
    /* the answer, if any, is a well-formed permessage-deflate element,
     * and there is one exactly when an offer was acceptable */
    const char *e = memmem(out, on, "Sec-WebSocket-Extensions: ", 26);
    bool any_ok = false;
    size_t len;
    for (const char *s = hv; (s = wsm_ext_next(s, &len)) != NULL; s += len) {
      wsm_pmd_params p;
      if (wsm_pmd_parse(s, len, &p) == WSM_PMD_OK)
        any_ok = true;
    }
    FZ_CHECK((e != NULL) == (any_ok && (cfg & 3) != 0));
    FZ_CHECK(wsmsg_conn_deflate(c) == (e != NULL));
    if (e) {
      const char *v = e + 26;
      const char *end = memmem(v, on - (size_t)(v - (const char *)out), "\r\n", 2);
      FZ_CHECK(end != NULL);
      wsm_pmd_params p;
      FZ_CHECK(wsm_pmd_parse(v, (size_t)(end - v), &p) == WSM_PMD_OK);
    }
  }
  wsmsg_conn_consume(c, on);

  /* frames, masked with a zero key: the payload goes on the wire as is */
  uint8_t *buf = malloc(14 + 65536);
  for (int guard = 0; f.n && guard < 256 && wsmsg_conn_want_read(c);
       guard++) {
    uint8_t b0 = fz_u8(&f);
    size_t n = fz_u16(&f);
    const uint8_t *pl;
    n = fz_take(&f, n, &pl);
    size_t h = 0;
    buf[h++] = b0;
    if (n < 126) {
      buf[h++] = (uint8_t)(0x80 | n);
    } else {
      buf[h++] = 0x80 | 126;
      buf[h++] = (uint8_t)(n >> 8);
      buf[h++] = (uint8_t)n;
    }
    memset(buf + h, 0, 4);
    h += 4;
    memcpy(buf + h, pl, n);
    wsmsg_conn_recv(c, buf, h + n);
    on = wsmsg_conn_pending(c, &out);
    wsmsg_conn_consume(c, on);
  }
  free(buf);
  wsmsg_conn_free(c);
  wsmsg_server_free(srv);
  wsmsg_endpoint_free(ep);
  return 0;
}
