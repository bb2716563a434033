#!/usr/bin/env bash
# permessage-deflate end to end: echo servers with compression enabled, one
# wsbench run with the extension (--deflate: no context takeover either
# way, as WSMSG_DEFLATE_ON) and one without, for three message kinds:
#   demo   text of the demo's JSON records, 100 bytes (one short record)
#   1k     1 KiB of such records (--realistic text)
#   16k    16 KiB of them
# Servers: echo_server (wsmsg, its default preset), node ws
# (perMessageDeflate, level 6, memLevel 8, threshold 128), python3-websockets
# 10.4 (level 6, memLevel 8, window 15, no threshold); whichever are
# installed.  10 connections, pipeline 4, closed loop.  Prints a Markdown
# table on stdout: messages/s, server CPU per message, bytes on the wire per
# message each way.  Nothing is asserted.  Called by run.sh (make bench);
# alone:
#   DEFLATE_DUR=2 bash tests/bench/deflate_bench.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-/usr/bin/python3}
WSBENCH=${WSBENCH:-examples/wsbench}
DUR=${DEFLATE_DUR:-2}
WARM=${DEFLATE_WARM:-0.5}
WORK=$(mktemp -d /tmp/wsmsg-deflate-bench.XXXXXX)
# shellcheck source=tests/bench/common.sh
. tests/bench/common.sh

SERVERS=(wsmsg)
command -v node >/dev/null && [ -d tests/bench/node/node_modules/ws ] && SERVERS+=(node)
"$PY" -c 'import websockets' 2>/dev/null && SERVERS+=(python)

cmd() {
  case $1 in
  wsmsg) echo "examples/echo_server --host 127.0.0.1 --deflate on" ;;
  node) echo "node tests/bench/node_ws_server.js --host 127.0.0.1 --deflate" ;;
  python) echo "$PY tests/bench/py_ws_server.py --host 127.0.0.1 --deflate" ;;
  esac
}

RESULTS=$WORK/results.jsonl
: >"$RESULTS"
port=$((19700 + RANDOM % 200))
for s in "${SERVERS[@]}"; do
  port=$((port + 1))
  # shellcheck disable=SC2046
  "${PIN_SRV[@]}" $(cmd "$s") --port "$port" >"$WORK/$s.log" 2>&1 &
  pid=$!
  STARTED+=("$pid")
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
  done
  for kind in demo 1k 16k; do
    case $kind in demo) size=100 ;; 1k) size=1024 ;; 16k) size=16384 ;; esac
    for z in plain deflate; do
      extra=()
      [ "$z" = deflate ] && extra=(--deflate)
      line=$(timeout 120 "$WSBENCH" --json --label "$s|$kind|$z" --server-pid "$pid" \
        "${PIN_CLI[@]}" -c 10 -p 4 -s "$size" -t text --realistic "${extra[@]}" \
        -d "$DUR" -w "$WARM" "ws://127.0.0.1:$port/ws/echo" 2>>"$WORK/wsbench.log")
      [ -n "$line" ] && echo "$line" >>"$RESULTS"
      echo "deflate_bench: $s $kind $z done" >&2
    done
  done
  kill -TERM "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
done

"$PY" - "$RESULTS" <<'PYEOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print("| server | message | permessage-deflate | msg/s | server CPU µs/msg | wire bytes/msg out | wire bytes/msg back | other CPU % | errors |")
print("|---|---|---|---:|---:|---:|---:|---:|---:|")
for r in rows:
    s, kind, z = r["label"].split("|")
    mps = r["msgs_per_s"]
    cpu = r["server_cpu_pct"] / 100 / mps * 1e6 if mps > 0 and r["server_cpu_pct"] >= 0 else float("nan")
    print(f"| {s} | {kind} | {'on' if z == 'deflate' else 'off'} | {mps:.0f} | {cpu:.1f} | "
          f"{r['wire_out_per_msg']} | {r['wire_in_per_msg']:.0f} | {r['other_cpu_pct']:.0f} | {r['errors']} |")
PYEOF
