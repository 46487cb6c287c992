/* The guest's physical memory map, as Linux's e820 table and PVH's memmap both describe it. */
#ifndef KITE_MACHINE_E820_H
#define KITE_MACHINE_E820_H

#include "kvm/memory.h"

#include <stdint.h>

#define E820_RAM      1
#define E820_RESERVED 2
#define E820_MAX      128 /* boot_params holds at most this many */

/* Start of the BIOS-reserved area (EBDA, VGA, option ROMs, our ACPI tables) below 1 MiB. */
#define E820_LOW_RAM_END 0x9fc00ULL
#define E820_HIGH_RAM	 0x100000ULL

struct e820_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
};

/* Fills `e` (room for `max` entries) with: RAM 0..0x9fc00, reserved 0x9fc00..1 MiB, RAM 1 MiB up
 * to the PCI hole (or the end of RAM), RAM from 4 GiB when RAM is larger. Returns the count. */
int e820_build(const struct guest_mem *m, struct e820_entry *e, int max);

#endif
