/* Error strings and version. */
#include "internal.h"

const char *wsmsg_strerror(int code) {
  switch (code) {
  case WSMSG_OK:
    return "success";
  case WSMSG_ERR_NOMEM:
    return "out of memory";
  case WSMSG_ERR_INVALID_ARG:
    return "invalid argument";
  case WSMSG_ERR_STATE:
    return "not allowed in the current state";
  case WSMSG_ERR_CLOSED:
    return "connection closed";
  case WSMSG_ERR_PROTOCOL:
    return "WebSocket protocol error";
  case WSMSG_ERR_UTF8:
    return "invalid UTF-8 in text";
  case WSMSG_ERR_TOO_BIG:
    return "message too big";
  case WSMSG_ERR_TOO_MANY_FRAGMENTS:
    return "too many fragments in a message";
  case WSMSG_ERR_CLOSE_CODE:
    return "invalid close code";
  case WSMSG_ERR_HANDSHAKE:
    return "opening handshake failed";
  case WSMSG_ERR_IO:
    return "socket error";
  case WSMSG_ERR_TIMEOUT:
    return "timeout";
  case WSMSG_ERR_BACKPRESSURE:
    return "output queue full";
  case WSMSG_ERR_EOF:
    return "connection closed by peer without a close frame";
  case WSMSG_ERR_ABORTED:
    return "connection aborted";
  case WSMSG_ERR_NOT_FOUND:
    return "not found";
  case WSMSG_ERR_VALIDATION:
    return "document does not match the schema";
  case WSMSG_ERR_SCHEMA:
    return "invalid JSON Schema";
  case WSMSG_ERR_UNSUPPORTED:
    return "unsupported JSON Schema feature";
  case WSMSG_ERR_JSON:
    return "invalid JSON";
  case WSMSG_ERR_BUDGET:
    return "server memory budget exhausted";
  case WSMSG_ERR_RATE_LIMIT:
    return "rate limit exceeded";
  default:
    return "unknown error";
  }
}

const char *wsmsg_version(void) { return WSMSG_VERSION_STRING; }

int wsmsg_version_number(void) { return WSMSG_VERSION_NUMBER; }
