#include "machine/boot_initrd.h"
#include "util/err.h"

#define PAGE 4096ULL

int initrd_place(const struct guest_mem *m, uint64_t size, const struct initrd_limits *l,
		 uint64_t *addr)
{
	uint64_t min = (l->min_addr + PAGE - 1) & ~(PAGE - 1);
	uint64_t high = gmem_high_size(m);
	if (l->above_4g && high >= size) {
		*addr = (GMEM_HIGH_START + high - size) & ~(PAGE - 1);
		return 0;
	}
	uint64_t top = gmem_low_size(m);
	if (!l->above_4g && l->addr_max < top - 1)
		top = l->addr_max + 1;
	if (size <= top && ((top - size) & ~(PAGE - 1)) >= min) {
		*addr = (top - size) & ~(PAGE - 1);
		return 0;
	}
	return kite_error(
	    "the initrd (%llu KiB) does not fit between the kernel's end (0x%llx) and "
	    "0x%llx with %llu MiB of guest RAM",
	    (unsigned long long)(size >> 10), (unsigned long long)min, (unsigned long long)top,
	    (unsigned long long)(m->ram_size >> 20));
}
