/* The optional helper that drives a connection over a non-blocking fd. */
#include "internal.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

/* Bytes read per call at most, so that one busy peer cannot starve the
 * others in the host's loop (the fd stays readable: level-triggered polling
 * calls us again).  A short read ends the reading too: this helper is for
 * level-triggered loops.  256 KiB (was 1 MiB): four reads.  A pass of the
 * host's loop over 600 busy peers is then ~150 MiB of work instead of
 * ~600 MiB, and with JSON messages limited to 64 KiB by default a call
 * parses at most four worst-case documents (~10 ms).  64 KiB (one read)
 * was measured too: after a wave of 800 connections holding 1 MiB
 * messages a normal client's p99 was 196-254 ms against 16-80 ms with
 * 256 KiB (3 runs each, attack case f4, loaded machine): the backlog takes
 * four times the loop turns to drain, and the busy sockets stay ready
 * (in line before the normal client's) for longer. */
#define READ_BUDGET (256u << 10)

int wsmsg_conn_io_fd(wsmsg_conn *c, int fd) {
  if (!c || fd < 0)
    return WSMSG_ERR_INVALID_ARG;
  uint8_t buf[65536];
  size_t budget = READ_BUDGET;
  bool is_socket = true;
  while (wsmsg_conn_want_read(c) && budget > 0) {
    /* MSG_DONTWAIT: works on blocking sockets too (wsmsg_conn_wait_event) */
    ssize_t n = is_socket ? recv(fd, buf, sizeof(buf), MSG_DONTWAIT)
                          : read(fd, buf, sizeof(buf));
    if (n < 0 && errno == ENOTSOCK && is_socket) {
      is_socket = false;
      continue;
    }
    if (n > 0) {
      (void)wsmsg_conn_recv(c, buf, (size_t)n);
      budget = (size_t)n >= budget ? 0 : budget - (size_t)n;
      if ((size_t)n < sizeof(buf))
        break; /* drained for now: level-triggered polling wakes us again,
                  and we save the read that would say EAGAIN */
      continue;
    }
    if (n == 0) {
      wsmsg_conn_eof(c);
      break;
    }
    if (errno == EINTR)
      continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
      break;
    wsm_conn_abort_err(c, WSMSG_ERR_IO, "read failed");
    return WSMSG_ERR_IO;
  }
  const void *p;
  size_t len;
  while ((len = wsmsg_conn_pending(c, &p)) > 0) {
    ssize_t n = is_socket ? send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT)
                          : write(fd, p, len);
    if (n > 0) {
      wsmsg_conn_consume(c, (size_t)n);
      continue;
    }
    if (n < 0 && errno == ENOTSOCK && is_socket) {
      is_socket = false;
      continue;
    }
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      break;
    wsm_conn_abort_err(c, WSMSG_ERR_IO, "write failed");
    return WSMSG_ERR_IO;
  }
  return wsmsg_conn_done(c) ? 1 : 0;
}
