/* state: a guest whose state a save and restore must carry over. Counters kept in RAM by ring 3,
 * the LAPIC timer ticking every millisecond, progress on COM1: "STATE: step=N ticks=T" for
 * N = 1..steps, one line each `every` ticks. With blk=1 it also drives the first virtio-blk
 * disk: before the first step it writes sector 1 (pattern of `seed`), at each step sector
 * 16 + N (pattern of N), and at the end it reads them all back. The host may save the
 * machine at any point and restore it in a fresh VMM: the steps then go on with no gap and no
 * repeat, the ticks keep growing (the timer fires after the restore, or no step would come),
 * and the disk holds what was written on either side. With mem=MIB, ring 3 also keeps MIB of
 * pages changing while it waits: each pass over a page checks that it still holds what was
 * last written there (its generation, a pattern of page and generation) and writes the next
 * generation, so a migration that loses or mixes up a page is seen as a mismatch. */
#include "libguest.h"
#include "virtio.h"

const char guest_name[] = "state";

#define TIMER_VEC  0x40
#define TICK_COUNT 62500 /* 1 ms: KVM's APIC bus runs at 1 GHz, divided by 16 */
#define FIRST_STEP 16	 /* sector of step 0's block */
#define T_IN	   0
#define T_OUT	   1
#define S_OK	   0
#define S_NONE	   0xff
#define BLOCK	   512

struct req_hdr {
	uint32_t type;
	uint32_t reserved;
	uint64_t sector;
};

static volatile uint64_t ticks;
static uint64_t steps, every, seed;
static bool use_blk;
static struct virtio_dev vd;
static struct req_hdr *hdr;
static volatile uint8_t *status;
static uint8_t *buf;

/* What ring 3 counted, in RAM: a save must bring them back as they were. */
static volatile uint64_t spins, step_sum, steps_done;

#define MEM_MAX_PAGES 16384 /* 64 MiB */
static uint64_t *mem_pages[MEM_MAX_PAGES];
static uint64_t mem_npages, mem_next, mem_checks, mem_bad, mem_first_bad = ~0ull;

static uint64_t mem_word(uint64_t page, uint64_t gen, uint64_t i)
{
	return (page * 0x9e3779b97f4a7c15ull) ^ (gen * 0xbf58476d1ce4e5b9ull) ^
	       (i * 0x94d049bb133111ebull);
}

/* One page: word 0 is its generation, the others its pattern; checked, then the next. */
static void mem_touch(void)
{
	if (!mem_npages)
		return;
	uint64_t pg = mem_next++ % mem_npages, *w = mem_pages[pg], gen = w[0];
	bool ok = true;
	for (uint64_t i = 1; i < 512; i++)
		if (w[i] != mem_word(pg, gen, i))
			ok = false;
	mem_checks++;
	if (!ok && !mem_bad++)
		mem_first_bad = pg;
	gen++;
	for (uint64_t i = 1; i < 512; i++)
		w[i] = mem_word(pg, gen, i);
	w[0] = gen;
}

static void mem_setup(uint64_t mib)
{
	mem_npages = mib * 256 > MEM_MAX_PAGES ? MEM_MAX_PAGES : mib * 256;
	for (uint64_t pg = 0; pg < mem_npages; pg++) {
		uint64_t *w = mem_pages[pg] = page_alloc();
		w[0] = 0;
		for (uint64_t i = 1; i < 512; i++)
			w[i] = mem_word(pg, 0, i);
	}
}

static void tick(struct intr_frame *f)
{
	ticks++;
	lapic_eoi();
}

static void fill(uint8_t *p, uint64_t value)
{
	for (unsigned i = 0; i < BLOCK; i++)
		p[i] = (uint8_t)(value * 37 + i * 11 + 5);
}

static bool same(const uint8_t *p, uint64_t value)
{
	for (unsigned i = 0; i < BLOCK; i++)
		if (p[i] != (uint8_t)(value * 37 + i * 11 + 5))
			return false;
	return true;
}

static uint8_t request(uint32_t type, uint64_t sector, bool dev_writes)
{
	hdr->type = type;
	hdr->reserved = 0;
	hdr->sector = sector;
	*status = S_NONE;
	struct vbuf b[3] = {
	    {hdr, sizeof(*hdr), false}, {buf, BLOCK, dev_writes}, {(void *)status, 1, true}};
	if (virtq_transfer(&vd, &vd.vq[0], b, 3, 20000) < 0)
		return S_NONE;
	return *status;
}

static bool blk_setup(void)
{
	if (!virtio_find(VIRTIO_ID_BLOCK, 0, &vd))
		return false;
	if (!virtio_negotiate(&vd, 0) || !virtio_queue_setup(&vd, 0, 64, VIRTIO_MSI_NO_VECTOR))
		return false;
	virtio_driver_ok(&vd);
	hdr = page_alloc();
	status = (volatile uint8_t *)(hdr + 1);
	buf = page_alloc();
	return true;
}

static bool write_block(uint64_t sector, uint64_t value)
{
	fill(buf, value);
	return request(T_OUT, sector, false) == S_OK;
}

static bool read_block(uint64_t sector, uint64_t value)
{
	for (unsigned i = 0; i < BLOCK; i++)
		buf[i] = 0;
	return request(T_IN, sector, true) == S_OK && same(buf, value);
}

static uint64_t body(uint64_t arg)
{
	if (use_blk) {
		bool ok = blk_setup();
		report(ok, "virtio-blk ready");
		if (!ok)
			return 0;
		report(write_block(1, seed), "disk: sector 1 written (seed %lu)", seed);
	}
	uint64_t next = ticks + every;
	for (uint64_t step = 1; step <= steps; step++) {
		while (ticks < next) {
			spins++;
			mem_touch();
			cpu_relax();
		}
		if (use_blk && !write_block(FIRST_STEP + step, step))
			printf("STATE: step %lu: disk write failed\n", step);
		step_sum += step;
		steps_done = step;
		printf("STATE: step=%lu ticks=%lu\n", step, ticks);
		next += every;
	}
	report(steps_done == steps && step_sum == steps * (steps + 1) / 2,
	       "counters: %lu steps, their sum %lu", steps_done, step_sum);
	report(ticks >= steps * every && spins > 0, "timer: %lu ticks, %lu spins", ticks, spins);
	if (mem_npages)
		report(mem_bad == 0 && mem_checks > mem_npages,
		       "memory: %lu pages checked %lu times, %lu mismatches (first: page %ld)",
		       mem_npages, mem_checks, mem_bad, (long)mem_first_bad);
	if (use_blk) {
		report(read_block(1, seed), "disk: sector 1 reads back (seed %lu)", seed);
		uint64_t bad = 0;
		for (uint64_t step = 1; step <= steps; step++)
			if (!read_block(FIRST_STEP + step, step))
				bad = bad ? bad : step;
		report(bad == 0, "disk: every step's block reads back (first bad: %lu)", bad);
		report(!(virtio_status(&vd) & (VIRTIO_STATUS_NEEDS_RESET | VIRTIO_STATUS_FAILED)),
		       "device status %#x: no NEEDS_RESET or FAILED", virtio_status(&vd));
	}
	return 0;
}

void guest_main(void)
{
	steps = cmdline_u64("steps", 20);
	every = cmdline_u64("every", 100);
	seed = cmdline_u64("seed", 7);
	use_blk = cmdline_u64("blk", 0) != 0;
	mem_setup(cmdline_u64("mem", 0));
	lapic_init();
	set_intr_handler(TIMER_VEC, tick);
	lapic_write(LAPIC_TMR_DIV, 0x3);
	lapic_write(LAPIC_LVT_TMR, TIMER_VEC | (1 << 17)); /* periodic */
	lapic_write(LAPIC_TMR_INIT, TICK_COUNT);
	run_user(body, 0);
	lapic_write(LAPIC_LVT_TMR, 1 << 16);
}
