/* chat_server — a multi-room chat on wsmsg topics that runs on many cores
 * (--workers N: one epoll loop per thread on one SO_REUSEPORT port) and
 * many processes (--redis HOST:PORT: Redis pub/sub between them, hiredis'
 * async API on the same loop), behind a load balancer (haproxy.cfg).
 *
 *   chat_server --port P [--host H] [--redis HOST:PORT] [--workers N]
 *               [--drain-timeout MS] [--verbose]
 *
 * The WebSocket is at "/" (a plain GET / gets a page to chat from a
 * browser); GET /healthz answers 200 "ok" while the server
 * takes clients (and, with --redis, is subscribed to Redis), else 503.
 * Messages (JSON, validated by schema, routed by "type"):
 *   client -> server  {"type":"join","room":R,"name":N}
 *                     {"type":"say","room":R,"text":T}
 *                     {"type":"leave","room":R}
 *   server -> client  {"type":"joined","room":R,"name":N}
 *                     {"type":"said","room":R,"from":N,"text":T,"id":ID}
 *                     {"type":"left","room":R,"name":N}
 *                     {"type":"error","detail":...} (a request that makes
 *                     no sense: say in a room not joined...), and the
 *                     standard validation error reply for invalid JSON.
 *
 * A room is the topic "room:R" of the worker's wsmsg_topics.  A message is
 * published to the local topic (every local member gets it, the sender
 * too) and the publish hook forwards it to Redis (PUBLISH chat:room:R
 * "<origin> <json>").  Every worker PSUBSCRIBEs chat:room:*; what Redis
 * delivers from another origin is published to the local topic with
 * WSMSG_PUBLISH_REMOTE (not forwarded again); its own messages coming back
 * are skipped.  So every member gets every message once, in each sender's
 * order.  Pub/sub is at-most-once: while a worker is cut off from Redis it
 * neither sends to nor hears from the others (docs/scaling.md).  Without
 * --redis, workers hand messages to each other through an in-process queue
 * instead (one mutex + eventfd per worker).
 *
 * SIGTERM/SIGINT: each worker stops listening, drains
 * (wsmsg_server_drain: 1001 "going away", 503 to late upgrades) and exits
 * when its connections are closed or --drain-timeout (5 s) passes. */
#include <wsmsg.h>

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#define MAX_ROOMS 32     /* per connection */
#define ROOM_MAX 64      /* bytes of a room name (schema: maxLength) */
#define NAME_MAX_ 32     /* bytes of a member name */
#define BACKOFF_MIN 100  /* ms, Redis reconnect */
#define BACKOFF_MAX 2000 /* ms */

enum { K_LISTEN = 1, K_CLIENT, K_WAKE, K_REDIS, K_INBOX };

typedef struct member {
  struct member *next;
  char room[4 * ROOM_MAX + 1]; /* maxLength counts characters */
  char name[4 * NAME_MAX_ + 1];
} member;

struct worker;

typedef struct client {
  int kind; /* K_CLIENT: first, epoll's tag */
  int fd;
  uint32_t events;
  wsmsg_conn *conn;
  struct worker *w;
  member *rooms;
  unsigned nrooms;
  struct client *prev, *next;
} client;

/* hiredis' event hooks on our epoll */
typedef struct rlink {
  int kind; /* K_REDIS */
  struct worker *w;
  redisAsyncContext *ac;
  int fd;
  uint32_t events;
  int added;
} rlink;

/* a "left" to publish once the current callback is over */
typedef struct pending {
  struct pending *next;
  char topic[5 + 4 * ROOM_MAX + 1];
  char *json;
} pending;

/* in-process hand-off between workers (no --redis) */
typedef struct handoff {
  struct handoff *next;
  size_t tlen, dlen;
  char buf[]; /* topic\0data */
} handoff;

typedef struct worker {
  int id;
  int ep, lfd, wake, inbox_fd;
  int tag_listen, tag_wake, tag_inbox;
  wsmsg_server *srv;
  wsmsg_topics *topics;
  wsmsg_timers *timers;
  client *clients;
  size_t nclients;
  /* Redis */
  redisAsyncContext *pub, *sub;
  int pub_up, sub_up; /* connected; sub_up: PSUBSCRIBE confirmed */
  int quitting;       /* freeing the contexts: no reconnect */
  uint64_t retry_at;
  unsigned backoff;
  char origin[48];
  size_t origin_len;
  unsigned long long seq;
  pending *pend;
  /* hand-off inbox */
  pthread_mutex_t mu;
  handoff *in_head, *in_tail;
  pthread_t th;
} worker;

static struct {
  const char *host;
  int port;
  char redis_host[256];
  int redis_port;
  int use_redis;
  int workers;
  long drain_ms;
  int verbose;
  wsmsg_endpoint *ep;
  worker *w;
} G;

static uint64_t now_ms(void) { return wsmsg_now_ms(); }

static void logf_(worker *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void logf_(worker *w, const char *fmt, ...) {
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  fprintf(stderr, "chat_server[%d.%d]: %s\n", (int)getpid(), w ? w->id : -1,
          line);
}

/* ---- clients ---- */

static void set_interest(client *cl, uint32_t want) {
  if (want == cl->events)
    return;
  struct epoll_event ev = {.events = want, .data.ptr = cl};
  epoll_ctl(cl->w->ep, EPOLL_CTL_MOD, cl->fd, &ev);
  cl->events = want;
}

static void drop(client *cl) {
  worker *w = cl->w;
  epoll_ctl(w->ep, EPOLL_CTL_DEL, cl->fd, NULL);
  if (cl->conn) {
    wsmsg_conn_abort(cl->conn); /* on_close runs if it was open */
    wsmsg_conn_free(cl->conn);
  } else {
    shutdown(cl->fd, SHUT_WR);
  }
  close(cl->fd);
  for (member *m = cl->rooms, *n; m; m = n) {
    n = m->next;
    free(m);
  }
  if (cl->prev)
    cl->prev->next = cl->next;
  else
    w->clients = cl->next;
  if (cl->next)
    cl->next->prev = cl->prev;
  w->nclients--;
  free(cl);
}

static void serve(client *cl, uint32_t revents) {
  int r = wsmsg_conn_io_fd(cl->conn, cl->fd);
  if (r != 0) { /* done (1) or a socket error */
    drop(cl);
    return;
  }
  int reading = wsmsg_conn_want_read(cl->conn);
  if ((revents & (EPOLLERR | EPOLLHUP)) && !reading) {
    drop(cl);
    return;
  }
  set_interest(cl, (reading ? EPOLLIN : 0u) |
                       (wsmsg_conn_want_write(cl->conn) ? EPOLLOUT : 0u));
}

/* a publish, a broadcast or the drain gave this connection output */
static void on_output(wsmsg_conn *conn, void *user) {
  (void)conn;
  client *cl = user;
  if (cl)
    set_interest(cl, cl->events | EPOLLOUT);
}

static void accept_all(worker *w) {
  for (int i = 0; i < 256; i++) {
    int fd = accept4(w->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
      return;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    client *cl = calloc(1, sizeof(*cl));
    if (!cl || !(cl->conn = wsmsg_server_accept(w->srv, cl))) {
      free(cl);
      close(fd);
      continue;
    }
    cl->kind = K_CLIENT;
    cl->fd = fd;
    cl->w = w;
    cl->events = EPOLLIN;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = cl};
    epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &ev);
    wsmsg_timers_add(w->timers, cl->conn);
    cl->next = w->clients;
    if (w->clients)
      w->clients->prev = cl;
    w->clients = cl;
    w->nclients++;
  }
}

/* ---- the bus ---- */

static worker *self_of(wsmsg_topics *t) {
  for (int i = 0; i < G.workers; i++)
    if (G.w[i].topics == t)
      return &G.w[i];
  return NULL;
}

/* The publish hook: every local publish goes to Redis (or, without Redis,
 * to the other workers' inboxes). */
static void on_publish(wsmsg_topics *t, const char *topic, int type,
                       const void *data, size_t len, void *user) {
  (void)type;
  worker *w = user ? user : self_of(t);
  if (G.use_redis) {
    if (!w->pub_up)
      return; /* at-most-once: lost while Redis is away (docs) */
    char chan[5 + 5 + 4 * ROOM_MAX + 1];
    int cn = snprintf(chan, sizeof(chan), "chat:%s", topic);
    char *payload = malloc(w->origin_len + 1 + len);
    if (!payload || cn < 0 || (size_t)cn >= sizeof(chan)) {
      free(payload);
      return;
    }
    memcpy(payload, w->origin, w->origin_len);
    payload[w->origin_len] = ' ';
    memcpy(payload + w->origin_len + 1, data, len);
    redisAsyncCommand(w->pub, NULL, NULL, "PUBLISH %b %b", chan, (size_t)cn,
                      payload, w->origin_len + 1 + len);
    free(payload);
    return;
  }
  size_t tl = strlen(topic);
  for (int i = 0; i < G.workers; i++) {
    worker *o = &G.w[i];
    if (o == w)
      continue;
    handoff *h = malloc(sizeof(*h) + tl + 1 + len);
    if (!h)
      continue;
    h->next = NULL;
    h->tlen = tl;
    h->dlen = len;
    memcpy(h->buf, topic, tl + 1);
    memcpy(h->buf + tl + 1, data, len);
    pthread_mutex_lock(&o->mu);
    if (o->in_tail)
      o->in_tail->next = h;
    else
      o->in_head = h;
    o->in_tail = h;
    pthread_mutex_unlock(&o->mu);
    uint64_t one = 1;
    if (write(o->inbox_fd, &one, sizeof(one)) < 0) { /* counter full: fine */
    }
  }
}

static void drain_inbox(worker *w) {
  uint64_t v;
  if (read(w->inbox_fd, &v, sizeof(v)) < 0) { /* nothing: fine */
  }
  pthread_mutex_lock(&w->mu);
  handoff *h = w->in_head;
  w->in_head = w->in_tail = NULL;
  pthread_mutex_unlock(&w->mu);
  while (h) {
    handoff *n = h->next;
    wsmsg_topic_publish(w->topics, h->buf, WSMSG_EV_TEXT, h->buf + h->tlen + 1,
                        h->dlen, WSMSG_PUBLISH_REMOTE);
    free(h);
    h = n;
  }
}

/* hiredis event hooks */
static void r_update(rlink *l) {
  worker *w = l->w;
  struct epoll_event ev = {.events = l->events, .data.ptr = l};
  if (!l->added && l->events) {
    epoll_ctl(w->ep, EPOLL_CTL_ADD, l->fd, &ev);
    l->added = 1;
  } else if (l->added && !l->events) {
    epoll_ctl(w->ep, EPOLL_CTL_DEL, l->fd, NULL);
    l->added = 0;
  } else if (l->added) {
    epoll_ctl(w->ep, EPOLL_CTL_MOD, l->fd, &ev);
  }
}
static void r_add_read(void *p) {
  rlink *l = p;
  l->events |= EPOLLIN;
  r_update(l);
}
static void r_del_read(void *p) {
  rlink *l = p;
  l->events &= ~(uint32_t)EPOLLIN;
  r_update(l);
}
static void r_add_write(void *p) {
  rlink *l = p;
  l->events |= EPOLLOUT;
  r_update(l);
}
static void r_del_write(void *p) {
  rlink *l = p;
  l->events &= ~(uint32_t)EPOLLOUT;
  r_update(l);
}
static void r_cleanup(void *p) {
  rlink *l = p;
  l->events = 0;
  r_update(l);
  free(l);
}

static void schedule_retry(worker *w) {
  w->retry_at = now_ms() + w->backoff;
  w->backoff = w->backoff * 2 > BACKOFF_MAX ? BACKOFF_MAX : w->backoff * 2;
}

static void on_pmessage(redisAsyncContext *ac, void *r, void *priv) {
  (void)ac;
  worker *w = priv;
  redisReply *rep = r;
  if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements < 3)
    return;
  const char *kind = rep->element[0]->str;
  if (!strcmp(kind, "psubscribe")) {
    w->sub_up = 1;
    w->backoff = BACKOFF_MIN;
    logf_(w, "redis: subscribed");
    return;
  }
  if (strcmp(kind, "pmessage") || rep->elements < 4)
    return;
  const redisReply *ch = rep->element[2], *msg = rep->element[3];
  if (ch->type != REDIS_REPLY_STRING || msg->type != REDIS_REPLY_STRING ||
      ch->len < 5)
    return;
  const char *sp = memchr(msg->str, ' ', (size_t)msg->len);
  if (!sp)
    return;
  size_t olen = (size_t)(sp - msg->str);
  if (olen == w->origin_len && !memcmp(msg->str, w->origin, olen))
    return; /* our own, delivered locally already */
  char topic[5 + 4 * ROOM_MAX + 1];
  if ((size_t)ch->len - 5 >= sizeof(topic))
    return;
  memcpy(topic, ch->str + 5, (size_t)ch->len - 5); /* strip "chat:" */
  topic[ch->len - 5] = 0;
  size_t dlen = (size_t)msg->len - olen - 1;
  wsmsg_topic_publish(w->topics, topic, WSMSG_EV_TEXT, sp + 1, dlen,
                      WSMSG_PUBLISH_REMOTE);
}

static void on_connect(const redisAsyncContext *ac, int status) {
  worker *w = ac->data;
  int is_pub = ac == w->pub;
  if (status != REDIS_OK) {
    if (is_pub)
      w->pub = NULL;
    else
      w->sub = NULL;
    schedule_retry(w);
    return;
  }
  if (is_pub) {
    w->pub_up = 1;
    logf_(w, "redis: publisher connected");
  } else {
    redisAsyncCommand(w->sub, on_pmessage, w, "PSUBSCRIBE chat:room:*");
  }
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
  (void)status;
  worker *w = ac->data;
  if (ac == w->pub) {
    w->pub = NULL;
    w->pub_up = 0;
  } else {
    w->sub = NULL;
    w->sub_up = 0;
  }
  if (w->quitting)
    return;
  logf_(w, "redis: connection lost, reconnecting");
  schedule_retry(w);
}

static redisAsyncContext *redis_open(worker *w) {
  redisAsyncContext *ac = redisAsyncConnect(G.redis_host, G.redis_port);
  if (!ac)
    return NULL;
  if (ac->err) {
    redisAsyncFree(ac);
    return NULL;
  }
  rlink *l = calloc(1, sizeof(*l));
  if (!l) {
    redisAsyncFree(ac);
    return NULL;
  }
  l->kind = K_REDIS;
  l->w = w;
  l->ac = ac;
  l->fd = ac->c.fd;
  ac->data = w;
  ac->ev.data = l;
  ac->ev.addRead = r_add_read;
  ac->ev.delRead = r_del_read;
  ac->ev.addWrite = r_add_write;
  ac->ev.delWrite = r_del_write;
  ac->ev.cleanup = r_cleanup;
  redisAsyncSetConnectCallback(ac, on_connect);
  redisAsyncSetDisconnectCallback(ac, on_disconnect);
  return ac;
}

static void redis_retry(worker *w) {
  w->retry_at = 0;
  if (!w->pub && !(w->pub = redis_open(w)))
    schedule_retry(w);
  if (!w->sub && !(w->sub = redis_open(w)))
    schedule_retry(w);
}

/* ---- the chat ---- */

static member *find_member(client *cl, const char *room) {
  for (member *m = cl->rooms; m; m = m->next)
    if (!strcmp(m->room, room))
      return m;
  return NULL;
}

static void send_error(wsmsg_conn *c, const char *detail) {
  json_t *j = json_pack("{s:s,s:s}", "type", "error", "detail", detail);
  if (j)
    wsmsg_send_json(c, j);
  json_decref(j);
}

static void publish(worker *w, const char *room, json_t *msg) {
  char topic[5 + 4 * ROOM_MAX + 1];
  snprintf(topic, sizeof(topic), "room:%s", room);
  wsmsg_topic_publish_json(w->topics, topic, msg, 0);
}

static void on_join(wsmsg_conn *c, json_t *msg, void *user) {
  client *cl = user;
  const char *room = json_string_value(json_object_get(msg, "room"));
  const char *name = json_string_value(json_object_get(msg, "name"));
  if (find_member(cl, room)) {
    send_error(c, "already in this room");
    return;
  }
  if (cl->nrooms >= MAX_ROOMS) {
    send_error(c, "too many rooms");
    return;
  }
  member *m = calloc(1, sizeof(*m));
  if (!m)
    return;
  snprintf(m->room, sizeof(m->room), "%s", room);
  snprintf(m->name, sizeof(m->name), "%s", name);
  char topic[5 + 4 * ROOM_MAX + 1];
  snprintf(topic, sizeof(topic), "room:%s", room);
  if (wsmsg_topic_subscribe(cl->w->topics, c, topic) < 0) {
    free(m);
    send_error(c, "cannot join now");
    return;
  }
  m->next = cl->rooms;
  cl->rooms = m;
  cl->nrooms++;
  json_t *j =
      json_pack("{s:s,s:s,s:s}", "type", "joined", "room", room, "name", name);
  publish(cl->w, room, j);
  json_decref(j);
}

static void on_say(wsmsg_conn *c, json_t *msg, void *user) {
  client *cl = user;
  worker *w = cl->w;
  const char *room = json_string_value(json_object_get(msg, "room"));
  const char *text = json_string_value(json_object_get(msg, "text"));
  member *m = find_member(cl, room);
  if (!m) {
    send_error(c, "not in this room");
    return;
  }
  char id[80];
  snprintf(id, sizeof(id), "%s-%llu", w->origin, ++w->seq);
  json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:s}", "type", "said", "room", room,
                        "from", m->name, "text", text, "id", id);
  publish(w, room, j);
  json_decref(j);
}

static void on_leave(wsmsg_conn *c, json_t *msg, void *user) {
  client *cl = user;
  const char *room = json_string_value(json_object_get(msg, "room"));
  member **pp = &cl->rooms;
  while (*pp && strcmp((*pp)->room, room))
    pp = &(*pp)->next;
  if (!*pp) {
    send_error(c, "not in this room");
    return;
  }
  member *m = *pp;
  json_t *j =
      json_pack("{s:s,s:s,s:s}", "type", "left", "room", room, "name", m->name);
  publish(cl->w, room, j); /* the leaver hears it too */
  json_decref(j);
  char topic[5 + 4 * ROOM_MAX + 1];
  snprintf(topic, sizeof(topic), "room:%s", room);
  wsmsg_topic_unsubscribe(cl->w->topics, c, topic);
  *pp = m->next;
  cl->nrooms--;
  free(m);
}

/* A member went away: tell its rooms, after the current callback (which
 * may be a publish: the library refuses a publish inside it). */
static void on_close(wsmsg_conn *c, const wsmsg_close_info *ci, void *user) {
  (void)c;
  (void)ci;
  client *cl = user;
  for (member *m = cl->rooms; m; m = m->next) {
    pending *p = calloc(1, sizeof(*p));
    json_t *j = json_pack("{s:s,s:s,s:s}", "type", "left", "room", m->room,
                          "name", m->name);
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!p || !s) {
      free(p);
      free(s);
      continue;
    }
    snprintf(p->topic, sizeof(p->topic), "room:%s", m->room);
    p->json = s;
    p->next = cl->w->pend;
    cl->w->pend = p;
  }
}

static void flush_pending(worker *w) {
  while (w->pend) {
    pending *p = w->pend;
    w->pend = p->next;
    wsmsg_topic_publish(w->topics, p->topic, WSMSG_EV_TEXT, p->json,
                        strlen(p->json), 0);
    free(p->json);
    free(p);
  }
}

/* GET / without an upgrade: a page to chat from a browser */
static const char PAGE[] =
    "<!doctype html><meta charset=utf-8><title>wsmsg chat</title>\n"
    "<style>body{font:15px sans-serif;margin:2em}#log{border:1px solid #ccc;"
    "height:20em;overflow:auto;padding:.5em;white-space:pre-wrap}</style>\n"
    "<p>name <input id=name value=guest size=10> room <input id=room "
    "value=lobby size=10> <button id=join>join</button></p>\n"
    "<div id=log></div><p><input id=text size=50> <button id=say>say</button>"
    "</p>\n<script>\n"
    "const $=id=>document.getElementById(id),log=t=>{$('log').textContent+=t+"
    "'\\n';$('log').scrollTop=1e9};\n"
    "const ws=new WebSocket((location.protocol=='https:'?'wss://':'ws://')+"
    "location.host+'/');\n"
    "ws.onmessage=e=>{const m=JSON.parse(e.data);log(m.type=='said'?"
    "`[${m.room}] ${m.from}: ${m.text}`:m.type=='joined'||m.type=='left'?"
    "`[${m.room}] ${m.name} ${m.type}`:e.data)};\n"
    "ws.onclose=e=>log('closed '+e.code+' '+e.reason);\n"
    "$('join').onclick=()=>ws.send(JSON.stringify({type:'join',room:"
    "$('room').value,name:$('name').value}));\n"
    "$('say').onclick=()=>{ws.send(JSON.stringify({type:'say',room:"
    "$('room').value,text:$('text').value}));$('text').value=''};\n"
    "</script>\n";

/* GET /healthz for the balancer, and the page at / */
static int on_http(wsmsg_conn *c, const wsmsg_request *req, void *user) {
  client *cl = user;
  const char *path = wsmsg_request_path(req);
  if (path && !strcmp(path, "/") && !wsmsg_request_header(req, "Upgrade")) {
    wsmsg_http_respond(c, 200, "Content-Type: text/html; charset=utf-8\r\n",
                       PAGE, sizeof(PAGE) - 1);
    return 0;
  }
  if (!path || strcmp(path, "/healthz"))
    return 0; /* the upgrade (or wsmsg's 404/426) */
  worker *w = cl->w;
  int ok = !wsmsg_server_draining(w->srv) &&
           (!G.use_redis || (w->pub_up && w->sub_up));
  const char *body = ok ? "ok\n" : "unavailable\n";
  wsmsg_http_respond(c, ok ? 200 : 503, "Content-Type: text/plain\r\n", body,
                     strlen(body));
  return 0;
}

/* ---- one worker: one epoll loop ---- */

static int listen_on(const char *host, int port) {
  struct addrinfo hints = {.ai_family = AF_UNSPEC,
                           .ai_socktype = SOCK_STREAM,
                           .ai_flags = AI_PASSIVE},
                  *ai;
  char ps[16];
  snprintf(ps, sizeof(ps), "%d", port);
  if (getaddrinfo(host, ps, &hints, &ai) != 0)
    return -1;
  int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  if (fd >= 0) {
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 4096) < 0) {
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(ai);
  return fd;
}

static int64_t min_wait(int64_t a, int64_t b) {
  return a < 0 ? b : b < 0 ? a : a < b ? a : b;
}

static void *worker_main(void *arg) {
  worker *w = arg;
  w->tag_listen = K_LISTEN;
  w->tag_wake = K_WAKE;
  w->tag_inbox = K_INBOX;
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &w->tag_listen};
  epoll_ctl(w->ep, EPOLL_CTL_ADD, w->lfd, &ev);
  ev.data.ptr = &w->tag_wake;
  epoll_ctl(w->ep, EPOLL_CTL_ADD, w->wake, &ev);
  ev.data.ptr = &w->tag_inbox;
  epoll_ctl(w->ep, EPOLL_CTL_ADD, w->inbox_fd, &ev);
  if (G.use_redis)
    redis_retry(w);
  int stopping = 0;
  uint64_t stop_at = 0;
  struct epoll_event evs[256];
  for (;;) {
    uint64_t now = now_ms();
    if (G.use_redis && w->retry_at && now >= w->retry_at && !stopping)
      redis_retry(w);
    int64_t wait = wsmsg_timers_next_ms(w->timers, now);
    if (G.use_redis && w->retry_at)
      wait =
          min_wait(wait, w->retry_at > now ? (int64_t)(w->retry_at - now) : 0);
    if (stopping) {
      if (w->nclients == 0 || now >= stop_at)
        break;
      wait = min_wait(wait, (int64_t)(stop_at - now));
    }
    int timeout = wait < 0 ? -1 : wait > 60000 ? 60000 : (int)wait;
    int n = epoll_wait(w->ep, evs, 256, timeout);
    int stop = 0;
    for (int i = 0; i < n; i++) {
      int kind = *(int *)evs[i].data.ptr;
      if (kind == K_LISTEN) {
        if (!stopping)
          accept_all(w);
      } else if (kind == K_WAKE) {
        uint64_t v;
        if (read(w->wake, &v, sizeof(v)) > 0)
          stop = 1;
      } else if (kind == K_INBOX) {
        drain_inbox(w);
      } else if (kind == K_REDIS) {
        rlink *l = evs[i].data.ptr;
        redisAsyncContext *ac = l->ac;
        /* a callback may free the context (and l): read then write */
        int rd = (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) != 0;
        int wr = (evs[i].events & EPOLLOUT) != 0;
        redisAsyncContext **slot = ac == w->pub ? &w->pub : &w->sub;
        if (rd)
          redisAsyncHandleRead(ac);
        if (wr && *slot == ac)
          redisAsyncHandleWrite(ac);
      } else {
        serve(evs[i].data.ptr, evs[i].events);
      }
      flush_pending(w);
    }
    wsmsg_conn *due;
    while ((due = wsmsg_timers_expire(w->timers, now_ms())) != NULL)
      serve(wsmsg_conn_user(due), 0);
    flush_pending(w);
    if (stop && !stopping) {
      stopping = 1;
      stop_at = now_ms() + (uint64_t)G.drain_ms;
      epoll_ctl(w->ep, EPOLL_CTL_DEL, w->lfd, NULL);
      close(w->lfd);
      w->lfd = -1;
      int64_t k = wsmsg_server_drain(w->srv);
      logf_(w, "draining: %lld connection(s) told 1001", (long long)k);
      for (client *cl = w->clients, *next; cl; cl = next) {
        next = cl->next;
        serve(cl, 0);
      }
      flush_pending(w);
    }
  }
  while (w->clients)
    drop(w->clients);
  flush_pending(w);
  /* what was published last may still sit in hiredis' buffer: write it
   * (bounded) so a drain loses nothing it accepted */
  for (int i = 0; i < 50 && w->pub && w->pub_up && sdslen(w->pub->c.obuf);
       i++) {
    struct pollfd p = {.fd = w->pub->c.fd, .events = POLLOUT};
    if (poll(&p, 1, 20) > 0)
      redisAsyncHandleWrite(w->pub);
  }
  w->quitting = 1;
  if (w->pub)
    redisAsyncFree(w->pub);
  if (w->sub)
    redisAsyncFree(w->sub);
  logf_(w, "bye");
  return NULL;
}

/* ---- main ---- */

static const char JOIN_SCHEMA[] =
    "{\"type\":\"object\",\"required\":[\"type\",\"room\",\"name\"],"
    "\"properties\":{\"type\":{\"const\":\"join\"},"
    "\"room\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":64},"
    "\"name\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":32}}}";
static const char SAY_SCHEMA[] =
    "{\"type\":\"object\",\"required\":[\"type\",\"room\",\"text\"],"
    "\"properties\":{\"type\":{\"const\":\"say\"},"
    "\"room\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":64},"
    "\"text\":{\"type\":\"string\",\"maxLength\":4096}}}";
static const char LEAVE_SCHEMA[] =
    "{\"type\":\"object\",\"required\":[\"type\",\"room\"],"
    "\"properties\":{\"type\":{\"const\":\"leave\"},"
    "\"room\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":64}}}";

static void usage(void) {
  fprintf(stderr, "usage: chat_server --port P [--host H] [--redis HOST:PORT] "
                  "[--workers N] [--drain-timeout MS] [--verbose]\n");
  exit(2);
}

static long num_arg(const char *s, long lo, long hi) {
  char *end;
  long v = strtol(s, &end, 10);
  if (!*s || *end || v < lo || v > hi)
    usage();
  return v;
}

int main(int argc, char **argv) {
  G.host = "127.0.0.1";
  G.port = -1;
  G.workers = 1;
  G.drain_ms = 5000;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--verbose")) {
      G.verbose = 1;
      continue;
    }
    if (i + 1 >= argc)
      usage();
    const char *v = argv[++i];
    if (!strcmp(a, "--port"))
      G.port = (int)num_arg(v, 0, 65535);
    else if (!strcmp(a, "--host"))
      G.host = v;
    else if (!strcmp(a, "--workers"))
      G.workers = (int)num_arg(v, 1, 64);
    else if (!strcmp(a, "--drain-timeout"))
      G.drain_ms = num_arg(v, 0, 600000);
    else if (!strcmp(a, "--redis")) {
      const char *colon = strrchr(v, ':');
      if (!colon || colon == v || (size_t)(colon - v) >= sizeof(G.redis_host))
        usage();
      memcpy(G.redis_host, v, (size_t)(colon - v));
      G.redis_port = (int)num_arg(colon + 1, 1, 65535);
      G.use_redis = 1;
    } else
      usage();
  }
  if (G.port < 0)
    usage();

  char err[256];
  wsmsg_schema *js = NULL, *ss = NULL, *ls = NULL;
  if (wsmsg_schema_compile(JOIN_SCHEMA, sizeof(JOIN_SCHEMA) - 1, 0, &js, err,
                           sizeof(err)) ||
      wsmsg_schema_compile(SAY_SCHEMA, sizeof(SAY_SCHEMA) - 1, 0, &ss, err,
                           sizeof(err)) ||
      wsmsg_schema_compile(LEAVE_SCHEMA, sizeof(LEAVE_SCHEMA) - 1, 0, &ls, err,
                           sizeof(err))) {
    fprintf(stderr, "chat_server: schema: %s\n", err);
    return 1;
  }
  G.ep = wsmsg_endpoint_new();
  if (!G.ep || wsmsg_endpoint_route_json(G.ep, "type", "join", js, on_join) ||
      wsmsg_endpoint_route_json(G.ep, "type", "say", ss, on_say) ||
      wsmsg_endpoint_route_json(G.ep, "type", "leave", ls, on_leave) ||
      wsmsg_endpoint_on_close(G.ep, on_close) ||
      /* a member that does not read is closed (1008), never skipped: a
       * chat client must not silently miss messages */
      wsmsg_endpoint_set_backpressure(G.ep, 1 << 20, 256 << 10,
                                      WSMSG_BACKPRESSURE_CLOSE)) {
    fprintf(stderr, "chat_server: cannot set up the endpoint\n");
    return 1;
  }

  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &mask, NULL); /* inherited by the workers */
  signal(SIGPIPE, SIG_IGN);

  G.w = calloc((size_t)G.workers, sizeof(worker));
  for (int i = 0; i < G.workers; i++) {
    worker *w = &G.w[i];
    w->id = i;
    w->backoff = BACKOFF_MIN;
    w->origin_len = (size_t)snprintf(w->origin, sizeof(w->origin), "p%dw%d",
                                     (int)getpid(), i);
    pthread_mutex_init(&w->mu, NULL);
    w->lfd = listen_on(G.host, G.port);
    if (w->lfd < 0) {
      fprintf(stderr, "chat_server: cannot listen on %s:%d: %s\n", G.host,
              G.port, strerror(errno));
      return 1;
    }
    if (G.port == 0) { /* the others share the port the first one got */
      struct sockaddr_storage ss_;
      socklen_t sl = sizeof(ss_);
      getsockname(w->lfd, (struct sockaddr *)&ss_, &sl);
      G.port = ntohs(((struct sockaddr_in *)&ss_)->sin_port);
    }
    w->ep = epoll_create1(EPOLL_CLOEXEC);
    w->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    w->inbox_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    w->srv = wsmsg_server_new(); /* one per thread: drain touches only its
                                    own connections */
    w->topics = wsmsg_topics_new();
    w->timers = wsmsg_timers_new();
    if (!w->srv || !w->topics || !w->timers ||
        wsmsg_server_route(w->srv, "/", G.ep) ||
        wsmsg_server_on_output(w->srv, on_output) ||
        wsmsg_server_on_http(w->srv, on_http) ||
        wsmsg_topics_on_publish(w->topics, on_publish, w)) {
      fprintf(stderr, "chat_server: out of memory\n");
      return 1;
    }
  }
  /* only now: the hook may hand off to any worker */
  if (G.workers == 1 && !G.use_redis)
    wsmsg_topics_on_publish(G.w[0].topics, NULL, NULL);
  fprintf(
      stderr,
      "chat_server (wsmsg %s) listening on ws://%s:%d/ with %d worker(s)%s%s\n",
      wsmsg_version(), G.host, G.port, G.workers, G.use_redis ? ", redis " : "",
      G.use_redis ? G.redis_host : "");
  for (int i = 0; i < G.workers; i++)
    pthread_create(&G.w[i].th, NULL, worker_main, &G.w[i]);
  int sig = 0;
  sigwait(&mask, &sig);
  fprintf(stderr, "chat_server: signal %d: draining\n", sig);
  for (int i = 0; i < G.workers; i++) {
    uint64_t one = 1;
    if (write(G.w[i].wake, &one, sizeof(one)) < 0)
      perror("eventfd");
  }
  for (int i = 0; i < G.workers; i++)
    pthread_join(G.w[i].th, NULL);
  for (int i = 0; i < G.workers; i++) {
    worker *w = &G.w[i];
    drain_inbox(w); /* frees what is left */
    wsmsg_topics_free(w->topics);
    wsmsg_timers_free(w->timers);
    wsmsg_server_free(w->srv);
    close(w->ep);
    close(w->wake);
    close(w->inbox_fd);
    pthread_mutex_destroy(&w->mu);
  }
  free(G.w);
  wsmsg_endpoint_free(G.ep);
  wsmsg_schema_free(js);
  wsmsg_schema_free(ss);
  wsmsg_schema_free(ls);
  fprintf(stderr, "chat_server: bye\n");
  return 0;
}
