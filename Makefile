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
DEP_PKGS  := nettle jansson libpcre2-8
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

UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRCS))

# Debian packages needed to build and test (checked by `make deps`).
DEB_PKGS  := gcc make pkg-config libwslay-dev libjansson-dev nettle-dev \
             zlib1g-dev libpcre2-dev libcmocka-dev libuv1-dev \
             python3 python3-websockets nodejs valgrind

.PHONY: all lib examples test unit schema-suite integration check-install \
        check-symbols check-docs \
        check-asan check-valgrind install uninstall deps run clean help \
        fuzz-build fuzz-smoke fuzz

all: lib examples

lib: $(STATIC) lib/libwsmsg.so

help:
	@echo "make [all]          build lib/libwsmsg.{a,so} and the examples"
	@echo "make run            install missing packages, build, start demo_server on 127.0.0.1:8080"
	@echo "make test           install missing packages, build, run every test suite"
	@echo "make check-asan     unit + integration tests built with ASan+UBSan"
	@echo "make check-valgrind unit tests under valgrind (no leaks, no errors)"
	@echo "make fuzz-build     build the libFuzzer targets (clang) into $(FUZZ_BUILD)/"
	@echo "make fuzz-smoke     every fuzz target, $(FUZZ_SMOKE_SECONDS) s in all (skips without clang's fuzzer runtime)"
	@echo "make fuzz           long runs: FUZZ_SECONDS=N per target [FUZZ_TARGETS=...]"
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
# EXDIR is where example binaries go (check-asan builds them elsewhere).

EXDIR     ?= examples
EX_NAMES  := echo_server echo_client uv_echo_server demo_server \
             file_transfer/ft_server file_transfer/ft_client
EXAMPLES  := $(addprefix $(EXDIR)/,$(EX_NAMES))
JSON_LIBS := $(shell pkg-config --cflags --libs jansson)
UV_LIBS   := $(shell pkg-config --cflags --libs libuv)
EVLOOP    := examples/common/evloop.c examples/common/evloop.h

examples: $(EXAMPLES)

$(EXDIR)/echo_server: examples/echo_server.c $(EVLOOP) $(STATIC) include/wsmsg.h
$(EXDIR)/echo_server: EXTRA_SRCS = examples/common/evloop.c
$(EXDIR)/demo_server: examples/demo_server.c $(EVLOOP) $(STATIC) include/wsmsg.h
$(EXDIR)/demo_server: EXTRA_SRCS = examples/common/evloop.c
$(EXDIR)/echo_client: examples/echo_client.c $(STATIC) include/wsmsg.h
$(EXDIR)/uv_echo_server: examples/uv_echo_server.c $(STATIC) include/wsmsg.h
$(EXDIR)/uv_echo_server: EXTRA_LIBS = $(UV_LIBS)
$(EXDIR)/file_transfer/ft_server: examples/file_transfer/ft_server.c $(EVLOOP) $(STATIC)
$(EXDIR)/file_transfer/ft_server: EXTRA_SRCS = examples/common/evloop.c
$(EXDIR)/file_transfer/ft_server: EXTRA_LIBS = $(JSON_LIBS)
$(EXDIR)/file_transfer/ft_client: examples/file_transfer/ft_client.c $(STATIC)
$(EXDIR)/file_transfer/ft_client: EXTRA_LIBS = $(JSON_LIBS)

$(EXAMPLES):
	@mkdir -p $(dir $@)
	$(CC) $(APP_CFLAGS) $< $(EXTRA_SRCS) -o $@ $(STATIC) $(DEP_LIBS) $(EXTRA_LIBS)

# ---- tests ------------------------------------------------------------------------

$(BUILD)/tests/test_%: tests/unit/test_%.c $(STATIC) tests/unit/pair.h
	@mkdir -p $(dir $@)
	$(CC) $(APP_CFLAGS) -Ilib -Wno-conversion $< -o $@ $(STATIC) $(DEP_LIBS) \
	  $(shell pkg-config --cflags --libs cmocka)

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

# JSON Schema Test Suite (draft 2020-12 and draft-07) against lib/schema*.c
SUITE_DIR ?= ../shared/data/json-schema-test-suite
$(BUILD)/tests/suite_runner: tests/schema/suite_runner.c $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(APP_CFLAGS) $< -o $@ $(STATIC) $(DEP_LIBS)

schema-suite: $(BUILD)/tests/suite_runner
	$(BUILD)/tests/suite_runner $(SUITE_DIR)

integration: examples
	@bash tests/integration/run.sh

check-symbols: lib
	@bash tests/check_symbols.sh lib/libwsmsg.so

# docs/api.md is generated from the header and must be current
check-docs: lib
	@python3 docs/gen_api.py --check
	@for s in $$(nm -D --defined-only lib/libwsmsg.so | awk '$$2=="T" {print $$3}'); do \
	  grep -q "^#### \`$$s\`" docs/api.md || { echo "check-docs: $$s undocumented" >&2; exit 1; }; done
	@echo "check-docs: every exported function is in docs/api.md"

check-install: lib
	@bash tests/install/run.sh

test: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory schema-suite
	@$(MAKE) --no-print-directory check-symbols
	@$(MAKE) --no-print-directory check-docs
	@$(MAKE) --no-print-directory integration
	@$(MAKE) --no-print-directory check-install
	@echo "make test: all suites passed"

SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
check-asan:
	@$(MAKE) --no-print-directory BUILD=.build-asan CFLAGS="-O1 -g $(SAN)" \
	  STATIC=.build-asan/libwsmsg.a EXDIR=.build-asan/examples lib-asan-tests

# internal: run by check-asan with BUILD/CFLAGS/EXDIR overridden
.PHONY: lib-asan-tests
lib-asan-tests: $(STATIC) $(UNIT_BINS) $(EXAMPLES)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t (asan)"; \
	  ASAN_OPTIONS=detect_leaks=1 $$t; done
	@EXAMPLE_BIN=$(EXDIR) ASAN_OPTIONS=detect_leaks=1 bash tests/integration/run.sh

VALGRIND := valgrind -q --error-exitcode=99 --leak-check=full \
            --show-leak-kinds=definite,indirect,possible --errors-for-leak-kinds=definite,indirect,possible
check-valgrind: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t (valgrind)"; \
	  $(VALGRIND) $$t; done

# ---- fuzzing (libFuzzer) --------------------------------------------------------------
# The library and tests/fuzz/fuzz_*.c built with clang -fsanitize=fuzzer,address,
# undefined into $(FUZZ_BUILD).  tests/fuzz/run.sh runs them; see docs/reliability.md.

FUZZ_CC       ?= clang
FUZZ_BUILD    ?= .build-fuzz
FUZZ_SAN      := -fsanitize=address,undefined -fno-sanitize-recover=all \
                 -fno-omit-frame-pointer
FUZZ_CFLAGS   := $(STD) $(filter-out -Werror,$(WARN)) -g -O1 $(FUZZ_SAN) \
                 -Iinclude $(DEP_CFLAGS)
FUZZ_NAMES    := $(patsubst tests/fuzz/%.c,%,$(sort $(wildcard tests/fuzz/fuzz_*.c)))
FUZZ_BINS     := $(addprefix $(FUZZ_BUILD)/,$(FUZZ_NAMES))
FUZZ_LIB_OBJS := $(patsubst lib/%.c,$(FUZZ_BUILD)/lib/%.o,$(LIB_SRCS))
FUZZ_TARGETS  ?= $(FUZZ_NAMES)
FUZZ_SECONDS  ?= 600
FUZZ_SMOKE_SECONDS ?= 60

$(FUZZ_BUILD)/lib/%.o: lib/%.c $(LIB_HDRS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -fvisibility=hidden \
	  -DWSMSG_BUILDING -c $< -o $@

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c $(wildcard tests/fuzz/*.h) $(FUZZ_LIB_OBJS)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -Wno-conversion -fsanitize=fuzzer $< \
	  $(FUZZ_LIB_OBJS) -o $@ $(DEP_LIBS)

.SECONDARY: $(FUZZ_LIB_OBJS)

fuzz-build: $(FUZZ_BINS)

fuzz-smoke:
	@FUZZ_CC="$(FUZZ_CC)" FUZZ_BUILD="$(FUZZ_BUILD)" bash tests/fuzz/run.sh probe || \
	  { echo "fuzz-smoke: skipped: $(FUZZ_CC) cannot link -fsanitize=fuzzer (needs clang and libclang-rt-dev)"; exit 0; }; \
	  $(MAKE) --no-print-directory fuzz-build && \
	  FUZZ_BUILD="$(FUZZ_BUILD)" bash tests/fuzz/run.sh smoke $(FUZZ_SMOKE_SECONDS) $(FUZZ_NAMES)

fuzz: fuzz-build
	@FUZZ_BUILD="$(FUZZ_BUILD)" bash tests/fuzz/run.sh long $(FUZZ_SECONDS) $(FUZZ_TARGETS)

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
	./examples/demo_server --host 127.0.0.1 --port 8080

clean:
	rm -rf $(BUILD) .build-asan $(FUZZ_BUILD) lib/libwsmsg.a lib/libwsmsg.so* $(EXAMPLES) \
	       pkgconfig/wsmsg.pc
