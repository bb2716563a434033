#!/usr/bin/env bash
# Fan-out and end-to-end chat benchmarks (issue 16), run by make bench
# (tests/bench/run.sh) and alone:  bash tests/bench/fanout.sh [SECONDS]
# Prints a Markdown report on stdout; make bench keeps it in
# $BUILD/bench/last/fanout.md.  docs/benchmarks.md's "Fan-out" section is
# written by hand from a full run (a quick run must not replace it).
set -uo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-.build}
PY=${PYTHON:-/usr/bin/python3}
SECS=${1:-2}
echo "### Fan-out: one publish to N local subscribers (in process, sockets discard; deliveries per CPU second, best of 3)"
echo
echo "| subscribers | wsmsg deliveries/s | wsmsg bytes allocated / delivery | node ws send loop deliveries/s | python-websockets broadcast() deliveries/s | wsmsg / node |"
echo "|---:|---:|---:|---:|---:|---:|"
for n in 1 100 10000; do
  best() { # command... : the run with the most deliveries/s of 3
    local b='' v bv=0
    for _ in 1 2 3; do
      v=$("$@") || continue
      local d=${v#*\"deliveries_per_s\":}
      d=${d%%[,\}]*}
      d=${d// /}
      if [ "${d%.*}" -gt "$bv" ]; then bv=${d%.*} b=$v; fi
    done
    echo "${b:-\{\"deliveries_per_s\":0\}}"
  }
  w=$(best "$BUILD/bench/fanout" "$n" "$SECS")
  if command -v node >/dev/null && [ -d tests/bench/node/node_modules/ws ]; then
    nd=$(best node tests/bench/fanout_node.js "$n" "$SECS")
  else
    nd='{"deliveries_per_s":0}'
  fi
  p=$(best "$PY" tests/bench/fanout_python.py "$n" "$SECS")
  "$PY" - "$n" "$w" "$nd" "$p" <<'PYEOF'
import json, sys
n, w, nd, p = sys.argv[1], *(json.loads(x) for x in sys.argv[2:])
ratio = w["deliveries_per_s"] / nd["deliveries_per_s"] if nd["deliveries_per_s"] else 0
print("| %s | %s | %.3f | %s | %s | %.1fx |" % (
    n, format(w["deliveries_per_s"], ","), w["alloc_bytes_per_delivery"],
    format(nd["deliveries_per_s"], ",") if nd["deliveries_per_s"] else "n/a",
    format(p["deliveries_per_s"], ","), ratio))
PYEOF
done
echo
if [ -x examples/chat/chat_server ] && command -v redis-server >/dev/null &&
  command -v haproxy >/dev/null; then
  echo "### End to end: say -> HAProxy -> chat_server -> Redis -> every member"
  echo
  echo "| backends | offered says/s | says/s | deliveries/s | p50 ms | p99 ms |"
  echo "|---:|---:|---:|---:|---:|---:|"
  "$PY" tests/bench/chat_e2e.py 1 3 | "$PY" -c '
import json, sys
for line in sys.stdin:
    r = json.loads(line)
    print("| %d | %s | %s | %s | %.2f | %.2f |" % (r["backends"], r["offered_says_per_s"],
          format(r["says_per_s"], ","), format(r["deliveries_per_s"], ","), r["p50_ms"], r["p99_ms"]))'
else
  echo "(end to end skipped: make chat builds examples/chat/chat_server and installs redis-server, haproxy)"
fi
