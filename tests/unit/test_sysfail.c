/* Failures of the system under wsmsg are reported with their real cause.
 * This binary defines getrandom() itself (the static library's calls bind
 * to it, as in the fuzz harness), so a test can make it fail. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include <cmocka.h>
#include <wsmsg.h>

#include "run.h"

static int random_fails;
static uint8_t counter;

ssize_t getrandom(void *buf, size_t len, unsigned int flags);
ssize_t getrandom(void *buf, size_t len, unsigned int flags) {
  (void)flags;
  if (random_fails) {
    errno = EIO;
    return -1;
  }
  uint8_t *b = buf;
  for (size_t i = 0; i < len; i++)
    b[i] = counter++;
  return (ssize_t)len;
}

/* A client whose Sec-WebSocket-Key cannot be drawn ends with
 * WSMSG_ERR_IO, not WSMSG_ERR_NOMEM. */
static void test_client_key_without_randomness(void **st) {
  (void)st;
  wsmsg_endpoint *ep = wsmsg_endpoint_new();
  assert_non_null(ep);
  wsmsg_conn *c = wsmsg_client_new(ep, "localhost:1", "/ws", NULL);
  assert_non_null(c);
  random_fails = 1;
  const void *p;
  assert_int_equal(wsmsg_conn_pending(c, &p), 0);
  random_fails = 0;
  assert_int_equal(wsmsg_conn_state(c), WSMSG_STATE_CLOSED);
  assert_int_equal(wsmsg_conn_error(c), WSMSG_ERR_IO);
  assert_non_null(strstr(wsmsg_conn_error_detail(c), "getrandom"));
  /* the pull API hears it too */
  wsmsg_event ev;
  assert_int_equal(wsmsg_conn_next_event(c, &ev), 1);
  assert_int_equal(ev.type, WSMSG_EV_CLOSE);
  assert_int_equal(ev.error, WSMSG_ERR_IO);
  assert_int_equal(wsmsg_conn_done(c), 1);
  wsmsg_conn_free(c);
  /* with randomness, the same client sends its request */
  c = wsmsg_client_new(ep, "localhost:1", "/ws", NULL);
  assert_true(wsmsg_conn_pending(c, &p) > 0);
  assert_memory_equal(p, "GET /ws HTTP/1.1\r\n", 18);
  assert_int_equal(wsmsg_conn_error(c), 0);
  wsmsg_conn_free(c);
  wsmsg_endpoint_free(ep);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_client_key_without_randomness),
  };
  return unit_run("sysfail", tests, argc, argv);
}
