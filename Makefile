# cloudviz-agent: one plain Makefile.
#   make                 build build/cloudviz-agent
#   make check           install missing packages (as root), unit tests plain and
#                        under ASan+UBSan, fuzz smoke run, integration tests
#   make demo            show the agent applying the node policy in throwaway netns
#   make install DESTDIR=... PREFIX=...
# Quiet unless V=1.

VERSION  := $(shell cat VERSION 2>/dev/null || echo 0.0.0)
PREFIX   ?= /usr
SBINDIR  ?= $(PREFIX)/sbin
DESTDIR  ?=
BUILD    ?= build

CC       ?= cc
PKGS     := libnftnl libmnl jansson libsystemd libcrypto libcurl libseccomp
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

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
	$(Q)$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(shell pkg-config --libs cmocka)

unit: $(UNIT_BIN)

# The same unit tests, built again with AddressSanitizer and UBSan.
ASAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
asan:
	$(Q)$(MAKE) --no-print-directory BUILD=$(BUILD)/asan CFLAGS="-O1 -g" SAN="$(ASAN_FLAGS)" unit $(BUILD)/asan/cloudviz-agent

# libFuzzer targets, one per tests/fuzz/fuzz_*.c (needs clang): the policy
# parser and the control API reply parser. The library is built with
# -fsanitize=fuzzer-no-link; only the targets link libFuzzer's main.
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=%)
fuzz:
	$(Q)$(MAKE) --no-print-directory BUILD=$(BUILD)/fuzz CC=clang CFLAGS="-O1 -g" \
		SAN="-fsanitize=fuzzer-no-link,address,undefined" $(addprefix $(BUILD)/fuzz/,$(FUZZ_BIN))

$(BUILD)/fuzz_%: $(BUILD)/tests/fuzz/fuzz_%.o $(BUILD)/libagent.a
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_CFLAGS) -fsanitize=fuzzer $(LDFLAGS) -o $@ $^ $(LDLIBS)

deps:
	$(Q)scripts/install-deps.sh

check: deps
	$(Q)$(MAKE) --no-print-directory all unit asan
	$(Q)tests/run-all.sh

demo: deps all
	$(Q)scripts/demo.sh $(BUILD)/cloudviz-agent

install: $(BUILD)/cloudviz-agent
	install -D -m 0755 $(BUILD)/cloudviz-agent $(DESTDIR)$(SBINDIR)/cloudviz-agent

lint:
	clang-tidy --quiet $(AGENT_SRC) -- $(filter-out -Wno-format-truncation,$(ALL_CFLAGS))
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability,performance --inline-suppr -Iinclude --include=/usr/include/jansson.h --suppress=missingIncludeSystem agent

clean:
	rm -rf $(BUILD)

.PHONY: all unit asan fuzz deps check demo install lint clean
.DELETE_ON_ERROR:

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
