#!/usr/bin/env bash
# Integration tests against real peers on 127.0.0.1.
# EXAMPLE_BIN: where the example binaries are (default examples/).
# The echo-server suites (test_server_*.py, node_ws.sh) run once per echo
# server: the epoll echo_server and the libuv uv_echo_server must behave the
# same.  ECHO_SERVERS overrides the list.
set -euo pipefail
cd "$(dirname "$0")/../.."
export EXAMPLE_BIN=${EXAMPLE_BIN:-examples}
PY=${PYTHON:-/usr/bin/python3}
ECHO_SERVERS=${ECHO_SERVERS:-echo_server uv_echo_server}
fail=0

run() { # label command...
  local label=$1
  shift
  echo "== $label"
  if ! timeout 120 "$@"; then
    echo "FAILED: $label" >&2
    fail=1
  fi
}

for t in tests/integration/test_*.py; do
  case $(basename "$t") in
  test_server_*) continue ;; # below, per echo server
  esac
  run "$t" "$PY" "$t"
done
for srv in $ECHO_SERVERS; do
  for t in tests/integration/test_server_*.py; do
    run "$t [$srv]" env ECHO_SERVER="$srv" "$PY" "$t"
  done
  run "tests/integration/node_ws.sh [$srv]" env ECHO_SERVER="$srv" \
    bash tests/integration/node_ws.sh
done
exit $fail
