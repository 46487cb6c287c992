/* The virtio-pci transport as a driver sees it (with virtio-rng as the device): identity,
 * feature negotiation, queue setup rules, notification before DRIVER_OK, INTx and ISR,
 * MSI-X vectors, reset. */
#include "unit.h"
#include "vpci_driver.h"
#include "virtio/virtio_rng.h"

#include <stdio.h>
#include <stdlib.h>

struct fx {
	struct vdrv d;
	struct virtio_rng *rng;
	struct virtio_pci vp;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	vd_init(&f->d);
	f->rng = virtio_rng_create(&f->d.mem);
	assert_non_null(f->rng);
	assert_int_equal(virtio_pci_init(&f->vp, &f->d.bus, virtio_rng_dev(f->rng)), 1);
	assert_int_equal(vd_probe(&f->d, 1), 4);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	virtio_rng_destroy(f->rng);
	virtio_pci_destroy(&f->vp);
	vd_fini(&f->d);
	free(f);
	return 0;
}

/* One 64-byte device-writable buffer on queue 0. */
static void post_buffer(struct fx *f, uint16_t id)
{
	memset(f->d.ram + 0x200000 + 64 * id, 0, 64);
	tq_desc(&f->d.q[0], id, 0x200000 + 64 * id, 64, VIRTQ_DESC_F_WRITE, 0);
	tq_avail(&f->d.q[0], id);
}

static void test_identity(void **state)
{
	struct fx *f = *state;
	assert_int_equal(vd_cfg_rd(&f->d, PCI_DEVICE_ID, 2), 0x1044);
	assert_int_equal(vd_cfg_rd(&f->d, PCI_REVISION, 1), 1);
	assert_int_equal(vd_cfg_rd(&f->d, PCI_SUBSYS_VENDOR, 2), 0x1af4);
	assert_true(vd_cfg_rd(&f->d, PCI_SUBSYS_ID, 2) >= 0x40);
	assert_int_equal(vd_common_rd(&f->d, VIRTIO_PCI_COMMON_NUMQ, 2), 1);
	assert_int_equal(f->d.notify_mult, VIRTIO_PCI_NOTIFY_MULT);
	assert_ptr_equal(virtio_pci_of(&f->vp.pci), &f->vp);
	assert_null(virtio_pci_of(&f->d.bus.host_bridge));
	assert_int_equal(virtio_pci_notify_addr(&f->vp, 0), f->d.notify);
}

static void test_features(void **state)
{
	struct fx *f = *state;
	/* A legacy-only driver (no VERSION_1) does not get FEATURES_OK. */
	assert_int_equal(vd_negotiate(&f->d, ~(1ull << 32)), 0);
	/* Nor does one that claims a feature the device did not offer. */
	vd_common_wr(&f->d, VIRTIO_PCI_COMMON_STATUS, 0, 1);
	vd_common_wr(&f->d, VIRTIO_PCI_COMMON_STATUS, 3, 1);
	vd_common_wr(&f->d, VIRTIO_PCI_COMMON_GFSELECT, 1, 4);
	vd_common_wr(&f->d, VIRTIO_PCI_COMMON_GF, 1 | 1u << 20, 4);
	vd_common_wr(&f->d, VIRTIO_PCI_COMMON_STATUS, 3 | VIRTIO_STATUS_FEATURES_OK, 1);
	assert_int_equal(vd_status(&f->d) & VIRTIO_STATUS_FEATURES_OK, 0);
	/* DRIVER_OK without FEATURES_OK does not start the device. */
	vd_common_wr(&f->d, VIRTIO_PCI_COMMON_STATUS, 3 | VIRTIO_STATUS_DRIVER_OK, 1);
	assert_int_equal(vd_status(&f->d) & VIRTIO_STATUS_DRIVER_OK, 0);
	/* A virtio 1 driver does. */
	uint64_t feat = vd_negotiate(&f->d, ~0ull);
	assert_true(feat >> 32 & 1);
	assert_true(feat >> 29 & 1); /* EVENT_IDX offered */
	/* Features are frozen after FEATURES_OK. */
	vd_common_wr(&f->d, VIRTIO_PCI_COMMON_GFSELECT, 0, 4);
	vd_common_wr(&f->d, VIRTIO_PCI_COMMON_GF, 0, 4);
	assert_int_equal(vd_common_rd(&f->d, VIRTIO_PCI_COMMON_GF, 4), (uint32_t)feat);
}

static void test_queue_size_not_power_of_two(void **state)
{
	struct fx *f = *state;
	assert_true(vd_negotiate(&f->d, ~0ull));
	vd_common_wr(&f->d, VIRTIO_PCI_COMMON_Q_SELECT, 0, 2);
	vd_common_wr(&f->d, VIRTIO_PCI_COMMON_Q_SIZE, 100, 2);
	vd_common_wr(&f->d, VIRTIO_PCI_COMMON_Q_DESCLO, 0x10000, 4);
	vd_common_wr(&f->d, VIRTIO_PCI_COMMON_Q_AVAILLO, 0x11000, 4);
	vd_common_wr(&f->d, VIRTIO_PCI_COMMON_Q_USEDLO, 0x12000, 4);
	vd_common_wr(&f->d, VIRTIO_PCI_COMMON_Q_ENABLE, 1, 2);
	assert_int_equal(vd_common_rd(&f->d, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
	assert_true(vd_status(&f->d) & VIRTIO_STATUS_NEEDS_RESET);
	/* Rings outside RAM are refused the same way. */
	assert_true(vd_negotiate(&f->d, ~0ull));
	assert_int_equal(vd_status(&f->d) & VIRTIO_STATUS_NEEDS_RESET, 0);
	vd_common_wr(&f->d, VIRTIO_PCI_COMMON_Q_SIZE, 64, 2);
	vd_common_wr(&f->d, VIRTIO_PCI_COMMON_Q_DESCLO, 0, 4);
	vd_common_wr(&f->d, VIRTIO_PCI_COMMON_Q_DESCHI, 0x10, 4); /* 64 GiB */
	vd_common_wr(&f->d, VIRTIO_PCI_COMMON_Q_ENABLE, 1, 2);
	assert_int_equal(vd_common_rd(&f->d, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
	assert_true(vd_status(&f->d) & VIRTIO_STATUS_NEEDS_RESET);
}

static void test_notify_before_driver_ok(void **state)
{
	struct fx *f = *state;
	assert_true(vd_negotiate(&f->d, ~0ull));
	vd_setup_queue(&f->d, 0, 64, 0x10000);
	post_buffer(f, 0);
	vd_kick(&f->d, 0);
	assert_int_equal(tq_used_idx(&f->d.q[0]), 0); /* not touched before DRIVER_OK */
	vd_driver_ok(&f->d);
	assert_int_equal(tq_used_idx(&f->d.q[0]), 1); /* replayed at DRIVER_OK */
}

static void test_intx_and_isr(void **state)
{
	struct fx *f = *state;
	assert_true(vd_negotiate(&f->d, ~0ull));
	vd_setup_queue(&f->d, 0, 64, 0x10000);
	vd_driver_ok(&f->d);
	post_buffer(f, 0);
	vd_kick(&f->d, 0);
	assert_int_equal(tq_used_idx(&f->d.q[0]), 1);
	assert_int_equal(f->d.msis, 0);
	assert_int_equal(f->d.irq_level, 1);
	assert_int_equal(vd_rd(&f->d, IOBUS_MMIO, f->d.isr, 1), 1); /* queue interrupt */
	assert_int_equal(f->d.irq_level, 0);			    /* read clears */
	assert_int_equal(vd_rd(&f->d, IOBUS_MMIO, f->d.isr, 1), 0);
	/* a reset lowers a pending INTx too (used_event = 1: interrupt me for the next one) */
	uint16_t used_event = 1;
	memcpy(f->d.ram + f->d.q[0].avail + 4 + 2 * f->d.q[0].size, &used_event, 2);
	post_buffer(f, 1);
	vd_kick(&f->d, 0);
	assert_int_equal(f->d.irq_level, 1);
	vd_common_wr(&f->d, VIRTIO_PCI_COMMON_STATUS, 0, 1);
	assert_int_equal(f->d.irq_level, 0);
	assert_int_equal(vd_rd(&f->d, IOBUS_MMIO, f->d.isr, 1), 0);
}

static void test_msix_vectors(void **state)
{
	struct fx *f = *state;
	vd_enable_msix(&f->d);
	assert_true(vd_negotiate(&f->d, ~0ull));
	vd_common_wr(&f->d, VIRTIO_PCI_COMMON_MSIX, 7, 2); /* only vectors 0, 1 exist */
	assert_int_equal(vd_common_rd(&f->d, VIRTIO_PCI_COMMON_MSIX, 2), 0xffff);
	vd_setup_queue(&f->d, 0, 64, 0x10000);
	assert_int_equal(vd_common_rd(&f->d, VIRTIO_PCI_COMMON_Q_MSIX, 2), 1);
	vd_driver_ok(&f->d);
	post_buffer(f, 0);
	vd_kick(&f->d, 0);
	assert_int_equal(f->d.msis, 1);
	assert_int_equal(f->d.last_msi_data, 0x101);
	assert_int_equal(f->d.irq_level, 0); /* no INTx with MSI-X on */
}

static void test_reset(void **state)
{
	struct fx *f = *state;
	assert_true(vd_negotiate(&f->d, ~0ull));
	vd_setup_queue(&f->d, 0, 64, 0x10000);
	vd_driver_ok(&f->d);
	vd_common_wr(&f->d, VIRTIO_PCI_COMMON_STATUS, 0, 1);
	assert_int_equal(vd_status(&f->d), 0);
	vd_common_wr(&f->d, VIRTIO_PCI_COMMON_Q_SELECT, 0, 2);
	assert_int_equal(vd_common_rd(&f->d, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
	assert_int_equal(vd_common_rd(&f->d, VIRTIO_PCI_COMMON_Q_SIZE, 2), 256);
	assert_int_equal(vd_common_rd(&f->d, VIRTIO_PCI_COMMON_Q_DESCLO, 4), 0);
	/* After a reset a kick does nothing. */
	post_buffer(f, 0);
	vd_kick(&f->d, 0);
	assert_int_equal(tq_used_idx(&f->d.q[0]), 0);
}

struct hook_log {
	int calls;
	uint32_t enabled;
	struct virtio_pci *vp;
};

static void record_queues(void *opaque, struct virtio_pci *vp, uint32_t enabled)
{
	struct hook_log *h = opaque;
	h->calls++;
	h->enabled = enabled;
	h->vp = vp;
}

/* The VMM's ioeventfds follow the enabled queues: told at enable and at reset. */
static void test_queue_hook(void **state)
{
	struct fx *f = *state;
	struct hook_log h = {0};
	virtio_pci_set_queue_hook(&f->vp, record_queues, &h);
	assert_true(vd_negotiate(&f->d, ~0ull)); /* begins with a reset: nothing enabled */
	assert_int_equal(h.enabled, 0);
	int calls = h.calls;
	vd_setup_queue(&f->d, 0, 64, 0x10000);
	assert_int_equal(h.calls, calls + 1); /* the enable; the address writes say nothing */
	assert_int_equal(h.enabled, 1);
	assert_ptr_equal(h.vp, &f->vp);
	vd_driver_ok(&f->d);
	assert_int_equal(h.calls, calls + 1);
	vd_common_wr(&f->d, VIRTIO_PCI_COMMON_STATUS, 0, 1);
	assert_int_equal(h.calls, calls + 2);
	assert_int_equal(h.enabled, 0);
	virtio_pci_set_queue_hook(&f->vp, NULL, NULL);
	assert_true(vd_negotiate(&f->d, ~0ull));
	vd_setup_queue(&f->d, 0, 64, 0x10000);
	assert_int_equal(h.calls, calls + 2);
}

static void test_stray_accesses(void **state)
{
	struct fx *f = *state;
	assert_true(vd_negotiate(&f->d, ~0ull));
	vd_setup_queue(&f->d, 0, 64, 0x10000);
	vd_driver_ok(&f->d);
	/* notify for queues that do not exist, config reads past the (empty) config space,
	 * queue_select past the end */
	for (unsigned q = 1; q < 1000; q += 97)
		vd_wr(&f->d, IOBUS_MMIO, f->d.notify + q * 4, q, 2);
	uint64_t bar = f->d.common;
	assert_int_equal(vd_rd(&f->d, IOBUS_MMIO, bar + VIRTIO_PCI_DEVICE_OFF, 4), 0);
	vd_common_wr(&f->d, VIRTIO_PCI_COMMON_Q_SELECT, 500, 2);
	assert_int_equal(vd_common_rd(&f->d, VIRTIO_PCI_COMMON_Q_SIZE, 2), 0);
	vd_common_wr(&f->d, VIRTIO_PCI_COMMON_Q_ENABLE, 1, 2);
	vd_common_wr(&f->d, VIRTIO_PCI_COMMON_Q_DESCLO, 0x1234, 4);
	/* odd sizes and offsets inside the common structure */
	vd_common_wr(&f->d, 0x35, 0xffffffff, 4);
	vd_wr(&f->d, IOBUS_MMIO, bar + 0x36, 0xffffffffffffffffull, 8);
	assert_true(vd_status(&f->d) & VIRTIO_STATUS_DRIVER_OK);
}

/* A guest that breaks the rules over and over gets NEEDS_RESET each time, but the host's
 * log sees only the first few. */
static void test_failures_log_limited(void **state)
{
	struct fx *f = *state;
	char path[] = "/tmp/kite-vpci-log-XXXXXX";
	int log = mkstemp(path);
	assert_true(log >= 0);
	fflush(stderr);
	int saved = dup(2);
	dup2(log, 2);
	for (int i = 0; i < 50; i++) {
		assert_true(vd_negotiate(&f->d, ~0ull));
		vd_common_wr(&f->d, VIRTIO_PCI_COMMON_Q_SELECT, 0, 2);
		vd_common_wr(&f->d, VIRTIO_PCI_COMMON_Q_SIZE, 3, 2);
		vd_common_wr(&f->d, VIRTIO_PCI_COMMON_Q_ENABLE, 1, 2);
		assert_true(vd_status(&f->d) & VIRTIO_STATUS_NEEDS_RESET);
	}
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	char buf[8192] = {0};
	assert_true(pread(log, buf, sizeof(buf) - 1, 0) > 0);
	close(log);
	unlink(path);
	int lines = 0;
	for (char *p = buf; (p = strchr(p, '\n')); p++)
		lines++;
	assert_int_equal(lines, 8);
	assert_non_null(strstr(buf, "not a power of two"));
	assert_non_null(strstr(buf, "further errors not shown"));
}

/* The PCI configuration access capability: BAR0 through config space only. */
static void test_pci_cfg_window(void **state)
{
	struct fx *f = *state;
	unsigned cap = 0;
	for (unsigned c = vd_cfg_rd(&f->d, PCI_CAP_PTR, 1); c; c = vd_cfg_rd(&f->d, c + 1, 1))
		if (vd_cfg_rd(&f->d, c, 1) == PCI_CAP_ID_VENDOR &&
		    vd_cfg_rd(&f->d, c + 3, 1) == VIRTIO_PCI_CAP_PCI_CFG)
			cap = c;
	assert_true(cap);
	assert_int_equal(vd_cfg_rd(&f->d, cap + 2, 1), 20);
	/* read num_queues (2 bytes at common + 0x12) */
	vd_cfg_wr(&f->d, cap + 4, VIRTIO_PCI_BAR, 1);
	vd_cfg_wr(&f->d, cap + 8, VIRTIO_PCI_COMMON_NUMQ, 4);
	vd_cfg_wr(&f->d, cap + 12, 2, 4);
	assert_int_equal(vd_cfg_rd(&f->d, cap + 16, 2), 1);
	/* write device_status = ACKNOWLEDGE through it */
	vd_cfg_wr(&f->d, cap + 8, VIRTIO_PCI_COMMON_STATUS, 4);
	vd_cfg_wr(&f->d, cap + 12, 1, 4);
	vd_cfg_wr(&f->d, cap + 16, VIRTIO_STATUS_ACKNOWLEDGE, 1);
	assert_int_equal(vd_status(&f->d), VIRTIO_STATUS_ACKNOWLEDGE);
	assert_int_equal(vd_cfg_rd(&f->d, cap + 16, 1), VIRTIO_STATUS_ACKNOWLEDGE);
	/* bad window settings do nothing */
	vd_cfg_wr(&f->d, cap + 8, VIRTIO_PCI_BAR_SIZE - 1, 4);
	vd_cfg_wr(&f->d, cap + 12, 4, 4);
	vd_cfg_wr(&f->d, cap + 16, 0xffffffff, 4);
	vd_cfg_wr(&f->d, cap + 4, 3, 1); /* not our BAR */
	vd_cfg_wr(&f->d, cap + 8, 0, 4);
	vd_cfg_wr(&f->d, cap + 16, 0xffffffff, 4);
	assert_int_equal(vd_status(&f->d), VIRTIO_STATUS_ACKNOWLEDGE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_identity, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_features, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_queue_size_not_power_of_two, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_notify_before_driver_ok, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_intx_and_isr, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_msix_vectors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reset, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_queue_hook, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stray_accesses, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pci_cfg_window, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_failures_log_limited, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
