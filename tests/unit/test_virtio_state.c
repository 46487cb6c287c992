/* Virtio transport state (virtio_pci_save/load, virtio-rng as the device): a driver sets the
 * device up and uses a queue, the state goes into a fresh device over a copy of the guest
 * RAM, and the driver goes on there from the same ring indices, MSI-X table and status.
 * Records a hostile file could hold (rings outside RAM, another device, cut short) are
 * refused. */
#include "unit.h"
#include "vpci_driver.h"
#include "virtio/virtio_balloon.h"
#include "virtio/virtio_rng.h"

#include <stdio.h>
#include <stdlib.h>

struct fx {
	struct vdrv d;
	struct virtio_rng *rng;
	struct virtio_pci vp;
};

static void fx_init(struct fx *f)
{
	vd_init(&f->d);
	f->rng = virtio_rng_create(&f->d.mem);
	assert_non_null(f->rng);
	assert_int_equal(virtio_pci_init(&f->vp, &f->d.bus, virtio_rng_dev(f->rng)), 1);
}

static void fx_fini(struct fx *f)
{
	virtio_rng_destroy(f->rng);
	virtio_pci_destroy(&f->vp);
	vd_fini(&f->d);
}

static void post_buffer(struct fx *f, uint16_t id)
{
	memset(f->d.ram + 0x200000 + 64 * id, 0, 64);
	tq_desc(&f->d.q[0], id, 0x200000 + 64 * id, 64, VIRTQ_DESC_F_WRITE, 0);
	tq_avail(&f->d.q[0], id);
}

/* A driver that set the device up, took one buffer of entropy, then was saved. */
static void used_and_saved(struct fx *a, struct state_buf *out)
{
	fx_init(a);
	assert_int_equal(vd_probe(&a->d, 1), 4);
	vd_enable_msix(&a->d);
	/* Without EVENT_IDX: every used buffer interrupts. */
	assert_true(vd_negotiate(&a->d, ~(1ull << 29)) >> 32 & 1);
	vd_setup_queue(&a->d, 0, 16, 0x100000);
	vd_driver_ok(&a->d);
	post_buffer(a, 0);
	vd_kick(&a->d, 0);
	assert_int_equal(vd_wait_used(&a->d, 0, 1), 0);
	virtio_dev_quiesce(a->vp.vd, true);
	assert_int_equal(virtio_pci_save(&a->vp, out), 0);
	virtio_dev_quiesce(a->vp.vd, false);
}

static void transport_round_trip(void **state)
{
	struct fx a, b;
	struct state_buf buf = {0};
	used_and_saved(&a, &buf);
	fx_init(&b);
	memcpy(b.d.ram, a.d.ram, VD_RAM); /* the guest's memory comes along */
	struct state_stream s;
	state_stream_init(&s, buf.data, buf.len);
	assert_int_equal(virtio_pci_load(&b.vp, &s), 0);
	assert_true(state_stream_done(&s));
	pci_bus_load_done(&b.d.bus);
	/* The driver finds it as it left it. */
	b.d.common = a.d.common;
	b.d.notify = a.d.notify;
	b.d.notify_mult = a.d.notify_mult;
	b.d.slot = 1;
	b.d.q[0] = a.d.q[0];
	b.d.q[0].mem = &b.d.mem;
	assert_int_equal(vd_status(&b.d) & VIRTIO_STATUS_DRIVER_OK, VIRTIO_STATUS_DRIVER_OK);
	vd_common_wr(&b.d, VIRTIO_PCI_COMMON_Q_SELECT, 0, 2);
	assert_int_equal(vd_common_rd(&b.d, VIRTIO_PCI_COMMON_Q_SIZE, 2), 16);
	assert_int_equal(vd_common_rd(&b.d, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 1);
	assert_int_equal(vd_common_rd(&b.d, VIRTIO_PCI_COMMON_Q_MSIX, 2), 1);
	assert_int_equal(pci_bar_addr(&b.vp.pci, VIRTIO_PCI_BAR), pci_bar_addr(&a.vp.pci, 0));
	/* The next buffer is taken from where the saved device stopped, and its MSI-X
	 * message is the one the driver programmed before the save. */
	b.d.msis = 0;
	post_buffer(&b, 1);
	vd_kick(&b.d, 0);
	assert_int_equal(vd_wait_used(&b.d, 0, 2), 0);
	uint32_t id, len;
	tq_used_elem(&b.d.q[0], 1, &id, &len);
	assert_int_equal(id, 1);
	assert_int_equal(len, 64);
	for (int i = 0; i < 100 && !__atomic_load_n(&b.d.msis, __ATOMIC_SEQ_CST); i++)
		usleep(1000);
	assert_true(b.d.msis >= 1);
	assert_int_equal(b.d.last_msi_data, 0x101);
	state_buf_free(&buf);
	fx_fini(&a);
	fx_fini(&b);
}

static void ring_outside_ram_refused(void **state)
{
	struct fx a, b;
	struct state_buf buf = {0};
	used_and_saved(&a, &buf);
	/* The same state with the used ring placed past the end of RAM. */
	state_buf_free(&buf);
	a.vp.vd->vqs[0].used_gpa = VD_RAM - 8;
	assert_int_equal(virtio_pci_save(&a.vp, &buf), 0);
	fx_init(&b);
	struct state_stream s;
	state_stream_init(&s, buf.data, buf.len);
	assert_int_equal(virtio_pci_load(&b.vp, &s), -1);
	assert_int_equal(virtio_dev_get_status(b.vp.vd), 0); /* nothing half-loaded runs */
	state_buf_free(&buf);
	fx_fini(&a);
	fx_fini(&b);
}

static void other_device_refused(void **state)
{
	struct fx a;
	struct state_buf buf = {0};
	used_and_saved(&a, &buf);
	struct vdrv d;
	vd_init(&d);
	struct virtio_balloon *bal = virtio_balloon_create(&d.mem);
	struct virtio_pci vp;
	assert_int_equal(virtio_pci_init(&vp, &d.bus, virtio_balloon_dev(bal)), 1);
	struct state_stream s;
	state_stream_init(&s, buf.data, buf.len);
	assert_int_equal(virtio_pci_load(&vp, &s), -1);
	virtio_balloon_destroy(bal);
	virtio_pci_destroy(&vp);
	vd_fini(&d);
	state_buf_free(&buf);
	fx_fini(&a);
}

static void truncated_state_refused(void **state)
{
	struct fx a, b;
	struct state_buf buf = {0};
	used_and_saved(&a, &buf);
	fx_init(&b);
	for (size_t n = 0; n < buf.len; n += 97) {
		uint8_t *copy = malloc(n ? n : 1);
		memcpy(copy, buf.data, n);
		struct state_stream s;
		state_stream_init(&s, copy, n);
		assert_int_equal(virtio_pci_load(&b.vp, &s), -1);
		free(copy);
	}
	state_buf_free(&buf);
	fx_fini(&a);
	fx_fini(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(transport_round_trip),
	    cmocka_unit_test(ring_outside_ram_refused),
	    cmocka_unit_test(other_device_refused),
	    cmocka_unit_test(truncated_state_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
