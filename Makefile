# mxacl - Postfix policy engine.
#
#   make            build build/mxacld and build/mxacl (optimised)
#   make run        build and run mxacld in the foreground on conf.d/ rules
#   make check      install test dependencies, build with sanitizers, run every test
#   make bench      measure mxacld against nullpolicy and peers (not a test)
#
# Generated parser and lexer sources go to the build directory. A second,
# sanitised build (ASan + UBSan) lives in build/asan and is what the tests run.

B       ?= build
V       ?= 0
ifeq ($(V),0)
Q        = @
SAY      = @printf '  %-6s %s\n'
else
Q        =
SAY      = @true
endif
SAN     ?= 0
CC      ?= cc
PKGS     = libevent libpcre2-8 hiredis libmaxminddb libunbound zlib libsystemd
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lspf2 -lresolv -pthread
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null)

WARN     = -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wno-unused-parameter
CPPFLAGS = -D_GNU_SOURCE $(HOOKS_DEF) -I. -I$(B)/gen $(PKG_CFLAGS)
ifeq ($(SAN),1)
OPT      = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
           -fno-sanitize-recover=undefined
LDSAN    = -fsanitize=address,undefined
else ifeq ($(SAN),fuzz)
OPT      = -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined \
           -fno-sanitize-recover=undefined
LDSAN    = -fsanitize=fuzzer,address,undefined
else
OPT      = -O2 -g
LDSAN    =
endif
# Test builds (sanitised, fuzz) carry the test hooks (util/testhooks.h);
# the production build does not.
ifneq ($(SAN),0)
HOOKS_DEF = -DMXACL_TESTHOOKS
HOOKS_SRC = $(wildcard tests/hooks/*.c)
endif
CFLAGS  ?=
ALL_CFLAGS = -std=c11 $(OPT) $(WARN) $(CPPFLAGS) $(CFLAGS)

LIB_SRC  = $(wildcard util/*.c grammar/*.c engine/*.c acl/*.c actions/*.c backends/*.c) $(HOOKS_SRC)
GEN_SRC  = $(B)/gen/parser.c $(B)/gen/lexer.c
LIB_OBJ  = $(patsubst %.c,$(B)/obj/%.o,$(LIB_SRC)) $(B)/obj/gen/parser.o $(B)/obj/gen/lexer.o
DAEMON_OBJ = $(patsubst %.c,$(B)/obj/%.o,$(wildcard daemon/*.c))
CLI_OBJ  = $(patsubst %.c,$(B)/obj/%.o,$(wildcard cli/*.c))
CLI_LIB_OBJ = $(filter-out $(B)/obj/cli/mxacl.o,$(CLI_OBJ))   # the tool's modules, for unit tests
UNIT_SRC = $(wildcard tests/unit/*.c)
UNIT_OBJ = $(patsubst %.c,$(B)/obj/%.o,$(UNIT_SRC))

FUZZ_TARGETS = fuzz_policy fuzz_request
.SECONDARY:

.PHONY: all run check unit bench clean asan fuzz docs
all: $(B)/mxacld $(B)/mxacl

$(B)/gen/parser.c $(B)/gen/parser.h: grammar/parser.y
	@mkdir -p $(B)/gen
	$(SAY) BISON $@
	$(Q)bison -Wall -Werror --defines=$(B)/gen/parser.h -o $(B)/gen/parser.c $<

$(B)/gen/lexer.c $(B)/gen/lexer.h: grammar/lexer.l $(B)/gen/parser.h
	@mkdir -p $(B)/gen
	$(SAY) FLEX $@
	$(Q)flex --header-file=$(B)/gen/lexer.h -o $(B)/gen/lexer.c $<

$(B)/obj/gen/%.o: $(B)/gen/%.c
	@mkdir -p $(dir $@)
	$(SAY) CC $@
	$(Q)$(CC) $(ALL_CFLAGS) -Wno-unused-function -Wno-sign-compare -Wno-missing-prototypes -MMD -MP -c -o $@ $<

$(B)/obj/%.o: %.c | $(B)/gen/parser.h $(B)/gen/lexer.h
	@mkdir -p $(dir $@)
	$(SAY) CC $@
	$(Q)$(CC) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

$(B)/libmxacl.a: $(LIB_OBJ)
	$(SAY) AR $@
	$(Q)rm -f $@ && ar rcs $@ $^

$(B)/mxacld: $(DAEMON_OBJ) $(B)/libmxacl.a
	$(SAY) LD $@
	$(Q)$(CC) $(LDSAN) -o $@ $^ $(PKG_LIBS) -lm

$(B)/mxacl: $(CLI_OBJ) $(B)/libmxacl.a
	$(SAY) LD $@
	$(Q)$(CC) $(LDSAN) -o $@ $^ $(PKG_LIBS) -lm

$(B)/unit: $(UNIT_OBJ) $(CLI_LIB_OBJ) $(B)/libmxacl.a
	$(SAY) LD $@
	$(Q)$(CC) $(LDSAN) -o $@ $^ $(PKG_LIBS) $(CHECK_LIBS) -lm

# libFuzzer targets, built with clang in build/fuzz (tests/fuzz runs them).
$(B)/fuzz_%: $(B)/obj/tests/fuzz/fuzz_%.o $(B)/libmxacl.a
	$(SAY) LD $@
	$(Q)$(CC) $(LDSAN) -o $@ $^ $(PKG_LIBS) -lm

fuzz:
	+$(MAKE) B=build/fuzz SAN=fuzz CC=clang $(addprefix build/fuzz/,$(FUZZ_TARGETS))

asan:
	+$(MAKE) B=build/asan SAN=1 build/asan/mxacld build/asan/mxacl build/asan/unit

run:
	scripts/deps build
	+$(MAKE) all
	./$(B)/mxacld -c conf.d/policy.conf -l inet:127.0.0.1:10038

check:
	scripts/deps
	+$(MAKE) all
	+$(MAKE) asan
	+$(MAKE) fuzz
	tests/run

bench: all
	scripts/deps
	bench/run

# docs/operations.md's table of settings, printed by mxacld from its table
# (engine/settings.c); tests/daemon/test_settings_docs.py fails when they differ.
docs: $(B)/mxacld
	$(Q)$(B)/mxacld --settings-markdown > $(B)/settings.md
	$(Q)awk -v t=$(B)/settings.md '/^<!-- settings table begin/ { print; \
		while ((getline l < t) > 0) print l; skip = 1; next } \
		/^<!-- settings table end/ { skip = 0 } !skip' docs/operations.md > $(B)/operations.md
	$(Q)mv $(B)/operations.md docs/operations.md

clean:
	rm -rf build

-include $(shell find $(B)/obj -name '*.d' 2>/dev/null)
