/* virtio_hostile: a misbehaving driver against the first virtio-blk disk. Descriptors that
 * point outside guest RAM, a loop in a descriptor chain, a next index past the queue, lengths
 * whose sum overflows 32 bits, a queue size that is not a power of two, a notification before
 * DRIVER_OK. For each, the device must not report success for what it could not do: it fails
 * the request (status not OK), marks itself NEEDS_RESET, or leaves the chain alone; and after
 * a reset it works again (a read of the host's pattern). The VMM surviving all of it is the
 * host side of the test. Runs in ring 3; disk layout as in virtio_blk.c.
 *
 * Buffers outside RAM: QEMU, like hardware whose DMA to nowhere is dropped, completes such a
 * request; we only check that nothing landed in RAM instead. strict=1 (kite, issue 3) demands
 * an error status or NEEDS_RESET for every hostile chain. */
#include "libguest.h"
#include "virtio.h"

const char guest_name[] = "virtio_hostile";

#define HOST_SECTOR 2048
#define HOST_SEED   0x11
#define T_IN	    0
#define S_OK	    0
#define S_NONE	    0xff

struct req_hdr {
	uint32_t type;
	uint32_t reserved;
	uint64_t sector;
};

static struct virtio_dev vd;
static struct req_hdr *hdr;
static volatile uint8_t *status;
static uint8_t *buf;
static uint64_t ram_top;
static bool strict;

enum outcome { DONE_OK, DONE_ERROR, NEEDS_RESET, IGNORED };
static const char *const outcome_names[] = {"completed OK", "failed the request", "set NEEDS_RESET",
					    "left the chain alone"};

static bool setup(uint16_t qsize)
{
	return virtio_negotiate(&vd, 0) && virtio_queue_setup(&vd, 0, qsize, VIRTIO_MSI_NO_VECTOR);
}

static bool pattern_ok(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		uint64_t off = HOST_SECTOR * 512ull + i;
		if (p[i] != (uint8_t)((off >> 9) * 31 + (off & 511) * 7 + HOST_SEED))
			return false;
	}
	return true;
}

/* Writes descriptors 0..n-1 as given, makes `head` available and notifies. */
static void post_raw(const struct virtq_desc *d, int n, uint16_t head)
{
	struct virtq *vq = &vd.vq[0];
	for (int i = 0; i < n; i++)
		vq->desc[i] = d[i];
	vq->avail->ring[vq->avail->idx % vq->size] = head;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	vq->avail->idx++;
	virtq_kick(&vd, vq);
}

/* What the device made of the last chain within `ms`. */
static enum outcome wait_outcome(uint64_t ms)
{
	struct virtq *vq = &vd.vq[0];
	uint64_t end = deadline_ms(ms);
	while (!deadline_passed(end)) {
		if (virtio_status(&vd) & VIRTIO_STATUS_NEEDS_RESET)
			return NEEDS_RESET;
		if (vq->used->idx != vq->last_used) {
			vq->last_used = vq->used->idx;
			return *status == S_OK ? DONE_OK : DONE_ERROR;
		}
		cpu_relax();
	}
	return IGNORED;
}

/* After a hostile request: reset, set up again, read the host's pattern. */
static void recovers(const char *what)
{
	bool ok = setup(64);
	if (ok) {
		virtio_driver_ok(&vd);
		hdr->type = T_IN;
		hdr->sector = HOST_SECTOR;
		*status = S_NONE;
		memset(buf, 0, 4096);
		struct vbuf b[3] = {
		    {hdr, sizeof(*hdr), false}, {buf, 4096, true}, {(void *)status, 1, true}};
		ok = virtq_transfer(&vd, &vd.vq[0], b, 3, 5000) >= 0 && *status == S_OK &&
		     pattern_ok(buf, 4096);
	}
	report(ok, "%s: after a reset the device reads the host's pattern again", what);
}

/* Whether outcome `o` of a hostile chain is acceptable; `dma_to_nowhere`: the only fault is
 * a buffer outside RAM, which QEMU (non-strict) may complete. */
static bool acceptable(enum outcome o, bool dma_to_nowhere)
{
	if (strict)
		return o == DONE_ERROR || o == NEEDS_RESET;
	return o != DONE_OK || dma_to_nowhere;
}

/* A read whose data descriptor is `data`; the device must not call it a success. */
static void bad_read(const char *what, struct virtq_desc data, int extra_descs,
		     const struct virtq_desc *extra, bool dma_to_nowhere)
{
	setup(64);
	virtio_driver_ok(&vd);
	hdr->type = T_IN;
	hdr->reserved = 0;
	hdr->sector = HOST_SECTOR;
	*status = S_NONE;
	struct virtq_desc d[8];
	int n = 0;
	d[n] = (struct virtq_desc){(uint64_t)hdr, sizeof(*hdr), VIRTQ_DESC_F_NEXT, 1};
	n++;
	d[n] = data;
	d[n].flags |= VIRTQ_DESC_F_NEXT;
	d[n].next = 2;
	n++;
	for (int i = 0; i < extra_descs; i++)
		d[n++] = extra[i];
	d[n] = (struct virtq_desc){(uint64_t)status, 1, VIRTQ_DESC_F_WRITE, 0};
	n++;
	post_raw(d, n, 0);
	enum outcome o = wait_outcome(2000);
	report(acceptable(o, dma_to_nowhere), "%s: the device %s", what, outcome_names[o]);
	recovers(what);
}

/* Guest page 0, where a wrapped buffer address would land; unused by the program. */
static volatile uint8_t *page0(void)
{
	uint64_t a = 0;
	__asm__("" : "+r"(a)); /* an address, not a null pointer, as far as the compiler knows */
	return (volatile uint8_t *)a;
}

static void outside_ram(void)
{
	struct virtq_desc d = {ram_top, 4096, VIRTQ_DESC_F_WRITE, 0};
	bad_read("data buffer just past the end of RAM", d, 0, NULL, true);
	volatile uint8_t *low = page0();
	for (int i = 0; i < 4096; i++)
		low[i] = 0x5a;
	d.addr = 0xfffffffffffff000ull; /* addr + len wraps to 0x1000 */
	d.len = 8192;
	bad_read("data buffer whose end wraps around 2^64", d, 0, NULL, true);
	int changed = 0;
	for (int i = 0; i < 4096; i++)
		changed += low[i] != 0x5a;
	/* QEMU 7.2 maps the part past 2^64 at address 0 and writes it there: only strict=1
	 * holds a VMM to leaving RAM alone. */
	if (strict)
		report(changed == 0, "wrapped buffer: guest page 0 unchanged (%d bytes differ)",
		       changed);
	else
		printf("virtio_hostile: wrapped buffer: %d bytes of guest page 0 changed\n",
		       changed);
	d.addr = 0x1000000000000ull; /* 256 TiB */
	d.len = 4096;
	bad_read("data buffer at 256 TiB", d, 0, NULL, true);
}

static void chain_loop(void)
{
	/* hdr(0) -> data(1) -> data(2) -> back to 1, never reaching a status byte. */
	struct virtq_desc data = {(uint64_t)buf, 512, VIRTQ_DESC_F_WRITE, 0};
	struct virtq_desc loop = {(uint64_t)buf + 512, 512, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT,
				  1};
	bad_read("descriptor chain looping 1 -> 2 -> 1", data, 1, &loop, false);
}

static void next_out_of_range(void)
{
	struct virtq_desc data = {(uint64_t)buf, 512, VIRTQ_DESC_F_WRITE, 0};
	struct virtq_desc far = {(uint64_t)buf + 512, 512, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT,
				 1000};
	bad_read("descriptor next index 1000 in a queue of 64", data, 1, &far, false);
}

static void length_overflow(void)
{
	/* 0xfffffe00 + 0x400 bytes: more than 2^32 in total. */
	struct virtq_desc data = {(uint64_t)buf, 0xfffffe00u, VIRTQ_DESC_F_WRITE, 0};
	struct virtq_desc more = {(uint64_t)buf, 0x400, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 3};
	bad_read("data lengths summing past 2^32", data, 1, &more, false);
}

/* Queue size 3: the device may refuse it (size or enable read back otherwise, or
 * NEEDS_RESET), or run it correctly; never a wrong answer. */
static void odd_queue_size(void)
{
	virtio_negotiate(&vd, 0);
	bool refused = !virtio_queue_setup(&vd, 0, 64, VIRTIO_MSI_NO_VECTOR);
	if (!refused) {
		/* Set up at 64; now shrink to 3 with the queue disabled again. */
		mmio_write8(vd.common + 0x14, 0);
		for (int i = 0; i < 100000 && virtio_status(&vd); i++)
			cpu_relax();
		virtio_negotiate(&vd, 0);
		mmio_write16(vd.common + 0x16, 0);
		mmio_write16(vd.common + 0x18, 3);
		uint16_t back = mmio_read16(vd.common + 0x18);
		refused = back != 3;
		if (!refused) {
			struct virtq *vq = &vd.vq[0];
			vq->size = 3;
			vq->last_used = 0;
			memset(vq->desc, 0, PAGE_SIZE);
			memset(vq->avail, 0, PAGE_SIZE);
			memset((void *)vq->used, 0, PAGE_SIZE);
			mmio_write32(vd.common + 0x20, (uint32_t)(uint64_t)vq->desc);
			mmio_write32(vd.common + 0x24, 0);
			mmio_write32(vd.common + 0x28, (uint32_t)(uint64_t)vq->avail);
			mmio_write32(vd.common + 0x2c, 0);
			mmio_write32(vd.common + 0x30, (uint32_t)(uint64_t)vq->used);
			mmio_write32(vd.common + 0x34, 0);
			mmio_write16(vd.common + 0x1c, 1);
			refused = mmio_read16(vd.common + 0x1c) != 1;
		}
	}
	enum outcome o = IGNORED;
	bool right = true;
	if (!refused) {
		virtio_driver_ok(&vd);
		hdr->type = T_IN;
		hdr->sector = HOST_SECTOR;
		*status = S_NONE;
		memset(buf, 0, 512);
		struct virtq_desc d[3] = {
		    {(uint64_t)hdr, sizeof(*hdr), VIRTQ_DESC_F_NEXT, 1},
		    {(uint64_t)buf, 512, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 2},
		    {(uint64_t)status, 1, VIRTQ_DESC_F_WRITE, 0}};
		post_raw(d, 3, 0);
		o = wait_outcome(2000);
		right = o != DONE_OK || pattern_ok(buf, 512);
	}
	report(right, "queue size 3: the device %s", refused ? "refused it" : outcome_names[o]);
	recovers("queue size 3");
}

/* A request made available and notified before DRIVER_OK: processing it then or later is
 * the device's choice; a wrong answer or a dead device is not. */
static void kick_before_driver_ok(void)
{
	setup(64);
	hdr->type = T_IN;
	hdr->sector = HOST_SECTOR;
	*status = S_NONE;
	memset(buf, 0, 512);
	struct virtq_desc d[3] = {{(uint64_t)hdr, sizeof(*hdr), VIRTQ_DESC_F_NEXT, 1},
				  {(uint64_t)buf, 512, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 2},
				  {(uint64_t)status, 1, VIRTQ_DESC_F_WRITE, 0}};
	post_raw(d, 3, 0);
	enum outcome before = wait_outcome(500);
	virtio_driver_ok(&vd);
	enum outcome o = before == IGNORED ? wait_outcome(500) : before;
	report(o != DONE_OK || pattern_ok(buf, 512),
	       "notification before DRIVER_OK: the device %s (before DRIVER_OK: %s)",
	       outcome_names[o], outcome_names[before]);
	recovers("notification before DRIVER_OK");
}

static uint64_t body(uint64_t arg)
{
	if (!virtio_find(VIRTIO_ID_BLOCK, 0, &vd)) {
		report(false, "virtio-blk device found");
		return 0;
	}
	for (int i = 0; i < e820_count; i++) {
		uint64_t end = e820_map[i].addr + e820_map[i].size;
		if (e820_map[i].type == E820_RAM && end > ram_top)
			ram_top = end;
	}
	strict = cmdline_u64("strict", 0) != 0;
	hdr = page_alloc();
	status = (volatile uint8_t *)(hdr + 1);
	buf = page_alloc();
	recovers("a well-formed read first");
	outside_ram();
	chain_loop();
	next_out_of_range();
	length_overflow();
	odd_queue_size();
	kick_before_driver_ok();
	return 0;
}

void guest_main(void)
{
	run_user(body, 0);
}
