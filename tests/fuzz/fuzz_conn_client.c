/* libFuzzer target: an open client-side connection fed arbitrary (unmasked)
 * frames by a server, driven by a script of host operations.  See
 * fuzz_conn.h for the input layout and the invariants. */
#define FZ_CLIENT 1
#include "fuzz_conn.h"
