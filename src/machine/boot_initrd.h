/* Where the initrd goes: as high as the boot protocol allows, page aligned, above the kernel. */
#ifndef KITE_MACHINE_BOOT_INITRD_H
#define KITE_MACHINE_BOOT_INITRD_H

#include "kvm/memory.h"

#include <stdbool.h>
#include <stdint.h>

struct initrd_limits {
	uint64_t min_addr; /* first byte after the kernel (rounded up to a page here) */
	uint64_t addr_max; /* initrd_addr_max: highest address the initrd's last byte may have */
	bool above_4g;	   /* XLF_CAN_BE_LOADED_ABOVE_4G: addr_max does not apply */
};

/* Picks the address for `size` bytes. Returns 0 and sets *addr, or -1 with an error naming the
 * sizes when it does not fit. */
int initrd_place(const struct guest_mem *m, uint64_t size, const struct initrd_limits *l,
		 uint64_t *addr);

#endif
