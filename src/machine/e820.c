#include "machine/e820.h"

static int add(struct e820_entry *e, int n, int max, uint64_t addr, uint64_t size, uint32_t type)
{
	if (n >= max || size == 0)
		return n;
	e[n] = (struct e820_entry){.addr = addr, .size = size, .type = type};
	return n + 1;
}

int e820_build(const struct guest_mem *m, struct e820_entry *e, int max)
{
	uint64_t low = gmem_low_size(m);
	uint64_t high = gmem_high_size(m);
	int n = 0;
	n = add(e, n, max, 0, low < E820_LOW_RAM_END ? low : E820_LOW_RAM_END, E820_RAM);
	/* Reserved even when RAM ends below it: guests must not expect RAM there. */
	n = add(e, n, max, E820_LOW_RAM_END, E820_HIGH_RAM - E820_LOW_RAM_END, E820_RESERVED);
	if (low > E820_HIGH_RAM)
		n = add(e, n, max, E820_HIGH_RAM, low - E820_HIGH_RAM, E820_RAM);
	if (high)
		n = add(e, n, max, GMEM_HIGH_START, high, E820_RAM);
	return n;
}
