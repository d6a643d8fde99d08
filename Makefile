# cloudviz-agent: one plain Makefile.
#   make                 build build/cloudviz-agent (as root, installs the
#                        missing build packages first; otherwise a missing
#                        package is one error naming it)
#   make deps            install the missing build and test packages (root)
#   make check           make deps, then unit tests plain and under ASan+UBSan,
#                        fuzz smoke run, integration tests
#   make demo            make deps, then show the agent applying the node policy
#                        in throwaway netns
#   make deb / rpm       packages into build/packages/ (packaging/deb, packaging/rpm)
#   make check-package   the deb's life cycle in a booted Debian 12 container
#   make check-fresh     make demo and make check on a pristine Debian 12 root
#   make install DESTDIR=... PREFIX=...
# Quiet unless V=1.
#
# Order: the targets that install packages (demo, check) do so first and
# build in a sub-make; before the first object of each build
# scripts/check-build-deps.sh checks (as root: installs) the compiler and
# every pkg-config module; pkg-config runs only when a recipe needs its
# flags, after that. So no flag is computed before the package that
# provides it is installed, and a missing package is an error naming it,
# never a link error.

VERSION  := $(shell cat VERSION 2>/dev/null || echo 0.0.0)
PREFIX   ?= /usr
SBINDIR  ?= $(PREFIX)/sbin
DESTDIR  ?=
# Install locations. The agent's built-in defaults are /etc/cloudviz-agent/...,
# so SYSCONFDIR does not follow PREFIX. The systemd directories are those
# systemd reads under /usr; Debian 12's debhelper wants units in
# /lib/systemd/system (packaging/deb passes SYSTEMDUNITDIR).
SYSCONFDIR     ?= /etc
DATADIR        ?= $(PREFIX)/share
MANDIR         ?= $(DATADIR)/man
DOCDIR         ?= $(DATADIR)/doc/cloudviz-agent
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR    ?= $(PREFIX)/lib/sysusers.d
TMPFILESDIR    ?= $(PREFIX)/lib/tmpfiles.d
CATALOGDIR     ?= $(PREFIX)/lib/systemd/catalog
BUILD    ?= build

CC       ?= cc
PKGS     := libnftnl libmnl jansson libsystemd libssl libcrypto libcurl libseccomp
# Evaluated once, at first use in a recipe (not when the Makefile is parsed).
PKG_CFLAGS = $(eval PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS)))$(PKG_CFLAGS)
PKG_LIBS   = $(eval PKG_LIBS := $(shell pkg-config --libs $(PKGS)))$(PKG_LIBS)
CMOCKA_LIBS = $(eval CMOCKA_LIBS := $(shell pkg-config --libs cmocka))$(CMOCKA_LIBS)

# CFLAGS is the user's (optimisation, debug); SAN adds sanitizers to both
# compile and link. Warnings and includes are always on.
CFLAGS   ?= -O2 -g
SAN      ?=
# gcc only: truncated diagnostic paths are harmless (clang lacks the flag)
CC_WARN_EXTRA ?= $(if $(findstring clang,$(CC)),,-Wno-format-truncation)
ALL_CFLAGS = $(CFLAGS) $(SAN) -std=gnu11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
            -Wmissing-prototypes -Wformat=2 -Wno-unused-parameter $(CC_WARN_EXTRA) \
            -fno-strict-aliasing -D_GNU_SOURCE -DCVZ_VERSION='"$(VERSION)"' \
            -Iinclude $(PKG_CFLAGS)
DEPFLAGS  = -MMD -MP
LDLIBS   += $(PKG_LIBS)

ifeq ($(V),1)
Q :=
else
Q := @
endif

AGENT_SRC := $(wildcard agent/*.c)
LIB_SRC   := $(filter-out agent/main.c,$(AGENT_SRC))
LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/%.o)
MAIN_OBJ  := $(BUILD)/agent/main.o
UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNIT_BIN  := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

all: $(BUILD)/cloudviz-agent

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) $(DEPFLAGS) -c -o $@ $<

$(BUILD)/libagent.a: $(LIB_OBJ)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/cloudviz-agent: $(MAIN_OBJ) $(BUILD)/libagent.a
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(BUILD)/libagent.a
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(CMOCKA_LIBS)

unit: $(UNIT_BIN)

# The same unit tests, built again with AddressSanitizer and UBSan.
ASAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
asan:
	$(Q)$(MAKE) --no-print-directory BUILD=$(BUILD)/asan CFLAGS="-O1 -g" SAN="$(ASAN_FLAGS)" unit $(BUILD)/asan/cloudviz-agent

# libFuzzer targets, one per tests/fuzz/fuzz_*.c (needs clang): the policy
# parser, the control API reply parser and control-socket requests. The library is built with
# -fsanitize=fuzzer-no-link; only the targets link libFuzzer's main.
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=%)
fuzz:
	$(Q)$(MAKE) --no-print-directory BUILD=$(BUILD)/fuzz CC=clang CFLAGS="-O1 -g" \
		SAN="-fsanitize=fuzzer-no-link,address,undefined" $(addprefix $(BUILD)/fuzz/,$(FUZZ_BIN))

$(BUILD)/fuzz_%: $(BUILD)/tests/fuzz/fuzz_%.o $(BUILD)/libagent.a
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_CFLAGS) -fsanitize=fuzzer $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Before the first object of a build: the compiler and the pkg-config
# modules are there, or (as root) their Debian packages are installed now,
# or one error names them. Order-only, so it never makes anything out of
# date; one after the other, so that two apt runs never race. demo and check
# have run scripts/install-deps.sh already and build with
# BUILD_DEPS_INSTALL= (check only): a package missing from its list is then
# an error, not quietly installed (make check-fresh relies on that).
BUILD_DEPS_INSTALL ?= --install
build-deps:
	$(Q)scripts/check-build-deps.sh $(BUILD_DEPS_INSTALL) --cc "$(CC)" $(PKGS)
build-deps-unit: build-deps
	$(Q)scripts/check-build-deps.sh $(BUILD_DEPS_INSTALL) cmocka
build-deps-fuzz: build-deps
	$(Q)scripts/check-build-deps.sh $(BUILD_DEPS_INSTALL) --cc "$(CC)" --fuzzer
$(LIB_OBJ) $(MAIN_OBJ): | build-deps
$(UNIT_SRC:%.c=$(BUILD)/%.o): | build-deps-unit
$(FUZZ_SRC:%.c=$(BUILD)/%.o): | build-deps-fuzz

# Installing and building are two steps: what is built (in a sub-make) comes
# after what it needs is installed, also under make -j.
deps:
	$(Q)scripts/install-deps.sh

check: deps
	$(Q)$(MAKE) --no-print-directory BUILD_DEPS_INSTALL= all unit asan
	$(Q)BUILD_DEPS_INSTALL= tests/run-all.sh

demo: deps
	$(Q)$(MAKE) --no-print-directory BUILD_DEPS_INSTALL= all
	$(Q)scripts/demo.sh $(BUILD)/cloudviz-agent

# Everything the packages ship. The config files are installed only where
# none exist yet, so `make install` on a running node keeps the admin's.
MAN_PAGES := $(wildcard docs/man/*.[0-9])
DOCS      := $(wildcard docs/*.md) docs/control-api.yaml
EXAMPLES  := $(wildcard policy/examples/*.json)
CONF      := $(DESTDIR)$(SYSCONFDIR)/cloudviz-agent
install: $(BUILD)/cloudviz-agent
	install -D -m 0755 $(BUILD)/cloudviz-agent $(DESTDIR)$(SBINDIR)/cloudviz-agent
	install -D -m 0644 systemd/cloudviz-agent.service $(DESTDIR)$(SYSTEMDUNITDIR)/cloudviz-agent.service
	install -D -m 0644 systemd/cloudviz-agent.sysusers $(DESTDIR)$(SYSUSERSDIR)/cloudviz-agent.conf
	install -D -m 0644 systemd/cloudviz-agent.tmpfiles $(DESTDIR)$(TMPFILESDIR)/cloudviz-agent.conf
	install -D -m 0644 systemd/cloudviz-agent.catalog $(DESTDIR)$(CATALOGDIR)/cloudviz-agent.catalog
	$(foreach m,$(MAN_PAGES),install -D -m 0644 $(m) $(DESTDIR)$(MANDIR)/man$(subst .,,$(suffix $(m)))/$(notdir $(m)) &&) true
	install -d $(DESTDIR)$(DOCDIR)/examples
	install -m 0644 $(DOCS) $(DESTDIR)$(DOCDIR)/
	install -m 0644 $(EXAMPLES) $(DESTDIR)$(DOCDIR)/examples/
	install -d -m 0755 $(CONF)
	test -e $(CONF)/agent.json || install -m 0644 packaging/config/agent.json $(CONF)/agent.json
	test -e $(CONF)/policy.json || install -m 0644 packaging/config/policy.json $(CONF)/policy.json

# Packages: the scripts build from a clean copy of the tree (git archive when
# in a git checkout), so what is packaged is what is committed plus the work
# tree's changes, never build/ leftovers.
deb:
	$(Q)packaging/deb/build.sh

rpm:
	$(Q)packaging/rpm/build.sh

# One after the other: each build installs what it lacks first.
check-package:
	$(Q)$(MAKE) --no-print-directory deb
	$(Q)$(MAKE) --no-print-directory rpm
	$(Q)tests/package/run.sh

# make demo and make check, as the README has them, in a pristine Debian 12
# root (tests/fresh/README.md). Root.
check-fresh:
	$(Q)tests/fresh/run.py

lint:
	clang-tidy --quiet $(AGENT_SRC) -- $(filter-out -Wno-format-truncation,$(ALL_CFLAGS))
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability,performance --inline-suppr -Iinclude --include=/usr/include/jansson.h --suppress=missingIncludeSystem agent

clean:
	rm -rf $(BUILD)

.PHONY: all unit asan fuzz deps check demo install lint clean deb rpm check-package check-fresh \
	build-deps build-deps-unit build-deps-fuzz
.DELETE_ON_ERROR:

-include $(shell find $(BUILD) -name '*.d' -type f 2>/dev/null)
