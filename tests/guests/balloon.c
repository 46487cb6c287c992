/* balloon: a virtio-balloon driver (virtio 1.x, 5.5). In ring 3 it polls the device's target
 * (num_pages, config offset 0) and inflates (gives the host page frame numbers of its own
 * free pages on queue 0) or deflates (takes them back on queue 1) until it holds that many,
 * writes `actual` (offset 4), and prints
 *     BALLOON: target=PAGES actual=PAGES usable=MiB
 * each time it has followed a new target; usable is the e820 RAM less the balloon, what
 * this guest may still use. It runs until the ACPI power button (PWRBTN_STS, polled), then
 * powers off. The host drives it with `kite setmem` (or QEMU's `balloon`). */
#include "libguest.h"
#include "virtio.h"

const char guest_name[] = "balloon";

#define VIRTIO_ID_BALLOON 5
#define CFG_NUM_PAGES	  0
#define CFG_ACTUAL	  4
#define INFLATE_Q	  0
#define DEFLATE_Q	  1
#define BATCH		  256		/* PFNs per request, as Linux */
#define MAX_HELD	  (128u * 1024) /* a 512 MiB balloon */
#define PM1_PWRBTN	  0x0100

static struct virtio_dev vd;
static uint32_t held[MAX_HELD]; /* PFNs in the balloon */
static uint32_t nheld;
static uint32_t *pfns; /* one request's PFN array, in a page of its own */
static uint64_t ram_pages;
static uint16_t pm1_sts;

static bool send(uint16_t q, uint32_t n)
{
	struct vbuf b = {pfns, n * 4, false};
	return virtq_transfer(&vd, &vd.vq[q], &b, 1, 10000) >= 0;
}

/* Gives up to BATCH free pages (fewer to reach `target`); false when none is left or the
 * device does not answer. */
static bool inflate(uint32_t target)
{
	uint32_t n = 0;
	while (n < BATCH && nheld + n < target && nheld + n < MAX_HELD) {
		void *p = page_alloc();
		if (!p)
			break;
		pfns[n++] = (uint32_t)((uint64_t)p / PAGE_SIZE);
	}
	if (!n)
		return false;
	if (!send(INFLATE_Q, n)) {
		for (uint32_t i = 0; i < n; i++)
			page_free((void *)((uint64_t)pfns[i] * PAGE_SIZE));
		return false;
	}
	for (uint32_t i = 0; i < n; i++)
		held[nheld++] = pfns[i];
	return true;
}

/* Takes back up to BATCH pages: the host hears of them before the guest touches them. */
static bool deflate(uint32_t target)
{
	uint32_t n = 0;
	while (n < BATCH && nheld - n > target) {
		pfns[n] = held[nheld - 1 - n];
		n++;
	}
	if (!send(DEFLATE_Q, n))
		return false;
	for (uint32_t i = 0; i < n; i++)
		page_free((void *)((uint64_t)held[--nheld] * PAGE_SIZE));
	return true;
}

static void print_state(uint32_t target)
{
	printf("BALLOON: target=%u actual=%u usable=%lu\n", target, nheld,
	       (uint64_t)((ram_pages - nheld) * PAGE_SIZE / MiB));
}

static uint64_t body(uint64_t arg)
{
	if (!virtio_find(VIRTIO_ID_BALLOON, 0, &vd)) {
		report(false, "virtio-balloon device found");
		return 0;
	}
	bool ok = virtio_negotiate(&vd, 0) &&
		  virtio_queue_setup(&vd, INFLATE_Q, 64, VIRTIO_MSI_NO_VECTOR) &&
		  virtio_queue_setup(&vd, DEFLATE_Q, 64, VIRTIO_MSI_NO_VECTOR);
	report(ok, "virtio-balloon: VERSION_1 negotiated, inflate and deflate queues ready");
	if (!ok)
		return 0;
	virtio_driver_ok(&vd);
	pfns = page_alloc();
	uint32_t reported = 0;
	print_state(0);
	printf("READY: balloon\n");
	bool stuck = false;
	for (;;) {
		if (pm1_sts && (inw(pm1_sts) & PM1_PWRBTN)) {
			outw(pm1_sts, PM1_PWRBTN);
			printf("balloon: power button pressed\n");
			break;
		}
		uint32_t target = virtio_cfg32(&vd, CFG_NUM_PAGES);
		if (target != reported)
			stuck = false;
		if (target != nheld && !stuck) {
			bool moved = target > nheld ? inflate(target) : deflate(target);
			mmio_write32(vd.device_cfg + CFG_ACTUAL, nheld);
			if (!moved) {
				printf("balloon: stuck at %u pages of %u (no free pages or no "
				       "answer)\n",
				       nheld, target);
				stuck = true;
			} else {
				continue;
			}
		}
		if (target != reported) {
			reported = target;
			print_state(target);
		}
		udelay(10000);
	}
	report(true, "balloon followed the host until the power button (%u pages held)", nheld);
	return 0;
}

void guest_main(void)
{
	for (int i = 0; i < e820_count; i++) {
		if (e820_map[i].type == E820_RAM)
			ram_pages += e820_map[i].size / PAGE_SIZE;
	}
	struct fadt_info f;
	pic_disable(); /* the SCI stays masked at the IOAPIC: PWRBTN_STS is polled */
	if (acpi_fadt(&f) && f.pm1a_evt && f.pm1a_evt <= 0xffff && f.pm1_evt_len >= 4) {
		/* QEMU sets PWRBTN_STS only when PWRBTN_EN is on. */
		uint16_t en = (uint16_t)(f.pm1a_evt + f.pm1_evt_len / 2);
		pm1_sts = (uint16_t)f.pm1a_evt;
		outw(pm1_sts, PM1_PWRBTN);
		outw(en, inw(en) | PM1_PWRBTN);
	}
	printf("balloon: %lu MiB of RAM\n", (uint64_t)(ram_pages * PAGE_SIZE / MiB));
	run_user(body, 0);
}
