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
DEP_PKGS  := nettle jansson libpcre2-8 zlib yaml-0.1
DEP_CFLAGS := $(shell pkg-config --cflags $(DEP_PKGS) 2>/dev/null)
DEP_LIBS  := -lwslay $(shell pkg-config --libs $(DEP_PKGS) 2>/dev/null)

LIB_CFLAGS := $(STD) $(WARN) $(CFLAGS) -fPIC -fvisibility=hidden \
              -DWSMSG_BUILDING -Iinclude $(DEP_CFLAGS)
APP_CFLAGS := $(STD) $(WARN) $(CFLAGS) -Iinclude $(DEP_CFLAGS)

LIB_SRCS  := $(sort $(wildcard lib/*.c))
LIB_OBJS  := $(patsubst lib/%.c,$(BUILD)/lib/%.o,$(LIB_SRCS))
LIB_HDRS  := include/wsmsg.h $(wildcard lib/*.h)

# The static library of a variant build (BUILD=other, e.g. with CC=clang)
# stays in that build directory: in lib/ the next default build would link
# it (a clang-built archive under gcc's valgrind run, say)
STATIC    := $(if $(filter .build,$(BUILD)),lib/libwsmsg.a,$(BUILD)/libwsmsg.a)
SHARED    := lib/libwsmsg.so.$(VERSION)
SONAME    := libwsmsg.so.$(SOMAJOR)

UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRCS))

# Debian packages needed to build and test (checked by `make deps`).
# g++ and clang: check-abi compiles wsmsg.h with gcc, g++, clang and clang++.
DEB_PKGS  := gcc make pkg-config libwslay-dev libjansson-dev nettle-dev \
             zlib1g-dev libpcre2-dev libcmocka-dev libuv1-dev libyaml-dev \
             python3 python3-websockets nodejs valgrind g++ clang libssl-dev \
             python3-fastapi python3-uvicorn python3-pydantic python3-wsproto

.PHONY: all lib examples test bench-smoke unit schema-suite integration check-install \
        check-symbols check-docs check-abi check-ffi \
        check-asan check-valgrind soak install uninstall deps run clean help \
        bench bench-build fuzz-build fuzz-smoke fuzz check-attacks \
        chat chat-demo check-cluster test-browser

all: lib examples bench-build

lib: $(STATIC) lib/libwsmsg.so

# One line per target, "make NAME" first: check-docs checks that every
# .PHONY target but the internal lib-asan-tests is listed here.
help:
	@echo "Build"
	@echo "make [all]          lib/libwsmsg.{a,so}, the examples and the benchmark binaries"
	@echo "make lib            lib/libwsmsg.a and lib/libwsmsg.so only"
	@echo "make examples       the example programs (examples/)"
	@echo "make bench-build    the benchmark binaries (part of all)"
	@echo "make run            install missing packages, build, start demo_server on 127.0.0.1:8080 (PORT=, HOST=)"
	@echo "make deps           install the missing Debian packages (DEB_PKGS)"
	@echo "make chat           examples/chat/chat_server (installs redis-server, haproxy, libhiredis-dev)"
	@echo "make chat-demo      redis-server, 3 chat_servers and HAProxy on 127.0.0.1:8080; Ctrl-C stops them"
	@echo "make install        PREFIX=$(PREFIX) DESTDIR=$(DESTDIR)"
	@echo "make uninstall      remove what install put there"
	@echo "make clean          remove build outputs"
	@echo "make help           this list"
	@echo
	@echo "Tests (make test runs them in this order; docs/testing.md: one case at a time)"
	@echo "make test           install missing packages, build, run every suite below through bench-smoke"
	@echo "make unit           cmocka unit tests; one case: $(BUILD)/tests/test_conn test_pull_api"
	@echo "make schema-suite   the JSON Schema Test Suite (SUITE_DIR=$(SUITE_DIR))"
	@echo "make check-symbols  lib/libwsmsg.so exports wsmsg_ symbols only"
	@echo "make check-docs     docs/api.md current and complete; fallible functions list their errors; this list complete"
	@echo "make check-abi      exported symbols, header as C11/C++, versions, ctypes-callable API, ABI baseline"
	@echo "make check-ffi      the Python binding's unit tests"
	@echo "make integration    the examples against real peers (python3-websockets, node ws); CASE=... per file"
	@echo "make browser        the demo page in headless chromium over http:// and https:// (run when /usr/bin/chromium exists)"
	@echo "make check-install  install into a scratch prefix, build and run a program against it, uninstall"
	@echo "make bench-smoke    the in-process benchmarks once, tiny (nothing timed)"
	@echo
	@echo "Not in make test"
	@echo "make test-browser   install chromium (as root), build, run the browser test (tests/browser; <2 min)"
	@echo "make check-asan     unit + integration tests built with ASan+UBSan"
	@echo "make check-valgrind unit tests under valgrind (no leaks, no errors)"
	@echo "make check-cluster  chat_server x3 + redis-server + haproxy: exactly-once, kill -9, SIGTERM, redis restart (~1-2 min)"
	@echo "make check-attacks  hostile clients against the example servers (tests/attacks; ~2 min)"
	@echo "make check-mutations every mutation in tests/mutations must be killed by its suites (~10 min)"
	@echo "make check-mutations-ci  one rotating shard of them (by HEAD's hash), ~150 s"
	@echo "make check-mutation-list every mutation's search text and suites still there (in make test)"
	@echo "make fuzz-build     build the libFuzzer targets (clang) into $(FUZZ_BUILD)/"
	@echo "make fuzz-smoke     every fuzz target, $(FUZZ_SMOKE_SECONDS) s in all (skips without clang's fuzzer runtime)"
	@echo "make fuzz           long runs: FUZZ_SECONDS=N per target [FUZZ_TARGETS=...]"
	@echo "make soak           SOAK_SECONDS=60 SOAK_CONNS=10000: echo_server under a long mixed load"
	@echo "make bench          benchmarks (~10 min; BENCH_QUICK=1: <1 min) -> docs/benchmarks.md"
	@echo "make bench-ffi      asyncio + wsmsg (ctypes) vs FastAPI + uvicorn, JSON workload"
	@echo "make bench-asgi     FastAPI under uvicorn: ws=wsmsg vs websockets vs wsproto"

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
             file_transfer/ft_server file_transfer/ft_client minimal_server \
             asyncapi_mock
EXAMPLES  := $(addprefix $(EXDIR)/,$(EX_NAMES))
JSON_LIBS := $(shell pkg-config --cflags --libs jansson)
UV_LIBS   := $(shell pkg-config --cflags --libs libuv)
# OpenSSL: the examples' TLS (wss://, https://); never linked into lib/
TLS_LIBS  := $(shell pkg-config --cflags --libs openssl 2>/dev/null || echo -lssl -lcrypto)
EVLOOP    := examples/common/evloop.c examples/common/evloop.h \
             examples/common/log_escape.h examples/common/mem_return.h \
             examples/common/deadline_queue.h examples/common/server_opts.h

examples: $(EXAMPLES)

$(EXDIR)/echo_server: examples/echo_server.c $(EVLOOP) $(STATIC) include/wsmsg.h
$(EXDIR)/echo_server: EXTRA_SRCS = examples/common/evloop.c
$(EXDIR)/echo_server: EXTRA_LIBS = $(TLS_LIBS)
$(EXDIR)/demo_server: examples/demo_server.c $(EVLOOP) examples/common/message_model.h \
                      examples/common/upload_dir.h $(STATIC) include/wsmsg.h
$(EXDIR)/demo_server: EXTRA_SRCS = examples/common/evloop.c
$(EXDIR)/asyncapi_mock: examples/asyncapi_mock.c $(EVLOOP) $(STATIC) include/wsmsg.h
$(EXDIR)/asyncapi_mock: EXTRA_SRCS = examples/common/evloop.c
$(EXDIR)/asyncapi_mock: EXTRA_LIBS = -lm $(TLS_LIBS)
$(EXDIR)/demo_server: EXTRA_LIBS = $(TLS_LIBS)
$(EXDIR)/echo_client: examples/echo_client.c examples/common/log_escape.h \
                       examples/common/tcp_connect.h $(STATIC) include/wsmsg.h
$(EXDIR)/echo_client: EXTRA_LIBS = $(TLS_LIBS)
# the README's epoll loop, verbatim (test_minimal_server.py checks that)
$(EXDIR)/minimal_server: examples/minimal_server.c $(STATIC) include/wsmsg.h
$(EXDIR)/uv_echo_server: examples/uv_echo_server.c examples/common/log_escape.h \
                          examples/common/mem_return.h \
                          examples/common/deadline_queue.h \
                          examples/common/server_opts.h $(STATIC) include/wsmsg.h
$(EXDIR)/uv_echo_server: EXTRA_LIBS = $(UV_LIBS)
$(EXDIR)/file_transfer/ft_server: examples/file_transfer/ft_server.c $(EVLOOP) \
                                  examples/common/upload_dir.h $(STATIC)
$(EXDIR)/file_transfer/ft_server: EXTRA_SRCS = examples/common/evloop.c
$(EXDIR)/file_transfer/ft_server: EXTRA_LIBS = $(JSON_LIBS) $(TLS_LIBS)
$(EXDIR)/file_transfer/ft_client: examples/file_transfer/ft_client.c examples/common/log_escape.h \
                                  examples/common/tcp_connect.h $(STATIC)
$(EXDIR)/file_transfer/ft_client: EXTRA_LIBS = $(JSON_LIBS)

$(EXAMPLES):
	@mkdir -p $(dir $@)
	$(CC) $(APP_CFLAGS) $< $(EXTRA_SRCS) -o $@ $(STATIC) $(DEP_LIBS) $(EXTRA_LIBS)

# The chat example (issue 16) links hiredis: built only by the targets that
# need it (chat, chat-demo, check-cluster), whose Debian packages are
# CLUSTER_PKGS, so neither `make` nor `make test` needs them.
CLUSTER_PKGS := redis-server haproxy libhiredis-dev
CHAT_SERVER  := $(EXDIR)/chat/chat_server

chat:
	@bash .ci/deps.sh $(CLUSTER_PKGS)
	@$(MAKE) --no-print-directory $(CHAT_SERVER)

$(CHAT_SERVER): examples/chat/chat_server.c $(STATIC) include/wsmsg.h
	@mkdir -p $(dir $@)
	$(CC) $(APP_CFLAGS) $< -o $@ $(STATIC) $(DEP_LIBS) -lhiredis -lpthread

chat-demo: lib chat
	@bash examples/chat/demo.sh

check-cluster: lib chat
	@$(PYTHON) tests/cluster/run.py

# The load generator links no wsmsg (it must be able to measure anything).
examples/wsbench: examples/wsbench.c examples/common/ws_frame.h
	$(CC) $(STD) $(WARN) $(CFLAGS) $< -o $@ -lm -lz

# ---- benchmarks -------------------------------------------------------------------
# Built by `all` so that they keep compiling; run by `make bench`
# (tests/bench/run.sh: end-to-end scenarios + micro-benchmarks, report to
# stdout and docs/benchmarks.md).  No timed assertions anywhere.

BENCH_BINS := $(BUILD)/bench/wslay_echo_server $(BUILD)/bench/micro \
              $(BUILD)/bench/bench_timers $(BUILD)/bench/deflate_mem \
              $(BUILD)/bench/fanout

bench-build: $(BENCH_BINS) examples/wsbench

$(BUILD)/bench/wslay_echo_server: tests/bench/wslay_echo_server.c
	@mkdir -p $(dir $@)
	$(CC) $(STD) $(WARN) $(CFLAGS) $< -o $@ -lwslay -ljansson -lnettle

$(BUILD)/bench/micro: tests/bench/micro.c examples/common/message_model.h examples/common/ws_frame.h $(STATIC) include/wsmsg.h
	@mkdir -p $(dir $@)
	$(CC) $(APP_CFLAGS) $< -o $@ $(STATIC) $(DEP_LIBS) -ljansson

$(BUILD)/bench/deflate_mem: tests/bench/deflate_mem.c $(STATIC) include/wsmsg.h
	@mkdir -p $(dir $@)
	$(CC) $(APP_CFLAGS) $< -o $@ $(STATIC) $(DEP_LIBS)

$(BUILD)/bench/fanout: tests/bench/fanout.c $(STATIC) include/wsmsg.h
	@mkdir -p $(dir $@)
	$(CC) $(APP_CFLAGS) $< -o $@ $(STATIC) $(DEP_LIBS)

$(BUILD)/bench/bench_timers: tests/bench/bench_timers.c $(STATIC) include/wsmsg.h
	@mkdir -p $(dir $@)
	$(CC) $(APP_CFLAGS) $< -o $@ $(STATIC) $(DEP_LIBS)

# the in-process benchmarks once, tiny: they still build, run and answer
# every message (no timing is judged)
bench-smoke: $(BUILD)/bench/micro $(BUILD)/bench/bench_timers $(BUILD)/bench/deflate_mem \
             $(BUILD)/bench/fanout
	@echo "== bench-smoke"
	@$(BUILD)/bench/fanout 100 0.01 >/dev/null
	@$(BUILD)/bench/micro --quick >/dev/null
	@$(BUILD)/bench/deflate_mem --quick >/dev/null
	@$(BUILD)/bench/bench_timers 1000 >/dev/null

bench: all
	@BUILD=$(BUILD) PYTHON=$(PYTHON) bash tests/bench/run.sh

# ---- tests ------------------------------------------------------------------------

$(BUILD)/tests/test_%: tests/unit/test_%.c $(STATIC) $(wildcard tests/unit/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(APP_CFLAGS) -Ilib -Wno-conversion $< -o $@ $(STATIC) $(DEP_LIBS) \
	  $(shell pkg-config --cflags --libs cmocka) $(UNIT_LDFLAGS)

# test_alloc: every libc allocator called from a statically linked object
# (libwsmsg.a's, the test's) goes to the test's __wrap_ counters, so the
# test sees any allocation that bypassed the wsmsg_mem hook.
ALLOC_WRAP := malloc calloc realloc free strdup strndup reallocarray \
              aligned_alloc posix_memalign asprintf vasprintf
$(BUILD)/tests/test_alloc: UNIT_LDFLAGS = $(foreach f,$(ALLOC_WRAP),-Wl,--wrap=$(f))

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

# docs/api.md is generated from the header and must be current; every
# fallible function's comment ends with its "Returns ..., or:" error list
# (gen_api.py --check); `make help` names every target users may call.
check-docs: lib
	@python3 docs/gen_api.py --check
	@for s in $$(nm -D --defined-only lib/libwsmsg.so | awk '$$2=="T" {print $$3}'); do \
	  grep -q "^#### \`$$s\`" docs/api.md || { echo "check-docs: $$s undocumented" >&2; exit 1; }; done
	@echo "check-docs: every exported function is in docs/api.md"
	@help=$$($(MAKE) --no-print-directory -s help); \
	for t in $$($(MAKE) --no-print-directory -pq 2>/dev/null | sed -n 's/^\.PHONY: //p'); do \
	  [ "$$t" = lib-asan-tests ] && continue; \
	  echo "$$help" | grep -Eq "^make \[?$$t\]? " || \
	    { echo "check-docs: make help does not list $$t" >&2; exit 1; }; done
	@echo "check-docs: make help lists every target"

check-install: lib
	@bash tests/install/run.sh

# ABI hygiene (docs/abi.md): only wsmsg_ symbols exported; wsmsg.h compiles
# as C11 and C++ under gcc/clang with -Wall -Wextra -pedantic -Werror and
# every function links from both; versions and soname agree; every function
# is callable from ctypes and the Python binding matches the header; no
# incompatible change against tests/abi/baseline.txt without a SOMAJOR bump.
check-abi: check-symbols
	@bash tests/abi/check_header.sh $(VERSION) $(SOMAJOR)
	@$(PYTHON) tests/abi/check_abi.py --somajor $(SOMAJOR) --cc $(CC) \
	  --cflags "$(DEP_CFLAGS)"
	@$(PYTHON) tests/abi/selftest.py $(SOMAJOR)

# asyncio/uvloop + wsmsg (ctypes) against FastAPI + uvicorn on the JSON
# validate-and-reply workload (tests/bench/ffi_json.sh; needs examples/wsbench
# and tests/bench/fastapi_app.py from the benchmark suite, or WSBENCH= and
# FASTAPI_APP=).  No timed assertions.
.PHONY: bench-ffi
bench-ffi: all
	@PYTHON=$(PYTHON) bash tests/bench/ffi_json.sh

# FastAPI on wsmsg: the article's app under uvicorn with ws=wsmsg vs the
# built-in websockets and wsproto protocols (tests/bench/asgi_bench.sh)
.PHONY: bench-asgi
bench-asgi: all
	@PYTHON=$(PYTHON) bash tests/bench/asgi_bench.sh

# The Python binding's unit tests (examples/ffi/python), with $(PYTHON) and,
# when it is another interpreter, the python3 on PATH (any CPython >= 3.9).
# The asyncio server runs in `integration` (test_asyncio_server.py).
check-ffi: lib
	@$(PYTHON) examples/ffi/python/tests/test_wsmsg.py
	@other=$$(command -v python3 || true); \
	if [ -n "$$other" ] && [ "$$($$other -c 'import sys; print(sys.executable)' 2>/dev/null)" != \
	     "$$($(PYTHON) -c 'import sys; print(sys.executable)')" ]; then \
	  echo "== binding tests with $$other"; $$other examples/ffi/python/tests/test_wsmsg.py; fi

test: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory schema-suite
	@$(MAKE) --no-print-directory check-symbols
	@$(MAKE) --no-print-directory check-docs
	@$(MAKE) --no-print-directory check-abi
	@$(MAKE) --no-print-directory check-mutation-list
	@$(MAKE) --no-print-directory check-ffi
	@$(MAKE) --no-print-directory integration
	@if [ -x /usr/bin/chromium ]; then $(MAKE) --no-print-directory browser; \
	 else echo "== browser test: skipped: /usr/bin/chromium is not installed (make test-browser installs it as root)"; fi
	@$(MAKE) --no-print-directory check-install
	@$(MAKE) --no-print-directory bench-smoke
	@echo "make test: all suites passed"

# The demo page in Debian's chromium, headless (tests/browser/test_browser.py):
# test-browser installs chromium first when run as root (~100 MB, so it is
# not in DEB_PKGS); `make test` runs the browser test when it is there.
test-browser:
	@if [ "$$(id -u)" -eq 0 ]; then bash .ci/deps.sh chromium; fi
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory browser

.PHONY: browser
browser:
	@if pkg-config --exists hiredis 2>/dev/null; then \
	  $(MAKE) --no-print-directory $(CHAT_SERVER); fi
	@echo "== tests/browser/test_browser.py"
	@timeout 150 $(PYTHON) tests/browser/test_browser.py

SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
# wsbench (the load tool, no wsmsg inside) is taken unsanitized from
# examples/: built here so that check-asan works on a fresh clone alone
check-asan:
	@$(MAKE) --no-print-directory examples/wsbench
	@$(MAKE) --no-print-directory BUILD=.build-asan CFLAGS="-O1 -g $(SAN)" \
	  STATIC=.build-asan/libwsmsg.a EXDIR=.build-asan/examples lib-asan-tests

# internal: run by check-asan with BUILD/CFLAGS/EXDIR overridden
.PHONY: lib-asan-tests
# The Python binding (its unit tests, and the asyncio server that
# test_asyncio_server.py drives) loads the sanitized $(BUILD)/libwsmsg.so
# with the compiler's shared ASan/UBSan runtimes preloaded
# (WSMSG_ASAN_LIB, WSMSG_ASAN_PRELOAD; tests/integration/run.sh passes them
# on).  Without those runtimes the binding tests are skipped, and under
# CI=true that is a failure.
lib-asan-tests: $(STATIC) $(UNIT_BINS) $(EXAMPLES) $(BUILD)/libwsmsg.so
	@set -e; for t in $(UNIT_BINS); do echo "== $$t (asan)"; \
	  ASAN_OPTIONS=detect_leaks=1 $$t; done
	@asan=$$($(CC) -print-file-name=libasan.so); ubsan=$$($(CC) -print-file-name=libubsan.so); \
	if [ -f "$$asan" ] && [ -f "$$ubsan" ]; then pre="$$asan $$ubsan"; else pre=; fi; \
	EXAMPLE_BIN=$(EXDIR) ASAN_OPTIONS=detect_leaks=1 WSMSG_ASAN_LIB=$(BUILD)/libwsmsg.so \
	  WSMSG_ASAN_PRELOAD="$$pre" bash tests/integration/run.sh
	@asan=$$($(CC) -print-file-name=libasan.so); ubsan=$$($(CC) -print-file-name=libubsan.so); \
	if [ -f "$$asan" ] && [ -f "$$ubsan" ]; then echo "== binding tests (asan)"; \
	  WSMSG_LIB=$(BUILD)/libwsmsg.so LD_PRELOAD="$$asan $$ubsan" ASAN_OPTIONS=detect_leaks=0 \
	  $(PYTHON) examples/ffi/python/tests/test_wsmsg.py; \
	elif [ "$$CI" = true ]; then \
	  echo "== binding tests (asan): FAILED: $(CC) has no shared ASan runtime; CI=true: a skip is a failure" >&2; exit 1; \
	else echo "== binding tests (asan): skipped, $(CC) has no shared ASan runtime"; fi

# the sanitized shared library, for the Python binding (check-asan only)
$(BUILD)/libwsmsg.so: $(LIB_OBJS)
	$(CC) $(CFLAGS) -shared -o $@ $^ $(DEP_LIBS)

# ---- attack suite: one hostile client at a time (not in `test` yet) -----------------
# tests/attacks/attacks.py starts its own servers (EXAMPLE_BIN=dir for other
# binaries), measures CPU/RSS/descriptors from /proc and a normal client's
# latency; cases waiting for library work are listed as XFAIL there.
# See docs/reliability.md.

check-attacks: examples
	@EXAMPLE_BIN=$(EXDIR) $(PYTHON) tests/attacks/attacks.py

# ---- mutations: break the library on purpose, check the tests notice ----------
# tests/mutations/mutations.txt lists small source changes, each with the
# suites that must fail on it; run.py applies each to a scratch copy of the
# tree (never to this checkout), rebuilds and runs them.  Not in `test`.
# MUTATIONS=name,... picks some; MUTATION_DISCOVER=1 shows every suite that
# kills each.  See docs/testing.md.
.PHONY: check-mutations check-mutations-ci check-mutation-list
check-mutations:
	@$(PYTHON) tests/mutations/run.py

# In `test` (well under a second, no build): every mutation's search text
# occurs once in lib/*.c and every suite it names exists, so a change that
# renames a mutated line fails `make test` instead of one CI shard later.
check-mutation-list:
	@$(PYTHON) tests/mutations/run.py --check-list

# CI's share: one of MUTATION_SHARDS shards, chosen by HEAD's hash (each
# commit runs another one), and no mutation started after
# MUTATION_CI_BUDGET seconds (docs/testing.md, "Mutations").
MUTATION_SHARDS ?= 8
MUTATION_CI_BUDGET ?= 150
check-mutations-ci:
	@MUTATION_SHARD=commit/$(MUTATION_SHARDS) \
	  MUTATION_BUDGET_SECONDS=$(MUTATION_CI_BUDGET) $(PYTHON) tests/mutations/run.py

# ---- soak: long run, many connections, misbehaving peers (not in `test`) ----
# tests/soak/soak.c is library-free: it starts SOAK_SERVER itself and
# checks every echo, the close codes, the server's RSS and its exit status.
# See docs/reliability.md.

SOAK_SECONDS ?= 60
SOAK_CONNS   ?= 10000
SOAK_RATE    ?= 5000
SOAK_SERVER  ?= $(EXDIR)/echo_server
SOAK_ARGS    ?=

$(BUILD)/soak/soak: tests/soak/soak.c examples/common/ws_frame.h
	@mkdir -p $(dir $@)
	$(CC) $(STD) $(WARN) $(CFLAGS) $< -o $@

soak: $(BUILD)/soak/soak $(SOAK_SERVER)
	@ulimit -n $$(( $(SOAK_CONNS) + 4096 )) 2>/dev/null || true; \
	  $(BUILD)/soak/soak --server $(SOAK_SERVER) --seconds $(SOAK_SECONDS) \
	    --conns $(SOAK_CONNS) --rate $(SOAK_RATE) \
	    --log $(BUILD)/soak/server.log --samples $(BUILD)/soak/samples.csv \
	    $(SOAK_ARGS)

VALGRIND := valgrind -q --error-exitcode=99 --leak-check=full \
            --show-leak-kinds=definite,indirect,possible --errors-for-leak-kinds=definite,indirect,possible
check-valgrind: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t (valgrind)"; \
	  WSMSG_TEST_NO_JIT=1 $(VALGRIND) $$t; done

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

# Without a fuzzer runtime it skips, except under CI=true (.ci/run runs it):
# there a skip would be a green fuzz stage that fuzzed nothing.
fuzz-smoke:
	@FUZZ_CC="$(FUZZ_CC)" FUZZ_BUILD="$(FUZZ_BUILD)" bash tests/fuzz/run.sh probe || \
	  { if [ "$$CI" = true ]; then \
	      echo "fuzz-smoke: FAILED: $(FUZZ_CC) cannot link -fsanitize=fuzzer (needs clang and libclang-rt-dev); CI=true: a skip is a failure" >&2; exit 1; fi; \
	    echo "fuzz-smoke: skipped: $(FUZZ_CC) cannot link -fsanitize=fuzzer (needs clang and libclang-rt-dev)"; exit 0; }; \
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

# `make run PORT=9000 HOST=0.0.0.0`.  Only values given on the command line
# count: a HOST that the shell exports (zsh sets it to the machine's name)
# must not move the demo off 127.0.0.1.
RUN_PORT = $(if $(filter command line,$(origin PORT)),$(PORT),8080)
RUN_HOST = $(if $(filter command line,$(origin HOST)),$(HOST),127.0.0.1)

run: deps
	@$(MAKE) --no-print-directory all
	./examples/demo_server --host $(RUN_HOST) --port $(RUN_PORT)

clean:
	rm -rf $(BUILD) .build-asan $(FUZZ_BUILD) lib/libwsmsg.a lib/libwsmsg.so* $(EXAMPLES) \
	       pkgconfig/wsmsg.pc
