/* PVH's hvm_start_info (Xen's arch-x86/hvm/start_info.h, version 1): the one structure a PVH
 * kernel gets in EBX, pointing at the command line, the initrd as module 0, the RSDP and the
 * memory map. */
#ifndef KITE_MACHINE_BOOT_PVH_H
#define KITE_MACHINE_BOOT_PVH_H

#include "kvm/memory.h"

#include <stdint.h>

#define PVH_START_MAGIC	    0x336ec578u
#define PVH_START_INFO_SIZE 56
#define PVH_MODLIST_OFFSET  0x100 /* from the start_info address */
#define PVH_MEMMAP_OFFSET   0x200
#define PVH_MODLIST_ENTRY   32
#define PVH_MEMMAP_ENTRY    24

struct pvh_boot_args {
	uint64_t cmdline_addr;
	uint64_t initrd_addr, initrd_size; /* no module when initrd_size is 0 */
	uint64_t rsdp_addr;
};

/* Writes start_info at `addr`, its module list and memory map after it. Returns 0 or -1. */
int boot_pvh_write(struct guest_mem *m, uint64_t addr, const struct pvh_boot_args *a);

#endif
