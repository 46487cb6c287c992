# Freestanding x86-64 guest test programs (kvm-unit-tests style), booted by kite and by QEMU
# through the PVH entry. Included by the top Makefile, which builds $(GUEST_ELFS) for `make check`.
# Each tests/guests/<name>.c is one program, linked with every tests/guests/lib/ source into
# build/guests/<name>.elf. Each also builds as a multiboot v1 kernel, entered at multiboot_entry:
#   <name>.mb.elf    an ELF32 (what QEMU's -kernel and GRUB take), converted from <name>.mb64.elf,
#                    the ELF64 linked with tests/guests/multiboot/header.S
#   <name>.mbk.bin   a flat binary whose header gives the load addresses (the "a.out kludge"),
#                    from <name>.mbk.elf, linked with tests/guests/multiboot/header_aout.S

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
GUEST_ELFS += $(GUEST_PROG_SRCS:$(GUEST_DIR)/%.c=build/guests/%.mb.elf) \
	$(GUEST_PROG_SRCS:$(GUEST_DIR)/%.c=build/guests/%.mbk.bin)
GUEST_MB_OBJ := build/guests/obj/multiboot/header.S.o
GUEST_MBK_OBJ := build/guests/obj/multiboot/header_aout.S.o

build/guests/%.elf: build/guests/obj/%.c.o $(GUEST_LIB_OBJS) $(GUEST_DIR)/guest.ld
	$(GUEST_CC) $(GUEST_CFLAGS) $(GUEST_LDFLAGS) -o $@ $< $(GUEST_LIB_OBJS) -lgcc

build/guests/%.mb64.elf: build/guests/obj/%.c.o $(GUEST_LIB_OBJS) $(GUEST_MB_OBJ) $(GUEST_DIR)/guest.ld
	$(GUEST_CC) $(GUEST_CFLAGS) $(GUEST_LDFLAGS) -Wl,-e,multiboot_entry -o $@ $(GUEST_MB_OBJ) $< \
		$(GUEST_LIB_OBJS) -lgcc

build/guests/%.mb.elf: build/guests/%.mb64.elf
	objcopy -O elf32-i386 $< $@

build/guests/%.mbk.elf: build/guests/obj/%.c.o $(GUEST_LIB_OBJS) $(GUEST_MBK_OBJ) $(GUEST_DIR)/guest.ld
	$(GUEST_CC) $(GUEST_CFLAGS) $(GUEST_LDFLAGS) -Wl,-e,multiboot_entry -o $@ $(GUEST_MBK_OBJ) $< \
		$(GUEST_LIB_OBJS) -lgcc

build/guests/%.mbk.bin: build/guests/%.mbk.elf
	objcopy -O binary $< $@

build/guests/obj/%.c.o: $(GUEST_DIR)/%.c
	@mkdir -p $(dir $@)
	$(GUEST_CC) $(GUEST_CFLAGS) -MMD -MP -c -o $@ $<

build/guests/obj/%.S.o: $(GUEST_DIR)/%.S
	@mkdir -p $(dir $@)
	$(GUEST_CC) $(GUEST_CFLAGS) -MMD -MP -c -o $@ $<

-include $(wildcard build/guests/obj/*.d build/guests/obj/lib/*.d build/guests/obj/multiboot/*.d)
# The Makefile's bare .SECONDARY keeps every object of the pattern chain; a .SECONDARY with a
# list here would replace that with the list, and make would delete the library's objects at the
# end of `make check`, after pytest's summary line.
