/* Identity-mapped page tables for entering a 64-bit kernel in long mode. */
#ifndef KITE_MACHINE_PAGETABLE_H
#define KITE_MACHINE_PAGETABLE_H

#include "kvm/memory.h"

#include <stdint.h>

#define PAGETABLE_SIZE	   (6 * 4096ULL) /* PML4, PDPT, 4 page directories */
#define PAGETABLE_MAP_SIZE (4ULL << 30)	 /* identity-mapped: 0 .. 4 GiB */

/* Writes PML4 at `pml4` (4 KiB aligned), then the PDPT and four page directories after it,
 * mapping 0..4 GiB virtual = physical with 2 MiB pages (1 GiB pages need a CPUID feature this
 * host's KVM may not offer). Returns 0, or -1 with an error when the range is not RAM. */
int pagetable_build(struct guest_mem *m, uint64_t pml4);

#endif
