/* libFuzzer target: an open server-side connection fed arbitrary (masked)
 * frames by a client, driven by a script of host operations.  See
 * fuzz_conn.h for the input layout and the invariants. */
#define FZ_CLIENT 0
#include "fuzz_conn.h"
