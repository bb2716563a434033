#!/usr/bin/env bash
# The FFI scenario of `make bench`: Python servers on the same JSON
# validate-and-reply workload, in one run, measured by the same load tool.
#
#   wsmsg-py         examples/ffi/python/asyncio_server.py (asyncio + wsmsg
#                    through ctypes: C parses, validates against MessageModel
#                    and frames; Python adds "status" and replies)
#   wsmsg-py-uvloop  the same on uvloop (what uvicorn picks when installed)
#   fastapi          tests/bench/fastapi_app.py (FastAPI + uvicorn +
#                    pydantic MessageModel; Debian python3-fastapi/-uvicorn)
#   demo_server      examples/demo_server, the C server, for reference
#
# Workload: examples/wsbench -t json: 100 connections, one 128-byte
# MessageModel message in flight on each, to /ws/json-demo; each reply
# must hold "PROCESSED".  Servers on CPU 1, wsbench on CPU 0; REPS runs
# interleaved, the best reported (other work on the machine only slows a
# run down), with msgs per server CPU-second as a load-independent figure.
#
#   BENCH_QUICK=1      one short run each
#   BENCH_FFI_OUT=F    also write the Markdown table to F
#   WSBENCH, FASTAPI_APP, PYTHON   where things are
#
# Run by `make bench-ffi`.  Written against the interface of the benchmark
# suite (examples/wsbench, tests/bench/fastapi_app.py, tests/bench/run.sh);
# once that is merged, run.sh calls it after its own scenarios:
#   BENCH_FFI_OUT=$WORK/ffi.md WSBENCH=$WSBENCH PYTHON=$PY BENCH_QUICK=$QUICK \
#     bash tests/bench/ffi_json.sh
#
# Nothing here asserts on time.  Exit status 0 unless no server ran.
set -uo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-/usr/bin/python3}
WSBENCH=${WSBENCH:-examples/wsbench}
FASTAPI_APP=${FASTAPI_APP:-tests/bench/fastapi_app.py}
QUICK=${BENCH_QUICK:-0}
OUT=${BENCH_FFI_OUT:-}
CONNS=100
SIZE=128
if [ "$QUICK" = 1 ]; then REPS=1 DUR=1 WARM=0.5; else REPS=${BENCH_REPS:-3} DUR=3 WARM=1; fi

log() { echo "bench-ffi: $*" >&2; }

if [ ! -x "$WSBENCH" ]; then
  log "$WSBENCH is missing (make bench builds it; or set WSBENCH)"
  exit 1
fi
WORK=$(mktemp -d /tmp/wsmsg-bench-ffi.XXXXXX)
RESULTS=$WORK/results.jsonl
: >"$RESULTS"
# processes we start (stopped by PID only), CPU pinning
# shellcheck source=tests/bench/common.sh
. tests/bench/common.sh

# ---- which servers ----------------------------------------------------------------
if ! bench_have "fastapi, uvicorn" && [ "$(id -u)" = 0 ] && [ -f .ci/deps.sh ]; then
  log "installing FastAPI + uvicorn from Debian"
  timeout 300 bash .ci/deps.sh python3-fastapi python3-uvicorn python3-uvloop \
    python3-httptools >&2 || true
fi
mkdir -p "$WORK/files"
declare -A CMD
NAMES=()
SKIPPED=()
CMD[wsmsg-py]="$PY examples/ffi/python/asyncio_server.py --quiet --dir $WORK/files --host 127.0.0.1"
NAMES+=(wsmsg-py)
if bench_have uvloop; then
  CMD[wsmsg-py-uvloop]="${CMD[wsmsg-py]} --loop uvloop"
  NAMES+=(wsmsg-py-uvloop)
else
  SKIPPED+=("wsmsg-py-uvloop: python3-uvloop not installed")
fi
if bench_have "fastapi, uvicorn" && [ -f "$FASTAPI_APP" ]; then
  CMD[fastapi]="$PY $FASTAPI_APP --host 127.0.0.1"
  NAMES+=(fastapi)
else
  SKIPPED+=("fastapi: python3-fastapi/python3-uvicorn or $FASTAPI_APP missing")
fi
if [ -x examples/demo_server ]; then
  CMD[demo_server]="examples/demo_server --quiet --dir $WORK/files --host 127.0.0.1"
  NAMES+=(demo_server)
fi

declare -A SPID SPORT
UP=()
bench_start_servers
[ ${#UP[@]} -gt 0 ] || { log "no server ran"; exit 1; }

# a quiet machine before each run (bench_wait_quiet), 40 s of waiting at most
QUIET_BUDGET=$([ "$QUICK" = 1 ] && echo 5 || echo 40)

run() { # name rep duration warmup
  local line
  [ "$2" = 0 ] || bench_wait_quiet
  line=$(timeout 120 "$WSBENCH" --json --label "$1|$2" --server-pid "${SPID[$1]}" \
    "${PIN_CLI[@]}" -c $CONNS -p 1 -s $SIZE -t json -d "$3" -w "$4" \
    "ws://127.0.0.1:${SPORT[$1]}/ws/json-demo" 2>>"$WORK/wsbench.log")
  if [ -n "$line" ]; then
    [ "$2" = 0 ] || echo "$line" >>"$RESULTS"
    log "$(printf '%-16s #%s ' "$1" "$2")$(echo "$line" | "$PY" -c 'import json,sys; r=json.loads(sys.stdin.read()); print("%6.0f msg/s  p99 %6.0f us  server CPU %3.0f%%  errors %d" % (r["msgs_per_s"], r["p99_us"], r["server_cpu_pct"], r["errors"]))')"
  else
    log "$1 #$2: wsbench gave no result"
  fi
}
log "servers: ${UP[*]}  (skipped: ${SKIPPED[*]:-none}); $PINNING; $REPS run(s) of ${DUR}s"
for s in "${UP[@]}"; do run "$s" 0 0.5 0; done # warm-up (imports, caches, JIT)
for rep in $(seq 1 "$REPS"); do
  for s in "${UP[@]}"; do run "$s" "$rep" "$DUR" "$WARM"; done
done
log "waited ${QUIET_WAITED} s in all for a quiet machine"

"$PY" - "$RESULTS" "$PINNING" "$REPS" "$DUR" "$OUT" "${SKIPPED[*]:-}" <<'EOF'
import json, platform, statistics, sys
path, pinning, reps, dur, out, skipped = sys.argv[1:7]
rows = [json.loads(l) for l in open(path) if l.strip()]


def per_cpu(r):
    cpu = r["server_cpu_pct"]
    return r["msgs_per_s"] / (cpu / 100) if cpu > 0 else float("nan")


best, eff = {}, {}
for r in rows:
    name = r["label"].split("|")[0]
    if r["errors"]:
        continue
    eff.setdefault(name, []).append(per_cpu(r))
    if name not in best or r["msgs_per_s"] > best[name]["msgs_per_s"]:
        best[name] = r
med = {k: statistics.median(v) for k, v in eff.items()}
label = {"wsmsg-py": "asyncio + wsmsg (ctypes)", "wsmsg-py-uvloop": "uvloop + wsmsg (ctypes)",
         "fastapi": "FastAPI + uvicorn + pydantic", "demo_server": "demo_server (C, reference)"}
L = ["| server | best msgs/s | p50 µs | p99 µs | server CPU | rest of machine | msgs per server CPU-s (median of runs) |",
     "|---|---:|---:|---:|---:|---:|---:|"]
for name in ["wsmsg-py", "wsmsg-py-uvloop", "fastapi", "demo_server"]:
    r = best.get(name)
    if not r:
        continue
    L.append("| %s | %.0f | %.0f | %.0f | %.0f %% | %.0f %% | %.0f |" % (
        label[name], r["msgs_per_s"], r["p50_us"], r["p99_us"], r["server_cpu_pct"],
        r["other_cpu_pct"], med[name]))
L.append("")
L.append("JSON validate-and-reply, %d connections x 1 in flight, 128-byte MessageModel "
         "messages to /ws/json-demo; %s run(s) of %s s each; %s; Python %s. "
         "The last column divides out the CPU share the server got, which other "
         "work on the machine changes from run to run." % (
             rows[0]["connections"] if rows else 100, reps, dur, pinning,
             platform.python_version()))
if "fastapi" in best:
    for name in ("wsmsg-py", "wsmsg-py-uvloop"):
        if name in best:
            L.append("%s: %.1fx FastAPI's best throughput, %.1fx its work per CPU-second." % (
                label[name], best[name]["msgs_per_s"] / best["fastapi"]["msgs_per_s"],
                med[name] / med["fastapi"]))
if skipped.strip():
    L.append("Skipped: %s" % skipped)
text = "\n".join(L)
print(text)
if out:
    with open(out, "w") as fh:
        fh.write(text + "\n")
EOF
