#!/usr/bin/env bash
# Integration tests against real peers on 127.0.0.1.
# EXAMPLE_BIN: where echo_server/echo_client are (default examples/).
set -euo pipefail
cd "$(dirname "$0")/../.."
export EXAMPLE_BIN=${EXAMPLE_BIN:-examples}
PY=${PYTHON:-/usr/bin/python3}
fail=0
for t in tests/integration/test_*.py; do
  echo "== $t"
  if ! timeout 120 "$PY" "$t"; then
    echo "FAILED: $t" >&2
    fail=1
  fi
done
for t in tests/integration/*.sh; do
  [ "$(basename "$t")" = run.sh ] && continue
  echo "== $t"
  if ! timeout 120 bash "$t"; then
    echo "FAILED: $t" >&2
    fail=1
  fi
done
exit $fail
