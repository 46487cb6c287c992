# kite — plain Makefile. `make` builds build/kite; `make check` runs every test;
# `make run` boots the default guest. Sources are found by wildcard: adding a .c file under
# src/ or a test under tests/ needs no edit here.

CC      ?= gcc
PYTHON  := /usr/bin/python3
PKGS    := jansson slirp zlib libzstd liblzma liblz4 ext2fs com_err fuse3 libedit \
	   libarchive libxml-2.0 nettle
# Compiled against, not linked: src/kvm/pvm_libs.c dlopens them by soname on a KVM-PVM host.
DLOPEN_PKGS := unicorn capstone
soname = $(shell objdump -p $$(pkg-config --variable=libdir $(1))/lib$(1).so 2>/dev/null | \
	   awk '/SONAME/ { print $$2 }')

# Install what the build needs before pkg-config is asked (idempotent, quiet when done).
ifeq ($(filter clean format,$(MAKECMDGOALS)),)
SETUP_OUT := $(shell test build/.setup-ok -nt scripts/setup || \
	(./scripts/setup >&2 && mkdir -p build && touch build/.setup-ok) || echo failed)
ifneq ($(SETUP_OUT),)
$(error scripts/setup failed: install the packages it names, then run make again)
endif
endif

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) $(DLOPEN_PKGS)) \
	      -DKITE_UNICORN_SO='"$(call soname,unicorn)"' -DKITE_CAPSTONE_SO='"$(call soname,capstone)"'
PKG_LIBS   := $(shell pkg-config --libs $(PKGS))
CMOCKA     := $(shell pkg-config --cflags --libs cmocka)

WARN    := -Wall -Wextra -Werror -Wno-unused-parameter
CFLAGS  ?= -O2 -g
ALL_CFLAGS := -std=gnu11 $(WARN) -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -Isrc $(PKG_CFLAGS) $(CFLAGS)
SAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDLIBS  := $(PKG_LIBS) -lpthread -lm

SRCS     := $(shell find src -name '*.c' | sort)
LIB_SRCS := $(filter-out src/main.c,$(SRCS))
OBJS     := $(SRCS:%.c=build/obj/%.o)
LIB_OBJS := $(LIB_SRCS:%.c=build/obj/%.o)
SAN_OBJS := $(SRCS:%.c=build/san/obj/%.o)
SAN_LIB_OBJS := $(LIB_SRCS:%.c=build/san/obj/%.o)

UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=build/tests/%)
SAN_UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=build/san/tests/%)

.PHONY: all check layers unit integration san run guest guests format clean
# Keep intermediate files (the guest programs' objects): nothing to delete, and pytest's summary
# stays the last line of `make check`.
.SECONDARY:
all: build/kite

build/kite: $(OBJS)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS)

build/san/kite: $(SAN_OBJS)
	$(CC) $(ALL_CFLAGS) $(SAN_FLAGS) -o $@ $^ $(LDLIBS)

build/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

build/san/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(SAN_FLAGS) -MMD -MP -c -o $@ $<

build/tests/%: tests/unit/%.c $(LIB_OBJS) tests/unit/unit.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests/unit -o $@ $< $(LIB_OBJS) $(CMOCKA) $(LDLIBS)

build/san/tests/%: tests/unit/%.c $(SAN_LIB_OBJS) tests/unit/unit.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(SAN_FLAGS) -Itests/unit -o $@ $< $(SAN_LIB_OBJS) $(CMOCKA) $(LDLIBS)

san: build/san/kite

# Freestanding guest test programs (tests/guests/guests.mk defines GUEST_ELFS).
-include tests/guests/guests.mk
guests: $(GUEST_ELFS)

# Includes point only down the layers of src/ (DEVELOPERS.md "Layers").
layers:
	@./scripts/check-layers

unit: $(UNIT_BINS) $(SAN_UNIT_BINS)
	@set -e; for t in $(UNIT_BINS) $(SAN_UNIT_BINS); do echo "== $$t"; timeout 600 $$t; done

# Every test has a time limit (pytest-timeout): a hang fails that test, with its traceback,
# instead of the whole run.
PYTEST := $(PYTHON) -m pytest -p no:cacheprovider --timeout=900

integration: build/kite build/san/kite $(GUEST_ELFS)
	KITE=$(abspath build/kite) KITE_SAN=$(abspath build/san/kite) \
	  $(PYTEST) -q tests/integration

# The tests marked kvm, on a host without /dev/kvm: inside a KVM host VM under QEMU's software
# CPU with nested SVM (scripts/make-kvm-host, scripts/run-in-kvm-host). Where /dev/kvm exists
# they run in `integration` instead.
integration-kvm: build/kite build/san/kite $(GUEST_ELFS) guest
	@if [ -e /dev/kvm ]; then echo "integration-kvm: /dev/kvm is here: integration runs them"; \
	else $(MAKE) --no-print-directory kvm-host && \
	  KITE=$(abspath build/kite) KITE_SAN=$(abspath build/san/kite) ./scripts/run-in-kvm-host \
	    $(PYTEST) -v --durations=10 -m kvm tests/integration; fi

.PHONY: kvm-host integration-kvm
kvm-host: build/kvm-host/vmlinuz build/kvm-host/initramfs.cpio.gz
build/kvm-host/vmlinuz build/kvm-host/initramfs.cpio.gz &: scripts/make-kvm-host
	./scripts/make-kvm-host build/kvm-host

# Unit tests first; pytest's own summary line ends the run.
check: all san $(GUEST_ELFS) guest
	@./scripts/host-kind
	@./scripts/check-layers
	@$(MAKE) --no-print-directory unit
	@./scripts/check-passes $(MAKE)

# Real Linux guest from Debian packages (scripts/make-guest).
guest: build/guest/vmlinuz build/guest/initramfs.cpio.gz
build/guest/vmlinuz build/guest/initramfs.cpio.gz &: scripts/make-guest $(wildcard scripts/guest/*)
	./scripts/make-guest build/guest

# Minimal Linux guest built from Debian's linux-source (scripts/make-guest-min, docs/guest-min.md).
# Slow (10-30 minutes): not part of check; test_guest_min.py skips without it.
.PHONY: guest-min
guest-min: build/guest-min/vmlinux build/guest-min/bzImage build/guest-min/initramfs.cpio.gz
build/guest-min/vmlinux build/guest-min/bzImage build/guest-min/initramfs.cpio.gz &: \
		scripts/make-guest-min $(wildcard scripts/guest-min/* scripts/guest/*)
	./scripts/make-guest-min build/guest-min

# Without /dev/kvm here, the guest boots inside the KVM host VM (slow: QEMU TCG, nested SVM).
RUN_GUEST = ./build/kite run --kernel build/guest/vmlinuz --initrd build/guest/initramfs.cpio.gz \
	  --append "console=ttyS0" -m 512M
run: build/kite guest
	@./scripts/host-kind guest
	@if [ -e /dev/kvm ]; then $(RUN_GUEST); \
	else $(MAKE) --no-print-directory kvm-host && ./scripts/run-in-kvm-host -i $(RUN_GUEST); fi

format:
	clang-format -i $(shell find src tests/unit tests/guests -name '*.[ch]')

clean:
	rm -rf build

-include $(OBJS:.o=.d) $(SAN_OBJS:.o=.d)
