/* virtio-rng, virtio-console and virtio-balloon driven through the PCI transport. */
#include "unit.h"
#include "vpci_driver.h"
#include "virtio/virtio_balloon.h"
#include "virtio/virtio_console.h"
#include "virtio/virtio_rng.h"

#include <stdlib.h>

struct fx {
	struct vdrv d;
	struct virtio_pci vp;
	void *dev;
	char out[256];
	size_t out_len;
};

static void start(struct fx *f, struct virtio_dev *vd, unsigned id, unsigned nq)
{
	assert_int_equal(virtio_pci_init(&f->vp, &f->d.bus, vd), 1);
	assert_int_equal(vd_probe(&f->d, 1), id);
	vd_enable_msix(&f->d);
	assert_true(vd_negotiate(&f->d, ~0ull));
	for (unsigned q = 0; q < nq; q++)
		vd_setup_queue(&f->d, q, 64, 0x10000 + 0x10000 * q);
	vd_driver_ok(&f->d);
	assert_true(vd_status(&f->d) & VIRTIO_STATUS_DRIVER_OK);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	vd_init(&f->d);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	virtio_pci_destroy(&f->vp);
	vd_fini(&f->d);
	free(f);
	return 0;
}

static void test_rng_fills(void **state)
{
	struct fx *f = *state;
	struct virtio_rng *r = virtio_rng_create(&f->d.mem);
	start(f, virtio_rng_dev(r), 4, 1);
	struct tq *q = &f->d.q[0];
	memset(f->d.ram + 0x200000, 0, 8192);
	/* two buffers in one chain, and a second request */
	tq_desc(q, 0, 0x200000, 1000, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
	tq_desc(q, 1, 0x201000, 3000, VIRTQ_DESC_F_WRITE, 0);
	tq_desc(q, 2, 0x202000, 4096, VIRTQ_DESC_F_WRITE, 0);
	tq_avail(q, 0);
	tq_avail(q, 2);
	vd_kick(&f->d, 0);
	assert_int_equal(tq_used_idx(q), 2);
	uint32_t id, len;
	tq_used_elem(q, 0, &id, &len);
	assert_int_equal(len, 4000);
	tq_used_elem(q, 1, &id, &len);
	assert_int_equal(len, 4096);
	/* random bytes: not all zero, and the two buffers differ */
	int zeros = 0;
	for (int i = 0; i < 3000; i++)
		zeros += f->d.ram[0x201000 + i] == 0;
	assert_true(zeros < 100);
	assert_memory_not_equal(f->d.ram + 0x201000, f->d.ram + 0x202000, 1024);
	assert_int_equal(f->d.ram[0x201000 + 3000], 0); /* nothing past the buffer */
	assert_true(f->d.msis >= 1);
	/* a 4 MiB request gets at most 64 KiB: the used length says how much */
	memset(f->d.ram + 0x400000, 0, 4 << 20);
	tq_desc(q, 3, 0x400000, 4 << 20, VIRTQ_DESC_F_WRITE, 0);
	tq_avail(q, 3);
	vd_kick(&f->d, 0);
	assert_int_equal(tq_used_idx(q), 3);
	tq_used_elem(q, 2, &id, &len);
	assert_int_equal(len, 64 << 10);
	assert_int_equal(f->d.ram[0x400000 + (64 << 10) + 10], 0);
	virtio_rng_destroy(r);
}

static void con_write(void *opaque, const uint8_t *buf, size_t len)
{
	struct fx *f = opaque;
	if (f->out_len + len <= sizeof(f->out)) {
		memcpy(f->out + f->out_len, buf, len);
		f->out_len += len;
	}
}

static int rx_ready_calls;
static void con_rx(void *opaque)
{
	rx_ready_calls++;
}

static void test_console(void **state)
{
	struct fx *f = *state;
	struct virtio_console_backend be = {.write = con_write, .opaque = f, .rx_ready = con_rx};
	struct virtio_console *c = virtio_console_create(&f->d.mem, &be);
	start(f, virtio_console_dev(c), 3, 2);
	/* input before any receive buffer: nothing taken */
	assert_int_equal(virtio_console_input(c, (const uint8_t *)"ab", 2), 0);
	/* guest output: "hello " + "console" in two buffers */
	struct tq *tx = &f->d.q[1], *rx = &f->d.q[0];
	memcpy(f->d.ram + 0x200000, "hello ", 6);
	memcpy(f->d.ram + 0x200100, "console", 7);
	tq_desc(tx, 0, 0x200000, 6, VIRTQ_DESC_F_NEXT, 1);
	tq_desc(tx, 1, 0x200100, 7, 0, 0);
	tq_avail(tx, 0);
	vd_kick(&f->d, 1);
	assert_int_equal(f->out_len, 13);
	assert_memory_equal(f->out, "hello console", 13);
	/* host input into two posted 4-byte buffers: 8 of 10 bytes taken */
	tq_desc(rx, 0, 0x210000, 4, VIRTQ_DESC_F_WRITE, 0);
	tq_desc(rx, 1, 0x210010, 4, VIRTQ_DESC_F_WRITE, 0);
	tq_avail(rx, 0);
	tq_avail(rx, 1);
	vd_kick(&f->d, 0);
	assert_int_equal(rx_ready_calls, 1); /* the backend hears of the new buffers */
	assert_int_equal(virtio_console_input(c, (const uint8_t *)"0123456789", 10), 8);
	assert_memory_equal(f->d.ram + 0x210000, "0123", 4);
	assert_memory_equal(f->d.ram + 0x210010, "4567", 4);
	uint32_t id, len;
	tq_used_elem(rx, 1, &id, &len);
	assert_int_equal(len, 4);
	virtio_console_destroy(c);
}

static void test_balloon(void **state)
{
	struct fx *f = *state;
	struct virtio_balloon *b = virtio_balloon_create(&f->d.mem);
	start(f, virtio_balloon_dev(b), 5, 3);
	int msis = f->d.msis;
	virtio_balloon_set_target(b, 3);
	assert_int_equal(f->d.msis, msis + 1);
	assert_int_equal(f->d.last_msi_data, 0x100); /* the config vector */
	assert_int_equal(vd_rd(&f->d, IOBUS_MMIO, f->d.device, 4), 3);

	/* three guest pages with data; the guest gives them to the balloon */
	uint32_t pfns[4] = {0x400, 0x401, 0x403, 0xfffffff0 /* not RAM: ignored */};
	memset(f->d.ram + 0x400000, 0x11, 2 * 4096);
	memset(f->d.ram + 0x403000, 0x22, 4096);
	memset(f->d.ram + 0x402000, 0x33, 4096); /* not given: must survive */
	memcpy(f->d.ram + 0x300000, pfns, sizeof(pfns));
	struct tq *inf = &f->d.q[0], *def = &f->d.q[1], *st = &f->d.q[2];
	tq_desc(inf, 0, 0x300000, sizeof(pfns), 0, 0);
	tq_avail(inf, 0);
	vd_kick(&f->d, 0);
	assert_int_equal(tq_used_idx(inf), 1);
	assert_int_equal(virtio_balloon_inflated(b), 4);
	for (int i = 0; i < 4096; i++) {
		assert_int_equal(f->d.ram[0x400000 + i], 0); /* host memory dropped */
		assert_int_equal(f->d.ram[0x403000 + i], 0);
		assert_int_equal(f->d.ram[0x402000 + i], 0x33);
	}
	uint32_t actual = 3;
	vd_wr(&f->d, IOBUS_MMIO, f->d.device + 4, actual, 4);
	assert_int_equal(virtio_balloon_actual(b), 3);

	/* deflate one page */
	memcpy(f->d.ram + 0x300100, pfns, 4);
	tq_desc(def, 0, 0x300100, 4, 0, 0);
	tq_avail(def, 0);
	vd_kick(&f->d, 1);
	assert_int_equal(tq_used_idx(def), 1);
	assert_int_equal(virtio_balloon_inflated(b), 3);

	/* stats: the driver posts a report, the device keeps the buffer until asked */
	uint8_t rep[20];
	uint16_t tag = VIRTIO_BALLOON_S_MEMFREE;
	uint64_t val = 123456789;
	memcpy(rep, &tag, 2);
	memcpy(rep + 2, &val, 8);
	tag = VIRTIO_BALLOON_S_MEMTOT;
	val = 987654321;
	memcpy(rep + 10, &tag, 2);
	memcpy(rep + 12, &val, 8);
	memcpy(f->d.ram + 0x300200, rep, sizeof(rep));
	tq_desc(st, 0, 0x300200, sizeof(rep), 0, 0);
	tq_avail(st, 0);
	vd_kick(&f->d, 2);
	assert_int_equal(tq_used_idx(st), 0); /* held */
	struct virtio_balloon_stats s;
	virtio_balloon_get_stats(b, &s);
	assert_int_equal(s.reports, 1);
	assert_int_equal(s.val[VIRTIO_BALLOON_S_MEMFREE], 123456789);
	assert_int_equal(s.val[VIRTIO_BALLOON_S_MEMTOT], 987654321);
	assert_int_equal(s.valid, 1u << 4 | 1u << 5);
	virtio_balloon_request_stats(b);
	assert_int_equal(tq_used_idx(st), 1); /* handed back: the guest will refill it */
	virtio_balloon_destroy(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_rng_fills, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_console, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_balloon, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
