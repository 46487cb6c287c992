/* memory: the e820 map from start_info matches the memory size the VMM was given (mem= on the
 * command line), the page allocator stays inside RAM and outside the image, and every free page
 * holds written patterns (written and checked in ring 3, where loops run natively). */
#include "libguest.h"

const char guest_name[] = "memory";

struct span {
	uint64_t *p;
	size_t words;
	uint64_t seed;
};

/* Ring 3: writes addr^seed to every word, checks, then the complement; returns bad words. */
static uint64_t pattern_test(uint64_t arg)
{
	const struct span *s = (const struct span *)arg;
	uint64_t bad = 0;
	for (int pass = 0; pass < 2; pass++) {
		uint64_t x = pass ? ~s->seed : s->seed;
		for (size_t i = 0; i < s->words; i++)
			s->p[i] = (uint64_t)&s->p[i] ^ x;
		for (size_t i = 0; i < s->words; i++)
			bad += s->p[i] != ((uint64_t)&s->p[i] ^ x);
	}
	return bad;
}

static bool in_ram(uint64_t lo, uint64_t hi)
{
	for (int i = 0; i < e820_count; i++) {
		const struct e820_entry *e = &e820_map[i];
		if (e->type == E820_RAM && lo >= e->addr && hi <= e->addr + e->size)
			return true;
	}
	return false;
}

static void check_map(void)
{
	uint64_t ram = 0, top = 0;
	bool ordered = true;
	for (int i = 0; i < e820_count; i++) {
		const struct e820_entry *e = &e820_map[i];
		printf("e820: [%#014lx-%#014lx] type %u\n", e->addr, e->addr + e->size - 1,
		       e->type);
		if (i && e->addr < e820_map[i - 1].addr + e820_map[i - 1].size)
			ordered = false;
		if (e->type == E820_RAM) {
			ram += e->size;
			if (e->addr + e->size > top)
				top = e->addr + e->size;
		}
	}
	report(boot_start_info_version >= 1 && e820_count > 0,
	       "start_info v%u carries an e820 map (%d entries)", boot_start_info_version,
	       e820_count);
	report(ordered, "e820 entries sorted and not overlapping");
	report(in_ram(0, 0x9f000), "e820: RAM below 636 KiB");
	report(in_ram(MiB, (uint64_t)_image_end), "e820: RAM from 1 MiB covers the program image");

	uint64_t mem = cmdline_u64("mem", 0);
	if (!mem) {
		report_skip("e820 total matches mem= (no mem= on the command line)");
		return;
	}
	/* Everything but the legacy hole below 1 MiB is RAM; above 3 GiB the PCI hole moves
	 * part of it past 4 GiB, so compare the total rather than the top. */
	printf("e820: %lu KiB RAM, top %#lx, mem= %lu KiB\n", ram >> 10, top, mem >> 10);
	report(ram <= mem && ram + MiB >= mem,
	       "e820 RAM total %lu KiB is mem= %lu KiB less < 1 MiB", ram >> 10, mem >> 10);
	if (mem <= 2 * GiB) {
		/* Firmware may reserve the last pages of RAM (QEMU does), so follow RAM and
		 * reserved entries up from 1 MiB: together they end exactly at mem=. */
		uint64_t end = MiB;
		for (bool grew = true; grew;) {
			grew = false;
			for (int i = 0; i < e820_count; i++) {
				const struct e820_entry *e = &e820_map[i];
				if (e->addr <= end && e->addr + e->size > end) {
					end = e->addr + e->size;
					grew = true;
				}
			}
		}
		report(end == mem, "e820 memory from 1 MiB ends at mem= (%#lx, RAM top %#lx)", end,
		       top);
	}
}

void guest_main(void)
{
	check_map();

	size_t before = pages_free_count();
	uint64_t *a = page_alloc(), *b = page_alloc();
	bool ok = a && b && a != b && in_ram((uint64_t)a, (uint64_t)a + PAGE_SIZE) &&
		  in_ram((uint64_t)b, (uint64_t)b + PAGE_SIZE);
	for (uint64_t *p = a; ok && p; p = p == a ? b : NULL) {
		if ((uint64_t)p < (uint64_t)_image_end &&
		    (uint64_t)p + PAGE_SIZE > (uint64_t)_image_start)
			ok = false;
	}
	report(ok, "page allocator: two distinct RAM pages outside the image");
	if (a && b) {
		page_free(b);
		report(page_alloc() == b, "page allocator: a freed page is reused");
		page_free(b);
		page_free(a);
	}
	report(pages_free_count() == before, "page allocator: free count restored (%lu pages)",
	       before);

	size_t tested = 0;
	uint64_t bad = 0;
	for (;;) {
		size_t n;
		uint64_t *p = pages_alloc_largest(&n);
		if (!p)
			break;
		if (!in_ram((uint64_t)p, (uint64_t)p + n * PAGE_SIZE)) {
			report(false, "page allocator: run %p+%lu pages is RAM", p, n);
			break;
		}
		struct span s = {p, n * PAGE_SIZE / 8, 0x5a5aa5a5c3c33c3cull};
		bad += run_user(pattern_test, (uint64_t)&s);
		tested += n;
	}
	uint64_t mem = cmdline_u64("mem", 0);
	printf("memory: tested %lu KiB, %lu bad words\n", (uint64_t)tested * 4, bad);
	report(tested > 0 && bad == 0, "ring 3 pattern write/read over %lu KiB of free RAM",
	       (uint64_t)tested * 4);
	if (mem && mem <= 4 * GiB)
		report(tested * PAGE_SIZE + 2 * MiB + ((uint64_t)_image_end - MiB) >= mem,
		       "pattern test covered all RAM above 1 MiB but the image");
}
