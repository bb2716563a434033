/* A configured server described as an AsyncAPI 3.0.0 document
 * (wsmsg_server_asyncapi; docs/asyncapi.md, "Describing a server"). */
#include "internal.h"
#include "schema_internal.h"

#include <stdio.h>
#include <string.h>

json_t *wsmsg_server_asyncapi(const wsmsg_server *srv, const json_t *info) {
  (void)info;
  if (!srv)
    return NULL;
  return NULL;
}
