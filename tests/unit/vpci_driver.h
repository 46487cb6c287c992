/* A test driver for virtio-pci devices that does what Linux's virtio_pci_modern does: finds
 * the function through 0xCF8/0xCFC, walks the vendor capabilities, enables the BARs and
 * MSI-X, negotiates features, sets up split virtqueues in a fake guest RAM and kicks them
 * through the notify area, all through the iobus. Shared by the virtio unit tests. */
#ifndef KITE_TESTS_VPCI_DRIVER_H
#define KITE_TESTS_VPCI_DRIVER_H

#include "vdriver.h"
#include "devices/pci.h"
#include "virtio/virtio_pci.h"

#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define VD_RAM (16u << 20)

struct vdrv {
	struct iobus io;
	struct pci_bus bus;
	struct guest_mem mem;
	uint8_t *ram;
	unsigned slot;
	uint64_t common, notify, isr, device;
	uint32_t notify_mult;
	int msis, irq_level;
	uint32_t last_msi_data;
	struct tq q[VIRTIO_MAX_QUEUES];
};

static void vd_msi(void *opaque, struct pci_device *dev, unsigned vector, uint64_t addr,
		   uint32_t data)
{
	struct vdrv *d = opaque;
	__atomic_fetch_add(&d->msis, 1, __ATOMIC_SEQ_CST);
	d->last_msi_data = data;
}

static void vd_irq(void *opaque, unsigned gsi, int level)
{
	struct vdrv *d = opaque;
	d->irq_level = level;
}

/* RAM and bus; the device is then created and plugged by the test. */
static inline void vd_init(struct vdrv *d)
{
	memset(d, 0, sizeof(*d));
	d->ram = mmap(NULL, VD_RAM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(d->ram != MAP_FAILED);
	gmem_init_from(&d->mem, d->ram, VD_RAM);
	struct pci_bus_ops ops = {.msi_send = vd_msi, .set_irq = vd_irq, .opaque = d};
	assert_int_equal(pci_bus_init(&d->bus, &ops), 0);
	assert_int_equal(pci_bus_register(&d->bus, &d->io), 0);
}

static inline void vd_fini(struct vdrv *d)
{
	pci_bus_destroy(&d->bus);
	munmap(d->ram, VD_RAM);
}

static inline uint64_t vd_rd(struct vdrv *d, enum iobus_space sp, uint64_t addr, unsigned len)
{
	uint64_t v = 0;
	iobus_access(&d->io, sp, addr, (uint8_t *)&v, len, false);
	return v;
}
static inline void vd_wr(struct vdrv *d, enum iobus_space sp, uint64_t addr, uint64_t v,
			 unsigned len)
{
	iobus_access(&d->io, sp, addr, (uint8_t *)&v, len, true);
}
static inline uint32_t vd_cfg_rd(struct vdrv *d, unsigned reg, unsigned len)
{
	vd_wr(d, IOBUS_PIO, 0xCF8, 0x80000000u | d->slot << 11 | (reg & 0xfc), 4);
	return vd_rd(d, IOBUS_PIO, 0xCFC + (reg & 3), len);
}
static inline void vd_cfg_wr(struct vdrv *d, unsigned reg, uint32_t v, unsigned len)
{
	vd_wr(d, IOBUS_PIO, 0xCF8, 0x80000000u | d->slot << 11 | (reg & 0xfc), 4);
	vd_wr(d, IOBUS_PIO, 0xCFC + (reg & 3), v, len);
}
static inline uint64_t vd_common_rd(struct vdrv *d, unsigned off, unsigned len)
{
	return vd_rd(d, IOBUS_MMIO, d->common + off, len);
}
static inline void vd_common_wr(struct vdrv *d, unsigned off, uint64_t v, unsigned len)
{
	vd_wr(d, IOBUS_MMIO, d->common + off, v, len);
}
static inline uint8_t vd_status(struct vdrv *d)
{
	return vd_common_rd(d, VIRTIO_PCI_COMMON_STATUS, 1);
}

/* Probes slot `slot` as virtio_pci_modern_probe does. Returns the virtio device id. */
static inline unsigned vd_probe(struct vdrv *d, unsigned slot)
{
	d->slot = slot;
	uint32_t id = vd_cfg_rd(d, 0, 4);
	assert_int_equal(id & 0xffff, 0x1af4);
	unsigned dev_id = (id >> 16) - 0x1040;
	uint32_t bars[6];
	for (int i = 0; i < 6; i++)
		bars[i] = vd_cfg_rd(d, PCI_BAR0 + 4 * i, 4) & ~0xfu;
	vd_cfg_wr(d, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 2);
	for (unsigned cap = vd_cfg_rd(d, PCI_CAP_PTR, 1); cap; cap = vd_cfg_rd(d, cap + 1, 1)) {
		if (vd_cfg_rd(d, cap, 1) != PCI_CAP_ID_VENDOR)
			continue;
		unsigned type = vd_cfg_rd(d, cap + 3, 1), bar = vd_cfg_rd(d, cap + 4, 1);
		uint64_t addr = bars[bar] + vd_cfg_rd(d, cap + 8, 4);
		if (type == VIRTIO_PCI_CAP_COMMON_CFG)
			d->common = addr;
		else if (type == VIRTIO_PCI_CAP_NOTIFY_CFG) {
			d->notify = addr;
			d->notify_mult = vd_cfg_rd(d, cap + 16, 4);
		} else if (type == VIRTIO_PCI_CAP_ISR_CFG)
			d->isr = addr;
		else if (type == VIRTIO_PCI_CAP_DEVICE_CFG)
			d->device = addr;
	}
	assert_true(d->common && d->notify && d->isr);
	return dev_id;
}

/* MSI-X on, vector v -> data 0x100 + v, all unmasked. */
static inline void vd_enable_msix(struct vdrv *d)
{
	for (unsigned cap = vd_cfg_rd(d, PCI_CAP_PTR, 1); cap; cap = vd_cfg_rd(d, cap + 1, 1)) {
		if (vd_cfg_rd(d, cap, 1) != PCI_CAP_ID_MSIX)
			continue;
		unsigned n = (vd_cfg_rd(d, cap + 2, 2) & 0x7ff) + 1;
		uint32_t tbl = vd_cfg_rd(d, cap + 4, 4);
		uint64_t base = (vd_cfg_rd(d, PCI_BAR0 + 4 * (tbl & 7), 4) & ~0xfu) + (tbl & ~7u);
		vd_cfg_wr(d, cap + 2, 0x8000, 2);
		for (unsigned v = 0; v < n; v++) {
			vd_wr(d, IOBUS_MMIO, base + 16 * v, 0xfee00000, 4);
			vd_wr(d, IOBUS_MMIO, base + 16 * v + 4, 0, 4);
			vd_wr(d, IOBUS_MMIO, base + 16 * v + 8, 0x100 + v, 4);
			vd_wr(d, IOBUS_MMIO, base + 16 * v + 12, 0, 4);
		}
	}
}

/* Reset, ACK, DRIVER, features (what the device offers masked by `want`), FEATURES_OK.
 * Returns the negotiated features, or 0 when FEATURES_OK did not stick. */
static inline uint64_t vd_negotiate(struct vdrv *d, uint64_t want)
{
	vd_common_wr(d, VIRTIO_PCI_COMMON_STATUS, 0, 1);
	assert_int_equal(vd_status(d), 0);
	vd_common_wr(d, VIRTIO_PCI_COMMON_STATUS, VIRTIO_STATUS_ACKNOWLEDGE, 1);
	vd_common_wr(d, VIRTIO_PCI_COMMON_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER,
		     1);
	uint64_t f = 0;
	for (unsigned i = 0; i < 2; i++) {
		vd_common_wr(d, VIRTIO_PCI_COMMON_DFSELECT, i, 4);
		f |= vd_common_rd(d, VIRTIO_PCI_COMMON_DF, 4) << (32 * i);
	}
	f &= want;
	for (unsigned i = 0; i < 2; i++) {
		vd_common_wr(d, VIRTIO_PCI_COMMON_GFSELECT, i, 4);
		vd_common_wr(d, VIRTIO_PCI_COMMON_GF, (uint32_t)(f >> (32 * i)), 4);
	}
	vd_common_wr(d, VIRTIO_PCI_COMMON_STATUS,
		     VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK,
		     1);
	return (vd_status(d) & VIRTIO_STATUS_FEATURES_OK) ? f : 0;
}

/* Queue `n` of `size` entries with its rings at `base`; MSI-X vector n + 1. */
static inline void vd_setup_queue(struct vdrv *d, unsigned n, uint16_t size, uint64_t base)
{
	vd_common_wr(d, VIRTIO_PCI_COMMON_Q_SELECT, n, 2);
	assert_true(vd_common_rd(d, VIRTIO_PCI_COMMON_Q_SIZE, 2) >= size);
	vd_common_wr(d, VIRTIO_PCI_COMMON_Q_SIZE, size, 2);
	tq_init(&d->q[n], &d->mem, base, size);
	/* 64-bit fields as two 32-bit writes, like Linux's vp_iowrite64_twopart. */
	vd_common_wr(d, VIRTIO_PCI_COMMON_Q_DESCLO, (uint32_t)d->q[n].desc, 4);
	vd_common_wr(d, VIRTIO_PCI_COMMON_Q_DESCHI, d->q[n].desc >> 32, 4);
	vd_common_wr(d, VIRTIO_PCI_COMMON_Q_AVAILLO, (uint32_t)d->q[n].avail, 4);
	vd_common_wr(d, VIRTIO_PCI_COMMON_Q_AVAILHI, d->q[n].avail >> 32, 4);
	vd_common_wr(d, VIRTIO_PCI_COMMON_Q_USEDLO, (uint32_t)d->q[n].used, 4);
	vd_common_wr(d, VIRTIO_PCI_COMMON_Q_USEDHI, d->q[n].used >> 32, 4);
	vd_common_wr(d, VIRTIO_PCI_COMMON_Q_MSIX, n + 1, 2);
	vd_common_wr(d, VIRTIO_PCI_COMMON_Q_ENABLE, 1, 2);
}

static inline void vd_driver_ok(struct vdrv *d)
{
	vd_common_wr(d, VIRTIO_PCI_COMMON_MSIX, 0, 2);
	vd_common_wr(d, VIRTIO_PCI_COMMON_STATUS,
		     VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
			 VIRTIO_STATUS_DRIVER_OK,
		     1);
}

static inline void vd_kick(struct vdrv *d, unsigned n)
{
	vd_common_wr(d, VIRTIO_PCI_COMMON_Q_SELECT, n, 2);
	uint64_t off = vd_common_rd(d, VIRTIO_PCI_COMMON_Q_NOFF, 2);
	vd_wr(d, IOBUS_MMIO, d->notify + off * d->notify_mult, n, 2);
}

/* Polls the used ring until its index reaches `idx` (worker threads finish on their own
 * time). Returns 0, or -1 after 5 s. */
static inline int vd_wait_used(struct vdrv *d, unsigned n, uint16_t idx)
{
	for (int i = 0; i < 5000; i++) {
		if (tq_used_idx(&d->q[n]) == idx)
			return 0;
		usleep(1000);
	}
	return -1;
}

#endif
