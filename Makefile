# wsmsg — one entry point.  `make help` lists the targets.
#
# Works with CC=gcc and CC=clang.  Objects go to $(BUILD); the libraries to
# lib/ (lib/libwsmsg.a, lib/libwsmsg.so -> libwsmsg.so.$(SOMAJOR)), example
# binaries to examples/.

VERSION   := 0.1.0
SOMAJOR   := 0
PREFIX    ?= /usr/local
DESTDIR   ?=
LIBDIR    ?= $(PREFIX)/lib
INCDIR    ?= $(PREFIX)/include
PCDIR     ?= $(LIBDIR)/pkgconfig

CC        ?= cc
CFLAGS    ?= -O2 -g
BUILD     ?= .build
PYTHON    ?= /usr/bin/python3

WARN      := -Wall -Wextra -Werror -Wshadow -Wconversion -Wno-sign-conversion \
             -Wstrict-prototypes -Wmissing-prototypes
STD       := -std=c11 -D_GNU_SOURCE
DEP_PKGS  := nettle
DEP_CFLAGS := $(shell pkg-config --cflags $(DEP_PKGS) 2>/dev/null)
DEP_LIBS  := -lwslay $(shell pkg-config --libs $(DEP_PKGS) 2>/dev/null)

LIB_CFLAGS := $(STD) $(WARN) $(CFLAGS) -fPIC -fvisibility=hidden \
              -DWSMSG_BUILDING -Iinclude $(DEP_CFLAGS)
APP_CFLAGS := $(STD) $(WARN) $(CFLAGS) -Iinclude $(DEP_CFLAGS)

LIB_SRCS  := $(sort $(wildcard lib/*.c))
LIB_OBJS  := $(patsubst lib/%.c,$(BUILD)/lib/%.o,$(LIB_SRCS))
LIB_HDRS  := include/wsmsg.h $(wildcard lib/*.h)

STATIC    := lib/libwsmsg.a
SHARED    := lib/libwsmsg.so.$(VERSION)
SONAME    := libwsmsg.so.$(SOMAJOR)

EXAMPLES  := examples/echo_server examples/echo_client examples/wsbench
UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRCS))

# Debian packages needed to build and test (checked by `make deps`).
DEB_PKGS  := gcc make pkg-config libwslay-dev libjansson-dev nettle-dev \
             zlib1g-dev libpcre2-dev libcmocka-dev libuv1-dev \
             python3 python3-websockets nodejs valgrind

.PHONY: all lib examples test unit integration check-install check-symbols \
        check-asan check-valgrind install uninstall deps run clean help \
        bench bench-build

all: lib examples bench-build

lib: $(STATIC) lib/libwsmsg.so

help:
	@echo "make [all]          build lib/libwsmsg.{a,so} and the examples"
	@echo "make run            install missing packages, build, start echo_server on 127.0.0.1:8080"
	@echo "make test           install missing packages, build, run every test suite"
	@echo "make check-asan     unit + integration tests built with ASan+UBSan"
	@echo "make check-valgrind unit tests under valgrind (no leaks, no errors)"
	@echo "make bench          benchmarks (~10 min; BENCH_QUICK=1: <1 min) -> docs/benchmarks.md"
	@echo "make install        PREFIX=$(PREFIX) DESTDIR=$(DESTDIR)"
	@echo "make uninstall | deps | clean"

# ---- library ----------------------------------------------------------------

$(BUILD)/lib/%.o: lib/%.c $(LIB_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(LIB_CFLAGS) -c $< -o $@

$(STATIC): $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(SHARED): $(LIB_OBJS)
	$(CC) -shared -Wl,-soname,$(SONAME) -Wl,--no-undefined -o $@ $^ $(DEP_LIBS)

lib/$(SONAME): $(SHARED)
	ln -sf $(notdir $(SHARED)) $@

lib/libwsmsg.so: lib/$(SONAME)
	ln -sf $(SONAME) $@

# ---- examples ------------------------------------------------------------------

examples: $(EXAMPLES)

examples/%: examples/%.c $(STATIC) include/wsmsg.h
	$(CC) $(APP_CFLAGS) $< -o $@ $(STATIC) $(DEP_LIBS)

# The load generator links no wsmsg (it must be able to measure anything).
examples/wsbench: examples/wsbench.c
	$(CC) $(STD) $(WARN) $(CFLAGS) $< -o $@ -lm

# ---- benchmarks -------------------------------------------------------------------
# Built by `all` so that they keep compiling; run by `make bench`
# (tests/bench/run.sh: end-to-end scenarios + micro-benchmarks, report to
# stdout and docs/benchmarks.md).  No timed assertions anywhere.

BENCH_BINS := $(BUILD)/bench/wslay_echo_server $(BUILD)/bench/micro

bench-build: $(BENCH_BINS) examples/wsbench

$(BUILD)/bench/wslay_echo_server: tests/bench/wslay_echo_server.c
	@mkdir -p $(dir $@)
	$(CC) $(STD) $(WARN) $(CFLAGS) $< -o $@ -lwslay -ljansson -lnettle

$(BUILD)/bench/micro: tests/bench/micro.c $(STATIC) include/wsmsg.h
	@mkdir -p $(dir $@)
	$(CC) $(APP_CFLAGS) $< -o $@ $(STATIC) $(DEP_LIBS) -ljansson

bench: all
	@BUILD=$(BUILD) PYTHON=$(PYTHON) bash tests/bench/run.sh

# ---- tests ------------------------------------------------------------------------

$(BUILD)/tests/test_%: tests/unit/test_%.c $(STATIC) tests/unit/pair.h
	@mkdir -p $(dir $@)
	$(CC) $(APP_CFLAGS) -Ilib -Wno-conversion $< -o $@ $(STATIC) $(DEP_LIBS) \
	  $(shell pkg-config --cflags --libs cmocka)

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

integration: examples
	@bash tests/integration/run.sh

check-symbols: lib
	@bash tests/check_symbols.sh lib/libwsmsg.so

check-install: lib
	@bash tests/install/run.sh

test: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory check-symbols
	@$(MAKE) --no-print-directory integration
	@$(MAKE) --no-print-directory check-install
	@echo "make test: all suites passed"

SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
check-asan:
	@$(MAKE) --no-print-directory BUILD=.build-asan CFLAGS="-O1 -g $(SAN)" \
	  STATIC=.build-asan/libwsmsg.a EXAMPLE_DIR=.build-asan lib-asan-tests

# internal: run by check-asan with BUILD/CFLAGS overridden
.PHONY: lib-asan-tests
lib-asan-tests: $(STATIC) $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t (asan)"; \
	  ASAN_OPTIONS=detect_leaks=1 $$t; done
	@mkdir -p $(BUILD)/examples
	$(CC) $(APP_CFLAGS) examples/echo_server.c -o $(BUILD)/examples/echo_server $(STATIC) $(DEP_LIBS)
	$(CC) $(APP_CFLAGS) examples/echo_client.c -o $(BUILD)/examples/echo_client $(STATIC) $(DEP_LIBS)
	@EXAMPLE_BIN=$(BUILD)/examples bash tests/integration/run.sh

VALGRIND := valgrind -q --error-exitcode=99 --leak-check=full \
            --show-leak-kinds=definite,indirect,possible --errors-for-leak-kinds=definite,indirect,possible
check-valgrind: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t (valgrind)"; \
	  $(VALGRIND) $$t; done

# ---- install -------------------------------------------------------------------------

pkgconfig/wsmsg.pc: pkgconfig/wsmsg.pc.in Makefile
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' \
	    -e 's|@INCDIR@|$(INCDIR)|g' -e 's|@VERSION@|$(VERSION)|g' $< > $@

install: lib pkgconfig/wsmsg.pc
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCDIR) $(DESTDIR)$(PCDIR)
	install -m 644 include/wsmsg.h $(DESTDIR)$(INCDIR)/wsmsg.h
	install -m 644 $(STATIC) $(DESTDIR)$(LIBDIR)/libwsmsg.a
	install -m 755 $(SHARED) $(DESTDIR)$(LIBDIR)/$(notdir $(SHARED))
	ln -sf $(notdir $(SHARED)) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libwsmsg.so
	install -m 644 pkgconfig/wsmsg.pc $(DESTDIR)$(PCDIR)/wsmsg.pc
	@rm -f pkgconfig/wsmsg.pc

uninstall:
	rm -f $(DESTDIR)$(INCDIR)/wsmsg.h $(DESTDIR)$(LIBDIR)/libwsmsg.a \
	      $(DESTDIR)$(LIBDIR)/$(notdir $(SHARED)) $(DESTDIR)$(LIBDIR)/$(SONAME) \
	      $(DESTDIR)$(LIBDIR)/libwsmsg.so $(DESTDIR)$(PCDIR)/wsmsg.pc

# ---- set-up and demo -------------------------------------------------------------------

deps:
	@bash .ci/deps.sh $(DEB_PKGS)

run: deps
	@$(MAKE) --no-print-directory all
	./examples/echo_server --host 127.0.0.1 --port 8080

clean:
	rm -rf $(BUILD) .build-asan lib/libwsmsg.a lib/libwsmsg.so* $(EXAMPLES) \
	       pkgconfig/wsmsg.pc
