#!/usr/bin/env bash
# Run the libFuzzer targets built by `make fuzz-build`.
#
#   run.sh probe                      exit 0 if $FUZZ_CC can link a fuzzer
#   run.sh smoke SECONDS target...    SECONDS in all, split evenly; seeds
#                                     are read, new inputs go to a scratch
#                                     directory that is deleted afterwards
#   run.sh long SECONDS target...     SECONDS per target; the corpus grows
#                                     in tests/fuzz/grown/<target>/
#                                     (git-ignored), logs in
#                                     $FUZZ_BUILD/logs/
#
# One fuzzing process at a time, under `nice -n 10` (FUZZ_NICE).  Any crash,
# leak, timeout or out-of-memory fails the run; the input is saved as
# $FUZZ_BUILD/artifacts/<target>-crash-<sha1> (add it to
# tests/fuzz/corpus/<target>/ once fixed).
set -euo pipefail
cd "$(dirname "$0")/../.."

FUZZ_BUILD=${FUZZ_BUILD:-.build-fuzz}
FUZZ_CC=${FUZZ_CC:-clang}
FUZZ_NICE=${FUZZ_NICE:-nice -n 10}
GROWN=${FUZZ_GROWN:-tests/fuzz/grown}
# -rss_limit_mb: the default 2048 is fine; -timeout: a single input that
# runs for 10 s is a hang
OPTS=(-timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -max_len=8192)

mode=${1:-}
shift || true

if [ "$mode" = probe ]; then
  mkdir -p "$FUZZ_BUILD"
  printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n);\nint LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' |
    "$FUZZ_CC" -x c -fsanitize=fuzzer,address,undefined - \
      -o "$FUZZ_BUILD/.probe" >/dev/null 2>&1
  exit $?
fi

seconds=${1:?seconds}
shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || { echo "run.sh: no targets" >&2; exit 2; }

mkdir -p "$FUZZ_BUILD/artifacts" "$FUZZ_BUILD/logs"
case "$mode" in
smoke)
  per=$((seconds / ${#targets[@]}))
  [ "$per" -ge 1 ] || per=1
  ;;
long) per=$seconds ;;
*) echo "run.sh: mode must be probe, smoke or long" >&2; exit 2 ;;
esac

status=0
failed=() # logs of the targets that failed, shown again at the end
start=$(date +%s)
for t in "${targets[@]}"; do
  bin="$FUZZ_BUILD/$t"
  seeds="tests/fuzz/corpus/$t"
  [ -x "$bin" ] || { echo "run.sh: $bin not built" >&2; exit 2; }
  mkdir -p "$seeds"
  if [ "$mode" = smoke ]; then
    work=$(mktemp -d "$FUZZ_BUILD/smoke-$t.XXXXXX")
  else
    work="$GROWN/$t"
    mkdir -p "$work"
  fi
  dict=()
  [ -f "tests/fuzz/$t.dict" ] && dict=(-dict="tests/fuzz/$t.dict")
  log="$FUZZ_BUILD/logs/$t-$mode-$(date +%Y%m%d-%H%M%S).log"
  echo "== $t: $per s ($mode), log $log"
  set +e
  timer=()
  [ -x /usr/bin/time ] && timer=(/usr/bin/time -f "cpu_seconds: %U user %S sys")
  "${timer[@]}" $FUZZ_NICE "$bin" "${OPTS[@]}" "${dict[@]}" \
    -max_total_time="$per" -artifact_prefix="$FUZZ_BUILD/artifacts/$t-" \
    "$work" "$seeds" >"$log" 2>&1
  rc=$?
  set -e
  # the last status line and the final stats, in one line
  last=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  cpu=$(sed -n 's/^cpu_seconds: //p' "$log")
  echo "   execs=${execs:-?} exec/s=${rate:-?} cpu=${cpu:-?} | ${last:-no status line}"
  if [ "$mode" = smoke ]; then
    rm -rf "$work"
  else
    echo "   corpus: $(find "$work" -type f | wc -l) files in $work"
  fi
  if [ $rc -ne 0 ]; then
    echo "== $t FAILED (exit $rc); the end of $log:" >&2
    tail -n 60 "$log" >&2
    failed+=("$t $log")
    status=1
  fi
done
# Again at the very end, where a CI log that keeps only its tail shows it:
# what broke, and the input (libFuzzer prints small ones as Base64, enough
# to reproduce from the log alone).
for f in "${failed[@]}"; do
  t=${f%% *}
  log=${f#* }
  echo "== $t FAILED: $(grep -m1 -E '^SUMMARY|ERROR: libFuzzer|==ERROR' "$log" || echo 'see above')" >&2
  grep -E '^(Base64|artifact_prefix|Test unit written)|^MS: ' "$log" | tail -n 4 >&2
done
echo "fuzz $mode: ${#targets[@]} targets in $(($(date +%s) - start)) s: $([ $status -eq 0 ] && echo ok || echo FAILED)"
exit $status
