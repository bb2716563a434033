# Sourced by the benchmark scripts (run.sh, ffi_json.sh).  Needs WORK, a
# scratch directory.  Sets up:
#  - STARTED: PIDs of the processes the script starts; at exit they get
#    SIGTERM, then SIGKILL after 3 s, and WORK is removed (stopped by PID
#    only, never by name);
#  - PIN_SRV (prefix for server commands), PIN_CLI (wsbench arguments) and
#    PINNING (words for the report): servers on CPU 1, wsbench on CPU 0 when
#    there are two CPUs and taskset.
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
