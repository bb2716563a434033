/* deadline_queue — FIFO queues of clients with deadlines, for the example
 * event loops (evloop.c, uv_echo_server.c: the lingering close and the
 * drain of a peer that stopped reading).
 *
 * Every entry of one queue gets the same delay, so the oldest is always the
 * first due: a push and a removal are O(1) and the loop looks only at the
 * head.  Include this header after defining `client` (typedef struct client
 * client) with these members:
 *   struct queue *q;              the queue it is in, or NULL
 *   uint64_t until;               its deadline there
 *   struct client *qprev, *qnext; its neighbours there */
#ifndef WSMSG_EXAMPLE_DEADLINE_QUEUE_H
#define WSMSG_EXAMPLE_DEADLINE_QUEUE_H

#include <stddef.h>
#include <stdint.h>

typedef struct queue {
  client *head, *tail;
} queue;

/* Take `cl` out of its queue, if it is in one. */
static inline void q_remove(client *cl) {
  queue *q = cl->q;
  if (!q)
    return;
  if (cl->qprev)
    cl->qprev->qnext = cl->qnext;
  else
    q->head = cl->qnext;
  if (cl->qnext)
    cl->qnext->qprev = cl->qprev;
  else
    q->tail = cl->qprev;
  cl->q = NULL;
  cl->qprev = cl->qnext = NULL;
}

/* Append `cl` to `q` (out of the queue it was in) with deadline `until`. */
static inline void q_push(queue *q, client *cl, uint64_t until) {
  q_remove(cl);
  cl->q = q;
  cl->until = until;
  cl->qprev = q->tail;
  cl->qnext = NULL;
  if (q->tail)
    q->tail->qnext = cl;
  else
    q->head = cl;
  q->tail = cl;
}

#endif
