#!/usr/bin/env bash
# Build and run bench_schema.c and bench_pydantic.py on the same documents
# (tests/bench/bench_models.json) and print a markdown table with the ratio.
#
#   tests/bench/schema_bench.sh [SECONDS_PER_CASE]     (default 1)
#
# Needs Debian's python3-pydantic (1.10) for /usr/bin/python3; installs it
# with apt-get when run as root.  Not part of `make test`.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-1}
py=/usr/bin/python3

if ! "$py" -c 'import pydantic' 2>/dev/null; then
  if [ "$(id -u)" -eq 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-pydantic >/dev/null
  else
    echo "schema_bench: needs python3-pydantic: sudo apt-get install python3-pydantic" >&2
    exit 1
  fi
fi

make --no-print-directory lib >/dev/null
mkdir -p .build/bench
# shellcheck disable=SC2046
${CC:-cc} -std=c11 -D_GNU_SOURCE -O2 -Iinclude tests/bench/bench_schema.c \
  -o .build/bench/bench_schema lib/libwsmsg.a -lwslay \
  $(pkg-config --libs nettle jansson libpcre2-8)

c_out=$(mktemp)
py_out=$(mktemp)
trap 'rm -f "$c_out" "$py_out"' EXIT
.build/bench/bench_schema tests/bench/bench_models.json "$secs" >"$c_out"
"$py" tests/bench/bench_pydantic.py tests/bench/bench_models.json "$secs" >"$py_out" 2>/dev/null

cpu=$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')
pyver=$("$py" -c 'import pydantic; print(pydantic.VERSION, "(compiled)" if pydantic.compiled else "(pure Python)")')
echo "CPU: $cpu, $(nproc) cores; pydantic $pyver; messages per second, one thread"
echo
echo "| case | wsmsg strict | wsmsg lax+defaults | pydantic | lax / pydantic |"
echo "|------|-------------:|-------------------:|---------:|---------------:|"
awk -F'\t' '
  FNR == NR { c[$1] = $2; next }
  {
    split($1, p, "/"); base = p[1] "/" p[2]
    s = c[base "/strict"]; l = c[base "/lax"]
    printf "| %s | %d | %d | %d | %.0fx |\n", base, s, l, $2, l / $2
  }' "$c_out" "$py_out"
