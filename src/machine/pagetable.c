#include "machine/pagetable.h"
#include "util/err.h"
#include "machine/boot_bytes.h"

#include <string.h>

#define PTE_PRESENT 0x1ULL
#define PTE_WRITE   0x2ULL
#define PTE_LARGE   0x80ULL /* PS: this entry maps a 2 MiB page */

int pagetable_build(struct guest_mem *m, uint64_t pml4)
{
	uint8_t *p = (pml4 & 0xfff) ? NULL : gmem_ptr(m, pml4, PAGETABLE_SIZE);
	if (!p)
		return kite_error("page tables at 0x%llx do not fit in guest RAM",
				  (unsigned long long)pml4);
	memset(p, 0, PAGETABLE_SIZE);
	uint64_t pdpt = pml4 + 4096;
	put_le64(p, pdpt | PTE_PRESENT | PTE_WRITE);
	for (uint64_t g = 0; g < 4; g++) {
		uint64_t pd = pdpt + 4096 * (g + 1);
		put_le64(p + 4096 + g * 8, pd | PTE_PRESENT | PTE_WRITE);
		uint8_t *pdp = p + 4096 * (g + 2);
		for (uint64_t i = 0; i < 512; i++) {
			uint64_t phys = (g << 30) | (i << 21);
			put_le64(pdp + i * 8, phys | PTE_PRESENT | PTE_WRITE | PTE_LARGE);
		}
	}
	return 0;
}
