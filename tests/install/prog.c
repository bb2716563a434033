/* Linked against an installed wsmsg through pkg-config: computes the
 * RFC 6455 example accept key, runs a client/server pair in memory and
 * builds a JSON value with jansson itself (wsmsg.h exposes json_t, so the
 * README's link line must bring jansson). */
#include <stdio.h>
#include <string.h>
#include <wsmsg.h>

static void echo(wsmsg_conn *c, const char *d, size_t n, void *u) {
  (void)u;
  wsmsg_send_text(c, d, n);
}

int main(void) {
  char acc[32];
  wsmsg_accept_key("dGhlIHNhbXBsZSBub25jZQ==", acc, sizeof(acc));
  if (strcmp(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") != 0)
    return 1;
  wsmsg_endpoint *sep = wsmsg_endpoint_new(), *cep = wsmsg_endpoint_new();
  wsmsg_endpoint_on_text(sep, echo);
  wsmsg_server *srv = wsmsg_server_new();
  wsmsg_server_route(srv, "/echo", sep);
  wsmsg_conn *s = wsmsg_server_accept(srv, NULL);
  wsmsg_conn *c = wsmsg_client_new(cep, "localhost", "/echo", NULL);
  int sent = 0, got = 0;
  for (int i = 0; i < 20 && !got; i++) {
    const void *p;
    size_t n;
    while ((n = wsmsg_conn_pending(c, &p)) > 0) {
      wsmsg_conn_recv(s, p, n);
      wsmsg_conn_consume(c, n);
    }
    while ((n = wsmsg_conn_pending(s, &p)) > 0) {
      wsmsg_conn_recv(c, p, n);
      wsmsg_conn_consume(s, n);
    }
    if (!sent && wsmsg_conn_state(c) == WSMSG_STATE_OPEN)
      sent = wsmsg_send_text(c, "ping", 4) == 0;
    wsmsg_event ev;
    while (wsmsg_conn_next_event(c, &ev) == 1)
      if (ev.type == WSMSG_EV_TEXT && ev.len == 4 &&
          !memcmp(ev.data, "ping", 4))
        got = 1;
  }
  wsmsg_conn_free(c);
  wsmsg_conn_free(s);
  wsmsg_server_free(srv);
  wsmsg_endpoint_free(sep);
  wsmsg_endpoint_free(cep);
  json_t *j = json_pack("{s:i}", "n", 1); /* jansson, called directly */
  if (!j || json_integer_value(json_object_get(j, "n")) != 1)
    got = 0;
  json_decref(j);
  printf("wsmsg %s: %s\n", wsmsg_version(), got ? "ok" : "FAILED");
  return got ? 0 : 1;
}
