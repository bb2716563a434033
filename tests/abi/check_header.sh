#!/usr/bin/env bash
# include/wsmsg.h compiles cleanly as C11 and as C++ (11, 17) under gcc,
# g++, clang and clang++ with -Wall -Wextra -pedantic -Werror; a program
# taking the address of every public function links against
# lib/libwsmsg.so in both languages (C linkage, exported); the version
# macros, wsmsg_version(), the Makefile's VERSION/SOMAJOR, the soname and
# the Python binding's ABI_MAJOR agree.
#
#   check_header.sh VERSION SOMAJOR      (make check-abi passes them)
set -euo pipefail
cd "$(dirname "$0")/../.."
VERSION=$1
SOMAJOR=$2
LIB=lib/libwsmsg.so
WORK=$(mktemp -d /tmp/wsmsg-abi.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
fail=0
JCFLAGS=$(pkg-config --cflags jansson 2>/dev/null || true)

# every public function, from the header
grep -oE '^WSMSG_API [^(]*\bwsmsg_[a-z0-9_]+\(' include/wsmsg.h |
  sed -E 's/.*(wsmsg_[a-z0-9_]+)\($/\1/' | sort -u >"$WORK/names"
{
  printf '#define ALL_FUNCTIONS'
  sep=' '
  while read -r n; do printf '%s\\\n  FN(%s)' "$sep" "$n"; sep=','; done <"$WORK/names"
  printf '\n'
} >"$WORK/all_functions.h"
nfun=$(wc -l <"$WORK/names")

C_WARN="-Wall -Wextra -pedantic -Werror -Wstrict-prototypes -Wmissing-prototypes -Wundef -Wshadow -Wconversion"
CXX_WARN="-Wall -Wextra -pedantic -Werror -Wundef -Wshadow -Wconversion -Wold-style-cast"
built=0
try() { # label compiler args...
  local label=$1 cc=$2
  shift 2
  if ! command -v "$cc" >/dev/null; then
    echo "check-abi: $cc not installed, skipped ($label)"
    return 0
  fi
  if ! "$cc" "$@" -Iinclude -I"$WORK" $JCFLAGS tests/abi/version.c -o "$WORK/v" \
    -Llib -lwsmsg 2>"$WORK/err"; then
    echo "check-abi: $label: wsmsg.h does not compile cleanly:" >&2
    head -20 "$WORK/err" >&2
    fail=1
    return 0
  fi
  if ! out=$(LD_LIBRARY_PATH=lib "$WORK/v"); then
    echo "check-abi: $label: version check failed" >&2
    fail=1
    return 0
  fi
  built=$((built + 1))
  echo "check-abi: $label: ok ($out)"
}
try "gcc -std=c11" gcc -std=c11 $C_WARN
try "clang -std=c11" clang -std=c11 $C_WARN
try "g++ -std=c++11" g++ -x c++ -std=c++11 $CXX_WARN
try "g++ -std=c++17" g++ -x c++ -std=c++17 $CXX_WARN
try "clang++ -std=c++11" clang++ -x c++ -std=c++11 $CXX_WARN
try "clang++ -std=c++17" clang++ -x c++ -std=c++17 $CXX_WARN
[ "$built" -gt 0 ] || { echo "check-abi: no compiler found" >&2; fail=1; }

# versions: Makefile, header, soname, binding
hv=$(sed -n 's/^#define WSMSG_VERSION_STRING "\(.*\)"$/\1/p' include/wsmsg.h)
hmaj=$(sed -n 's/^#define WSMSG_VERSION_MAJOR \([0-9]*\)$/\1/p' include/wsmsg.h)
[ "$hv" = "$VERSION" ] || { echo "check-abi: Makefile VERSION $VERSION, wsmsg.h says $hv" >&2; fail=1; }
[ "$hmaj" = "$SOMAJOR" ] || { echo "check-abi: SOMAJOR $SOMAJOR but WSMSG_VERSION_MAJOR $hmaj (docs/abi.md: they move together)" >&2; fail=1; }
soname=$(objdump -p "$LIB" | awk '/SONAME/ {print $2}')
[ "$soname" = "libwsmsg.so.$SOMAJOR" ] || { echo "check-abi: soname $soname, expected libwsmsg.so.$SOMAJOR" >&2; fail=1; }
pymaj=$(sed -n 's/^ABI_MAJOR = \([0-9]*\)$/\1/p' examples/ffi/python/wsmsg/_capi.py)
[ "$pymaj" = "$SOMAJOR" ] || { echo "check-abi: the Python binding's ABI_MAJOR is $pymaj, SOMAJOR $SOMAJOR" >&2; fail=1; }
[ $fail = 0 ] && echo "check-abi: $nfun functions link from C and C++; version $VERSION, soname $soname agree"
exit $fail
