#!/usr/bin/env bash
# The shared library exports wsmsg_ symbols only, and its soname is right.
set -euo pipefail
so=${1:-lib/libwsmsg.so}
bad=$(nm -D --defined-only "$so" | awk '{print $3}' | grep -v '^wsmsg_' || true)
if [ -n "$bad" ]; then
  echo "check-symbols: non-wsmsg_ symbols exported:" >&2
  echo "$bad" >&2
  exit 1
fi
n=$(nm -D --defined-only "$so" | wc -l)
soname=$(objdump -p "$so" | awk '/SONAME/ {print $2}')
[ "$soname" = "libwsmsg.so.0" ] || { echo "check-symbols: soname is '$soname'" >&2; exit 1; }
# every exported function is declared in the public header
for s in $(nm -D --defined-only "$so" | awk '$2=="T" {print $3}'); do
  grep -q "\b$s(" include/wsmsg.h || { echo "check-symbols: $s not in wsmsg.h" >&2; exit 1; }
done
echo "check-symbols: $n symbols, all wsmsg_, soname $soname"
