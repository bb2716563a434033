#!/usr/bin/env bash
# Install into a temporary prefix, then build and run a program against it
# through pkg-config, shared and static; then uninstall and check it is gone.
set -euo pipefail
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
make --no-print-directory -s install PREFIX="$prefix" >/dev/null
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
cc=${CC:-cc}
# the README's link line, exactly (prog.c calls jansson itself)
cp tests/install/prog.c "$tmp/app.c"
(cd "$tmp" && $cc app.c $(pkg-config --cflags --libs wsmsg) -o prog-readme)
LD_LIBRARY_PATH=$prefix/lib "$tmp/prog-readme"
$cc -std=c11 -Wall -Werror tests/install/prog.c -o "$tmp/prog-shared" \
  $(pkg-config --cflags --libs wsmsg)
LD_LIBRARY_PATH=$prefix/lib "$tmp/prog-shared"
ldd_out=$(LD_LIBRARY_PATH=$prefix/lib ldd "$tmp/prog-shared")
echo "$ldd_out" | grep -q "libwsmsg.so.0 => $prefix/lib/libwsmsg.so.0" ||
  { echo "install test: shared program does not use the installed library" >&2; exit 1; }
$cc -std=c11 -Wall -Werror tests/install/prog.c -o "$tmp/prog-static" \
  $(pkg-config --cflags wsmsg) -Wl,-Bstatic $(pkg-config --libs-only-L wsmsg) -lwsmsg -Wl,-Bdynamic \
  $(pkg-config --static --libs wsmsg | sed 's/-lwsmsg//')
"$tmp/prog-static"
if ldd "$tmp/prog-static" | grep -q libwsmsg; then
  echo "install test: static program links libwsmsg dynamically" >&2; exit 1
fi
make --no-print-directory -s uninstall PREFIX="$prefix" >/dev/null
left=$(find "$prefix" -type f -o -type l)
[ -z "$left" ] || { echo "install test: uninstall left: $left" >&2; exit 1; }
echo "install test: pkg-config shared and static builds work; uninstall is clean"
