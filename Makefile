# mxacl - Postfix policy engine.
#
#   make            build build/mxacld and build/mxacl (optimised)
#   make run        build and run mxacld in the foreground on conf.d/ rules
#   make check      install test dependencies, build with sanitizers, run every test
#   make bench      measure mxacld against nullpolicy and peers (not a test)
#   make install    install under PREFIX (default /usr/local); DESTDIR for staging
#   make uninstall  remove what make install put there (not your policy)
#   make man        check the man pages render without a warning
#   make deb        build build/deb/mxacl_VERSION_ARCH.deb (debhelper, debian/)
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
PKGS     = libevent libpcre2-8 libhs hiredis libmaxminddb libunbound zlib libsystemd nettle libpsl
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
LDFLAGS ?=
ALL_CFLAGS = -std=c11 $(OPT) $(WARN) $(CPPFLAGS) $(CFLAGS)

LIB_SRC  = $(wildcard util/*.c grammar/*.c engine/*.c acl/*.c actions/*.c backends/*.c) $(HOOKS_SRC)
GEN_SRC  = $(B)/gen/parser.c $(B)/gen/lexer.c
LIB_OBJ  = $(patsubst %.c,$(B)/obj/%.o,$(LIB_SRC)) $(B)/obj/gen/parser.o $(B)/obj/gen/lexer.o
DAEMON_OBJ = $(patsubst %.c,$(B)/obj/%.o,$(wildcard daemon/*.c))
CLI_OBJ  = $(patsubst %.c,$(B)/obj/%.o,$(wildcard cli/*.c))
CLI_LIB_OBJ = $(filter-out $(B)/obj/cli/mxacl.o,$(CLI_OBJ))   # the tool's modules, for unit tests
UNIT_SRC = $(wildcard tests/unit/*.c)
UNIT_OBJ = $(patsubst %.c,$(B)/obj/%.o,$(UNIT_SRC))

FUZZ_TARGETS = fuzz_policy fuzz_request fuzz_multire
.SECONDARY:

.PHONY: all run check unit bench clean asan fuzz docs install uninstall man deb
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
	$(Q)$(CC) $(LDSAN) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) -lm

$(B)/mxacl: $(CLI_OBJ) $(B)/libmxacl.a
	$(SAY) LD $@
	$(Q)$(CC) $(LDSAN) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) -lm

$(B)/unit: $(UNIT_OBJ) $(CLI_LIB_OBJ) $(B)/libmxacl.a
	$(SAY) LD $@
	$(Q)$(CC) $(LDSAN) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(CHECK_LIBS) -lm

# libFuzzer targets, built with clang in build/fuzz (tests/fuzz runs them).
$(B)/fuzz_%: $(B)/obj/tests/fuzz/fuzz_%.o $(B)/libmxacl.a
	$(SAY) LD $@
	$(Q)$(CC) $(LDSAN) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) -lm

fuzz:
	+$(MAKE) B=build/fuzz SAN=fuzz CC=clang $(addprefix build/fuzz/,$(FUZZ_TARGETS))

asan:
	+$(MAKE) B=build/asan SAN=1 build/asan/mxacld build/asan/mxacl build/asan/unit

# The README's "Using it" lines talk to this daemon: its control socket is
# $(B)/control, so that no root is needed (/run/mxacld/control is the
# installed service's). tests/docs/test_readme.py runs those lines against
# the same command line.
RUN_LISTEN  = inet:127.0.0.1:10038
RUN_CONTROL = $(B)/control
run:
	scripts/deps build
	+$(MAKE) all
	./$(B)/mxacld -c conf.d/policy.conf -l $(RUN_LISTEN) --control $(RUN_CONTROL)

check:
	scripts/deps
	+$(MAKE) all
	+$(MAKE) asan
	+$(MAKE) fuzz
	tests/run

bench: all
	scripts/deps
	bench/run

# docs/operations.md's table of settings and the OPTIONS of docs/man/mxacld.8,
# printed by mxacld from its table (engine/settings.c);
# tests/daemon/test_settings_docs.py and tests/install/test_man.py fail when
# they differ.
docs: $(B)/mxacld
	$(Q)$(B)/mxacld --settings-markdown > $(B)/settings.md
	$(Q)awk -v t=$(B)/settings.md '/^<!-- settings table begin/ { print; \
		while ((getline l < t) > 0) print l; skip = 1; next } \
		/^<!-- settings table end/ { skip = 0 } !skip' docs/operations.md > $(B)/operations.md
	$(Q)mv $(B)/operations.md docs/operations.md
	$(Q)$(B)/mxacld --settings-man > $(B)/settings.man
	$(Q)awk -v t=$(B)/settings.man '/^\.\\" settings begin/ { print; \
		while ((getline l < t) > 0) print l; skip = 1; next } \
		/^\.\\" settings end/ { skip = 0 } !skip' docs/man/mxacld.8 > $(B)/mxacld.8
	$(Q)mv $(B)/mxacld.8 docs/man/mxacld.8

# ---- install ------------------------------------------------------------------
# The usual names, each overridable. sysconfdir is /etc whatever PREFIX is:
# mxacld and mxacl read /etc/mxacl/policy.conf unless told otherwise.
PREFIX     ?= /usr/local
DESTDIR    ?=
sbindir    ?= $(PREFIX)/sbin
bindir     ?= $(PREFIX)/bin
mandir     ?= $(PREFIX)/share/man
docdir     ?= $(PREFIX)/share/doc/mxacl
sysconfdir ?= /etc
systemdunitdir ?= $(PREFIX)/lib/systemd/system
sysusersdir    ?= $(PREFIX)/lib/sysusers.d
tmpfilesdir    ?= $(PREFIX)/lib/tmpfiles.d
MANPAGES   = docs/man/mxacld.8 docs/man/mxacl.1 docs/man/mxacl-policy.5
DOCS       = $(wildcard docs/*.md) README LICENSE conf.d/request.txt
# example policies (other programs' policies translated), as documentation
EXAMPLES   = $(wildcard conf.d/examples/*.conf)
EXAMPLE_LISTS = $(wildcard conf.d/lists/*)
# the config: installed when there is none, never over one (yours)
INSTALL_KEEP = install_keep() { if [ -e "$$2" ]; then \
		echo "  KEEP   $$2 (exists; the example is $$1)"; \
	else install -m 0644 "$$1" "$$2"; fi; }

install: $(B)/mxacld $(B)/mxacl
	install -d $(DESTDIR)$(sbindir) $(DESTDIR)$(bindir) $(DESTDIR)$(docdir)/examples \
		$(DESTDIR)$(mandir)/man1 $(DESTDIR)$(mandir)/man5 $(DESTDIR)$(mandir)/man8 \
		$(DESTDIR)$(systemdunitdir) $(DESTDIR)$(sysusersdir) $(DESTDIR)$(tmpfilesdir) \
		$(DESTDIR)$(sysconfdir)/mxacl/lists $(DESTDIR)$(sysconfdir)/default
	install -m 0755 $(B)/mxacld $(DESTDIR)$(sbindir)/mxacld
	install -m 0755 $(B)/mxacl $(DESTDIR)$(bindir)/mxacl
	install -m 0644 docs/man/mxacl.1 $(DESTDIR)$(mandir)/man1/mxacl.1
	install -m 0644 docs/man/mxacl-policy.5 $(DESTDIR)$(mandir)/man5/mxacl-policy.5
	install -m 0644 docs/man/mxacld.8 $(DESTDIR)$(mandir)/man8/mxacld.8
	install -m 0644 $(DOCS) $(DESTDIR)$(docdir)/
	install -m 0644 $(EXAMPLES) $(DESTDIR)$(docdir)/examples/
	sed -e 's|@SBINDIR@|$(sbindir)|g' -e 's|@SYSCONFDIR@|$(sysconfdir)|g' \
		dist/mxacld.service.in > $(DESTDIR)$(systemdunitdir)/mxacld.service
	chmod 0644 $(DESTDIR)$(systemdunitdir)/mxacld.service
	install -m 0644 dist/mxacl.sysusers $(DESTDIR)$(sysusersdir)/mxacl.conf
	install -m 0644 dist/mxacl.tmpfiles $(DESTDIR)$(tmpfilesdir)/mxacl.conf
	@$(INSTALL_KEEP); install_keep dist/mxacld.default $(DESTDIR)$(sysconfdir)/default/mxacld; \
	install_keep conf.d/policy.conf $(DESTDIR)$(sysconfdir)/mxacl/policy.conf; \
	for f in $(EXAMPLE_LISTS); do \
		install_keep $$f $(DESTDIR)$(sysconfdir)/mxacl/lists/$${f##*/}; done

# Everything install put there, but the config: it is removed only while it
# is still the example as shipped.
uninstall:
	rm -f $(DESTDIR)$(sbindir)/mxacld $(DESTDIR)$(bindir)/mxacl \
		$(DESTDIR)$(mandir)/man1/mxacl.1 $(DESTDIR)$(mandir)/man5/mxacl-policy.5 \
		$(DESTDIR)$(mandir)/man8/mxacld.8 $(DESTDIR)$(systemdunitdir)/mxacld.service \
		$(DESTDIR)$(sysusersdir)/mxacl.conf $(DESTDIR)$(tmpfilesdir)/mxacl.conf
	rm -rf $(DESTDIR)$(docdir)
	@for p in dist/mxacld.default:default/mxacld conf.d/policy.conf:mxacl/policy.conf \
		$(foreach f,$(EXAMPLE_LISTS),$(f):mxacl/lists/$(notdir $(f))); do \
		src=$${p%%:*}; dst=$(DESTDIR)$(sysconfdir)/$${p#*:}; \
		if [ -e "$$dst" ] && cmp -s "$$src" "$$dst"; then rm -f "$$dst"; \
		elif [ -e "$$dst" ]; then echo "  KEEP   $$dst (changed from the example)"; fi; done
	-@rmdir $(DESTDIR)$(sysconfdir)/mxacl/lists $(DESTDIR)$(sysconfdir)/mxacl 2>/dev/null

# The man pages render without a warning (tests/install/test_man.py too).
man:
	@for m in $(MANPAGES); do \
		out=$$(groff -man -ww -z -Tutf8 $$m 2>&1); \
		if [ -n "$$out" ]; then echo "$$m:"; echo "$$out"; exit 1; fi; done

# The Debian package, built from a copy of the tree in build/deb (the source
# tree stays clean): build/deb/mxacl_VERSION_ARCH.deb. debian/ says how.
deb:
	rm -rf build/deb && mkdir -p build/deb/src
	tar -c --exclude=./build --exclude=./.git . | tar -x -C build/deb/src
	cd build/deb/src && dpkg-buildpackage -b -us -uc -j2 >../build.log 2>&1 \
		|| { tail -40 ../build.log; exit 1; }
	@ls build/deb/*.deb

clean:
	rm -rf build

-include $(shell find $(B)/obj -name '*.d' 2>/dev/null)
