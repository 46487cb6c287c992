/* Page allocator over the e820 RAM ranges above 1 MiB (low memory stays free for the AP
 * trampoline and whatever the firmware left there), minus the program image and what
 * mem_reserve() kept (multiboot modules). Runs of free pages are handed out first-fit from
 * their start; single freed pages go on a free list. */
#include "libguest.h"

#define MAX_RUNS 64

struct run {
	uint64_t start, end; /* page-aligned [start, end) */
};

#define MAX_RESERVED 17 /* the image and the multiboot modules */

static struct run runs[MAX_RUNS];
static int nruns;
static void *free_list;
static struct run reserved[MAX_RESERVED];
static int nreserved;

void mem_reserve(uint64_t lo, uint64_t hi)
{
	if (nreserved < MAX_RESERVED && lo < hi)
		reserved[nreserved++] = (struct run){lo, hi};
}

static void add_run(uint64_t start, uint64_t end)
{
	start = (start + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
	end &= ~(PAGE_SIZE - 1);
	if (end > 4 * GiB)
		end = 4 * GiB; /* beyond the identity map */
	if (start >= end || nruns == MAX_RUNS)
		return;
	runs[nruns++] = (struct run){start, end};
}

/* Adds [lo, hi) less the reserved ranges from index k on. */
static void add_free(uint64_t lo, uint64_t hi, int k)
{
	if (lo >= hi)
		return;
	for (; k < nreserved; k++) {
		if (reserved[k].end <= lo || reserved[k].start >= hi)
			continue;
		add_free(lo, reserved[k].start, k + 1);
		add_free(reserved[k].end, hi, k + 1);
		return;
	}
	add_run(lo, hi);
}

void mem_init(void)
{
	mem_reserve((uint64_t)_image_start, (uint64_t)_image_end);
	for (int i = 0; i < e820_count; i++) {
		if (e820_map[i].type != E820_RAM)
			continue;
		uint64_t lo = e820_map[i].addr, hi = lo + e820_map[i].size;
		if (hi < lo)
			continue; /* wraps: hostile map */
		if (lo < MiB)
			lo = MiB;
		add_free(lo, hi, 0);
	}
}

void *pages_alloc(size_t npages)
{
	uint64_t len = npages * PAGE_SIZE;
	for (int i = 0; i < nruns; i++) {
		if (runs[i].end - runs[i].start >= len) {
			uint64_t p = runs[i].start;
			runs[i].start += len;
			return (void *)p;
		}
	}
	return NULL;
}

void *page_alloc(void)
{
	if (free_list) {
		void *p = free_list;
		free_list = *(void **)p;
		return p;
	}
	return pages_alloc(1);
}

void page_free(void *page)
{
	*(void **)page = free_list;
	free_list = page;
}

void *pages_alloc_largest(size_t *npages)
{
	int best = -1;
	for (int i = 0; i < nruns; i++) {
		if (best < 0 || runs[i].end - runs[i].start > runs[best].end - runs[best].start)
			best = i;
	}
	if (best < 0 || runs[best].end == runs[best].start) {
		*npages = 0;
		return NULL;
	}
	uint64_t p = runs[best].start;
	*npages = (runs[best].end - p) / PAGE_SIZE;
	runs[best].start = runs[best].end;
	return (void *)p;
}

size_t pages_free_count(void)
{
	size_t n = 0;
	for (int i = 0; i < nruns; i++)
		n += (runs[i].end - runs[i].start) / PAGE_SIZE;
	for (void *p = free_list; p; p = *(void **)p)
		n++;
	return n;
}
