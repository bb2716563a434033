/* tcp_connect — the example clients' TCP connect (echo_client, ft_client):
 * each address getaddrinfo gives for host:port in turn, until one
 * connects. */
#ifndef WSMSG_EXAMPLE_TCP_CONNECT_H
#define WSMSG_EXAMPLE_TCP_CONNECT_H

#include <netdb.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* A connected (blocking, close-on-exec) TCP socket to host:port, or -1:
 * then *gai_err is getaddrinfo's error if the name did not resolve (else
 * 0, and errno is the last connect's). */
static inline int tcp_connect(const char *host, const char *port,
                              int *gai_err) {
  struct addrinfo hints, *res;
  memset(&hints, 0, sizeof(hints));
  hints.ai_socktype = SOCK_STREAM;
  *gai_err = getaddrinfo(host, port, &hints, &res);
  if (*gai_err)
    return -1;
  int fd = -1;
  for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
      break;
    if (fd >= 0)
      close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  return fd;
}

#endif
