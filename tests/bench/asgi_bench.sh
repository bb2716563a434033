#!/usr/bin/env bash
# FastAPI on wsmsg: the article's app (examples/ffi/python/fastapi_article.py)
# under uvicorn with each WebSocket protocol, in one run, measured by the
# same load tool:
#
#   wsmsg       ws=wsmsg.asgi.WSMsgProtocol (wsmsg's C core through ctypes)
#   websockets  uvicorn's default (python3-websockets 10.4)
#   wsproto     uvicorn's other built-in (python3-wsproto 1.2)
#
# Same app, same uvicorn (uvloop + httptools when installed, as
# uvicorn[standard] would pick; log level warning), same settings.
# Scenarios (examples/wsbench):
#   echo  /ws/echo       100 connections x 64 B text, 16 in flight on each
#   json  /ws/json-demo  100 connections x 128 B MessageModel JSON, 1 in
#                        flight (pydantic parse_raw + dict + send_json)
# Servers on CPU 1, wsbench on CPU 0; REPS runs of each, interleaved; the
# best msgs/s is reported (other work only slows a run down), and the
# server's CPU time per message (median of the runs) as the figure other
# work on the machine disturbs least.
#
#   BENCH_QUICK=1     one short run each
#   BENCH_ASGI_OUT=F  also write the Markdown table to F
#   WSBENCH, PYTHON   where things are
#
# Run by `make bench` (tests/bench/run.sh) and `make bench-asgi`.  Nothing
# here asserts on time.  Exit status 0 unless no server ran.
set -uo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-/usr/bin/python3}
WSBENCH=${WSBENCH:-examples/wsbench}
APP=examples/ffi/python/fastapi_article.py
QUICK=${BENCH_QUICK:-0}
OUT=${BENCH_ASGI_OUT:-}
if [ "$QUICK" = 1 ]; then REPS=1 DUR=1 WARM=0.5; else REPS=${BENCH_REPS:-3} DUR=3 WARM=1; fi

log() { echo "bench-asgi: $*" >&2; }

if [ ! -x "$WSBENCH" ]; then
  log "$WSBENCH is missing (make bench builds it; or set WSBENCH)"
  exit 1
fi
WORK=$(mktemp -d /tmp/wsmsg-bench-asgi.XXXXXX)
RESULTS=$WORK/results.jsonl
: >"$RESULTS"
# shellcheck source=tests/bench/common.sh
. tests/bench/common.sh

if ! bench_have "fastapi, uvicorn" && [ "$(id -u)" = 0 ] && [ -f .ci/deps.sh ]; then
  log "installing FastAPI + uvicorn from Debian"
  timeout 300 bash .ci/deps.sh python3-fastapi python3-uvicorn python3-wsproto \
    python3-uvloop python3-httptools >&2 || true
fi
NAMES=()
SKIPPED=()
if bench_have "fastapi, uvicorn"; then
  NAMES+=(wsmsg websockets)
  if bench_have wsproto; then NAMES+=(wsproto); else SKIPPED+=("wsproto: python3-wsproto not installed"); fi
else
  log "python3-fastapi/python3-uvicorn not installed"
  exit 1
fi
mkdir -p "$WORK/files"

declare -A CMD SPID SPORT
for s in "${NAMES[@]}"; do
  CMD[$s]="$PY $APP --host 127.0.0.1 --ws $s --dir $WORK/files"
done
UP=()
bench_start_servers
[ ${#UP[@]} -gt 0 ] || { log "no server ran"; exit 1; }

QUIET_BUDGET=$([ "$QUICK" = 1 ] && echo 5 || echo 40)

scenario_args() { # scenario -> path and wsbench arguments
  case $1 in
  echo) echo "/ws/echo -c 100 -p 16 -s 64 -t text" ;;
  json) echo "/ws/json-demo -c 100 -p 1 -s 128 -t json" ;;
  esac
}

run() { # name scenario rep duration warmup
  local line path args
  read -r path args <<<"$(scenario_args "$2")"
  [ "$3" = 0 ] || bench_wait_quiet
  # shellcheck disable=SC2086
  line=$(timeout 120 "$WSBENCH" --json --label "$1|$2|$3" --server-pid "${SPID[$1]}" \
    "${PIN_CLI[@]}" $args -d "$4" -w "$5" \
    "ws://127.0.0.1:${SPORT[$1]}$path" 2>>"$WORK/wsbench.log")
  if [ -n "$line" ]; then
    [ "$3" = 0 ] || echo "$line" >>"$RESULTS"
    log "$(printf '%-10s %-4s #%s ' "$1" "$2" "$3")$(echo "$line" | "$PY" -c 'import json,sys; r=json.loads(sys.stdin.read()); print("%6.0f msg/s  p99 %6.0f us  server CPU %3.0f%%  rest %3.0f%%  errors %d" % (r["msgs_per_s"], r["p99_us"], r["server_cpu_pct"], r["other_cpu_pct"], r["errors"]))')"
  else
    log "$1 $2 #$3: wsbench gave no result"
  fi
}
log "servers: ${UP[*]}  (skipped: ${SKIPPED[*]:-none}); $PINNING; $REPS run(s) of ${DUR}s"
for s in "${UP[@]}"; do
  for sc in echo json; do run "$s" "$sc" 0 0.5 0; done # warm-up
done
for rep in $(seq 1 "$REPS"); do
  for sc in echo json; do
    for s in "${UP[@]}"; do run "$s" "$sc" "$rep" "$DUR" "$WARM"; done
  done
done
log "waited ${QUIET_WAITED} s in all for a quiet machine"

"$PY" - "$RESULTS" "$PINNING" "$REPS" "$DUR" "$OUT" "${SKIPPED[*]:-}" <<'EOF'
import json, platform, statistics, sys
path, pinning, reps, dur, out, skipped = sys.argv[1:7]
rows = [json.loads(l) for l in open(path) if l.strip()]
best, us = {}, {}
for r in rows:
    name, scen, _ = r["label"].split("|")
    if r["errors"] or r["msgs_per_s"] <= 0:
        continue
    k = (name, scen)
    if r["server_cpu_pct"] > 0:
        us.setdefault(k, []).append(r["server_cpu_pct"] * 1e4 / r["msgs_per_s"])
    if k not in best or r["msgs_per_s"] > best[k]["msgs_per_s"]:
        best[k] = r
med = {k: statistics.median(v) for k, v in us.items()}
label = {"wsmsg": "uvicorn + wsmsg (`ws=WSMsgProtocol`)",
         "websockets": "uvicorn + websockets (default)", "wsproto": "uvicorn + wsproto"}
title = {"echo": "echo, 100 connections x 64 B text, 16 in flight (/ws/echo)",
         "json": "JSON, 100 connections x 128 B MessageModel, 1 in flight (/ws/json-demo)"}
L = []
for scen in ("echo", "json"):
    L += ["", "**%s**" % title[scen], "",
          "| protocol | best msgs/s | p50 µs | p99 µs | server CPU | rest of machine | server CPU µs per message (median) |",
          "|---|---:|---:|---:|---:|---:|---:|"]
    for name in ("wsmsg", "websockets", "wsproto"):
        r = best.get((name, scen))
        if not r:
            continue
        L.append("| %s | %.0f | %.0f | %.0f | %.0f %% | %.0f %% | %.1f |" % (
            label[name], r["msgs_per_s"], r["p50_us"], r["p99_us"],
            r["server_cpu_pct"], r["other_cpu_pct"], med.get((name, scen), float("nan"))))
    w = best.get(("wsmsg", scen))
    others = [(n, best[(n, scen)]) for n in ("websockets", "wsproto") if (n, scen) in best]
    if w and others:
        fn, fr = max(others, key=lambda x: x[1]["msgs_per_s"])
        cpu = [(n, med[(n, scen)]) for n, _ in others if (n, scen) in med]
        line = "wsmsg: %.2fx the faster built-in's (%s) best msgs/s" % (
            w["msgs_per_s"] / fr["msgs_per_s"], fn)
        if ("wsmsg", scen) in med and cpu:
            cn, cu = min(cpu, key=lambda x: x[1])
            line += ", %.2fx less server CPU per message than the leaner built-in (%s)" % (
                cu / med[("wsmsg", scen)], cn)
        L += ["", line + "."]
L.append("")
L.append("The article's FastAPI app under uvicorn %s; %s run(s) of %s s per protocol and "
         "scenario, interleaved; %s; Python %s. Server CPU µs per message = the "
         "server's CPU time over the messages it answered." % (
             __import__("uvicorn").__version__, reps, dur, pinning, platform.python_version()))
if skipped.strip():
    L.append("Skipped: %s" % skipped)
text = "\n".join(L).lstrip("\n")
print(text)
if out:
    with open(out, "w") as fh:
        fh.write(text + "\n")
EOF
