/* virtio_rng: the entropy device fills buffers (64 bytes, then 4 KiB) with bytes that are not
 * all equal, and two fills differ. The polling runs in ring 3.
 * `rounds=N`: then N more 64-byte requests, one queue notification each (kite's --stats shows
 * where the notifications went). `move=ADDR` (with rounds): then the BAR holding the virtio
 * structures moves to ADDR (decoding off meanwhile) and N more requests follow. */
#include "libguest.h"
#include "virtio.h"

const char guest_name[] = "virtio_rng";

static struct virtio_dev vd;
static bool ready; /* the queue is live */

/* Requests `len` bytes; returns how many the device wrote (-1 on timeout). */
static int64_t fill(uint8_t *p, uint32_t len)
{
	memset(p, 0, len);
	struct vbuf b = {p, len, true};
	return virtq_transfer(&vd, &vd.vq[0], &b, 1, 10000);
}

static bool all_equal(const uint8_t *p, int64_t n)
{
	for (int64_t i = 1; i < n; i++) {
		if (p[i] != p[0])
			return false;
	}
	return true;
}

static uint64_t body(uint64_t arg)
{
	if (!virtio_find(VIRTIO_ID_ENTROPY, 0, &vd)) {
		report(false, "virtio-rng device found");
		return 0;
	}
	bool ok = virtio_negotiate(&vd, 0) && virtio_queue_setup(&vd, 0, 16, VIRTIO_MSI_NO_VECTOR);
	report(ok, "virtio-rng: VERSION_1 negotiated, request queue ready");
	if (!ok)
		return 0;
	virtio_driver_ok(&vd);
	ready = true;
	uint8_t *a = page_alloc(), *b = page_alloc();
	int64_t n = fill(a, 64);
	report(n > 1 && n <= 64 && !all_equal(a, n), "64-byte request: %ld bytes, not all equal",
	       n);
	printf("virtio_rng: %02x %02x %02x %02x %02x %02x %02x %02x ...\n", a[0], a[1], a[2], a[3],
	       a[4], a[5], a[6], a[7]);
	int64_t m = fill(b, PAGE_SIZE);
	report(m > 1 && m <= (int64_t)PAGE_SIZE && !all_equal(b, m),
	       "4096-byte request: %ld bytes, not all equal", m);
	int64_t k = n < m ? n : m;
	report(k > 0 && memcmp(a, b, k) != 0, "two requests return different bytes");
	return 0;
}

/* Requests `n` times 64 bytes; returns how many requests were answered. */
static uint64_t rounds(uint64_t n)
{
	uint8_t *p = page_alloc();
	uint64_t ok = 0;
	for (uint64_t i = 0; i < n; i++)
		if (fill(p, 64) > 0)
			ok++;
	return ok;
}

static uint64_t rebase(uint64_t a, uint64_t from, uint64_t size, uint64_t to)
{
	return a >= from && a - from < size ? a - from + to : a;
}

/* Moves the BAR that holds the common configuration to `to`, as an OS rebalancing its
 * resources would, and points the driver's addresses at the new place. */
static bool move_bar(uint64_t to)
{
	struct pci_dev *d = vd.pci;
	int b = 0;
	while (b < 6 && !(d->bar[b] && vd.common - d->bar[b] < d->bar_size[b]))
		b++;
	if (b == 6 || to % d->bar_size[b])
		return false;
	uint64_t from = d->bar[b], size = d->bar_size[b];
	uint16_t cmd = pci_read16(d, 0x04);
	pci_write16(d, 0x04, cmd & ~0x2); /* memory decoding off */
	pci_write32(d, 0x10 + 4 * b, (uint32_t)to);
	if (d->bar64[b])
		pci_write32(d, 0x14 + 4 * b, (uint32_t)(to >> 32));
	pci_write16(d, 0x04, cmd);
	d->bar[b] = to;
	vd.common = rebase(vd.common, from, size, to);
	vd.isr = rebase(vd.isr, from, size, to);
	vd.device_cfg = rebase(vd.device_cfg, from, size, to);
	vd.notify_base = rebase(vd.notify_base, from, size, to);
	vd.vq[0].notify_addr = rebase(vd.vq[0].notify_addr, from, size, to);
	return true;
}

static uint64_t more(uint64_t arg)
{
	uint64_t n = cmdline_u64("rounds", 0), to = cmdline_u64("move", 0);
	if (!n || !ready)
		return 0;
	uint64_t ok = rounds(n);
	report(ok == n, "%lu more requests answered (%lu)", n, ok);
	if (!to)
		return 0;
	bool moved = move_bar(to);
	report(moved, "BAR with the virtio structures moved to %#lx", to);
	if (!moved)
		return 0;
	ok = rounds(n);
	report(ok == n, "after the move: %lu more requests answered (%lu)", n, ok);
	return 0;
}

void guest_main(void)
{
	run_user(body, 0);
	run_user(more, 0);
}
