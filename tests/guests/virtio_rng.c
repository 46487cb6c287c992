/* virtio_rng: the entropy device fills buffers (64 bytes, then 4 KiB) with bytes that are not
 * all equal, and two fills differ. The polling runs in ring 3. */
#include "libguest.h"
#include "virtio.h"

const char guest_name[] = "virtio_rng";

static struct virtio_dev vd;

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

void guest_main(void)
{
	run_user(body, 0);
}
