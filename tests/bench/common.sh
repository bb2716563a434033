# Sourced by the benchmark scripts (run.sh, ffi_json.sh, asgi_bench.sh,
# deflate_bench.sh).  Needs WORK, a scratch directory, and PY, a python3.
# Sets up:
#  - STARTED: PIDs of the processes the script starts; at exit they get
#    SIGTERM, then SIGKILL after 3 s, and WORK is removed (stopped by PID
#    only, never by name);
#  - PIN_SRV (prefix for server commands), PIN_CLI (wsbench arguments) and
#    PINNING (words for the report): servers on CPU 1, wsbench on CPU 0 when
#    there are two CPUs and taskset.
# and defines bench_have, bench_free_port, bench_start_servers and
# bench_wait_quiet (below).
# shellcheck shell=bash
STARTED=()
bench_cleanup() {
  local pid
  for pid in "${STARTED[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for pid in "${STARTED[@]}"; do
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
  done
  rm -rf "$WORK"
}
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
  PIN_SRV=(taskset -c 1)
  PIN_CLI=(--cpu 0)
  PINNING="server on CPU 1, wsbench on CPU 0 (taskset / sched_setaffinity)"
else
  PIN_SRV=()
  PIN_CLI=()
  PINNING="no pinning (fewer than 2 CPUs or no taskset)"
fi

# bench_have MODULES: PY can import them ("fastapi, uvicorn").
bench_have() { "$PY" -c "import $1" 2>/dev/null; }

bench_free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Start each server of NAMES, "${CMD[name]} --port PORT" (pinned, output to
# $WORK/name.log), and wait for it to accept (15 s at most).  Those that do
# go to UP, with their PID in SPID[name] and port in SPORT[name]; the others
# to SKIPPED.  The caller declares CMD, SPID and SPORT (declare -A) and the
# arrays UP and SKIPPED.
bench_start_servers() {
  local s port pid ok
  for s in "${NAMES[@]}"; do
    port=$(bench_free_port)
    # shellcheck disable=SC2086
    "${PIN_SRV[@]}" ${CMD[$s]} --port "$port" >>"$WORK/$s.log" 2>&1 &
    pid=$!
    STARTED+=("$pid")
    ok=0
    for _ in $(seq 1 150); do # bounded: 15 s
      if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then ok=1; break; fi
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if [ $ok = 1 ]; then
      SPID[$s]=$pid
      SPORT[$s]=$port
      UP+=("$s")
    else
      log "$s did not start: $(tail -3 "$WORK/$s.log")"
      SKIPPED+=("$s: did not start")
    fi
  done
}

# Other work on the machine (builds, tests, fuzzers) disturbs the numbers:
# before each run, bench_wait_quiet waits until less than QUIET_PCT % (15
# unless set) is busy over half a second, at most QUIET_BUDGET seconds in
# all (the caller sets it; QUIET_WAITED counts them).  The percentage is of
# all CPUs (two busy CPUs of two: 100), or with QUIET_PER_CPU=0 of one (two
# busy CPUs: 200).
QUIET_WAITED=0
bench_busy_ticks() { awk '/^cpu / {print $2+$3+$4+$7+$8+$9; exit}' /proc/stat; }
bench_wait_quiet() {
  local hz a b cpus=1
  hz=$(getconf CLK_TCK)
  [ "${QUIET_PER_CPU:-1}" = 1 ] && cpus=$(nproc)
  for _ in $(seq 1 400); do
    [ "$QUIET_WAITED" -ge "$QUIET_BUDGET" ] && return 0
    a=$(bench_busy_ticks)
    sleep 0.5
    b=$(bench_busy_ticks)
    [ $(((b - a) * 100 * 2 / hz / cpus)) -lt "${QUIET_PCT:-15}" ] && return 0
    sleep 0.5
    QUIET_WAITED=$((QUIET_WAITED + 1))
  done
}
