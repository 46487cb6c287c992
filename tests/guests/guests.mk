# Freestanding x86-64 guest test programs (kvm-unit-tests style), booted by kite and by QEMU
# through the PVH entry. Included by the top Makefile, which builds $(GUEST_ELFS) for `make check`.
# Each tests/guests/<name>.c is one program, linked with every tests/guests/lib/ source into
# build/guests/<name>.elf.

GUEST_CC      := gcc
GUEST_DIR     := tests/guests
GUEST_CFLAGS  := -std=gnu11 -O2 -g -Wall -Wextra -Werror -Wno-unused-parameter \
	-ffreestanding -nostdlib -fno-pic -fno-pie -mno-red-zone -mgeneral-regs-only -static \
	-fno-stack-protector -fno-asynchronous-unwind-tables -fcf-protection=none \
	-fno-builtin -fno-tree-loop-distribute-patterns --param=min-pagesize=0 -m64 -mcmodel=small -I$(GUEST_DIR)/lib
GUEST_LDFLAGS := -nostdlib -static -no-pie -Wl,-T,$(GUEST_DIR)/guest.ld -Wl,--build-id=none \
	-Wl,-z,max-page-size=4096 -Wl,-z,noexecstack -Wl,--no-warn-rwx-segments

GUEST_LIB_SRCS := $(sort $(wildcard $(GUEST_DIR)/lib/*.c $(GUEST_DIR)/lib/*.S))
GUEST_LIB_OBJS := $(patsubst $(GUEST_DIR)/%,build/guests/obj/%.o,$(GUEST_LIB_SRCS))
GUEST_PROG_SRCS := $(sort $(wildcard $(GUEST_DIR)/*.c))
GUEST_ELFS := $(GUEST_PROG_SRCS:$(GUEST_DIR)/%.c=build/guests/%.elf)

build/guests/%.elf: build/guests/obj/%.c.o $(GUEST_LIB_OBJS) $(GUEST_DIR)/guest.ld
	$(GUEST_CC) $(GUEST_CFLAGS) $(GUEST_LDFLAGS) -o $@ $< $(GUEST_LIB_OBJS) -lgcc

build/guests/obj/%.c.o: $(GUEST_DIR)/%.c
	@mkdir -p $(dir $@)
	$(GUEST_CC) $(GUEST_CFLAGS) -MMD -MP -c -o $@ $<

build/guests/obj/%.S.o: $(GUEST_DIR)/%.S
	@mkdir -p $(dir $@)
	$(GUEST_CC) $(GUEST_CFLAGS) -MMD -MP -c -o $@ $<

-include $(wildcard build/guests/obj/*.d build/guests/obj/lib/*.d)
# The Makefile's bare .SECONDARY keeps every object of the pattern chain; a .SECONDARY with a
# list here would replace that with the list, and make would delete the library's objects at the
# end of `make check`, after pytest's summary line.
