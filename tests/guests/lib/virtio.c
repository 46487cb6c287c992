/* Modern virtio-pci driver (virtio 1.x, section 4.1) with split virtqueues; see virtio.h. */
#include "virtio.h"
#include "libguest.h"

#define VIRTIO_VENDOR 0x1af4

/* struct virtio_pci_common_cfg */
#define COMMON_DFSELECT 0x00
#define COMMON_DF	0x04
#define COMMON_GFSELECT 0x08
#define COMMON_GF	0x0c
#define COMMON_MSIX	0x10
#define COMMON_NUMQ	0x12
#define COMMON_STATUS	0x14
#define COMMON_Q_SELECT 0x16
#define COMMON_Q_SIZE	0x18
#define COMMON_Q_MSIX	0x1a
#define COMMON_Q_ENABLE 0x1c
#define COMMON_Q_NOFF	0x1e
#define COMMON_Q_DESC	0x20
#define COMMON_Q_DRIVER 0x28
#define COMMON_Q_DEVICE 0x30

/* virtio_pci_cap cfg_type */
#define CAP_COMMON 1
#define CAP_NOTIFY 2
#define CAP_ISR	   3
#define CAP_DEVICE 4

static bool scanned;

static void mb(void)
{
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

/* Virtio device type of a function: modern IDs are 0x1040 + type; transitional ones
 * (0x1000-0x103f) carry the type in the subsystem ID. */
static int device_type(const struct pci_dev *d)
{
	if (d->vendor != VIRTIO_VENDOR)
		return -1;
	if (d->device >= 0x1040 && d->device <= 0x107f)
		return d->device - 0x1040;
	if (d->device >= 0x1000 && d->device <= 0x103f)
		return d->subsys_id;
	return -1;
}

/* Address of a capability's region, or 0 when it does not fit its BAR. */
static uint64_t cap_region(const struct pci_dev *d, uint8_t cap, uint32_t min_len)
{
	uint8_t bar = pci_read8(d, cap + 4);
	uint32_t off = pci_read32(d, cap + 8), len = pci_read32(d, cap + 12);
	if (bar > 5 || !d->bar[bar] || len < min_len || off > d->bar_size[bar] ||
	    len > d->bar_size[bar] - off)
		return 0;
	return d->bar[bar] + off;
}

bool virtio_find(uint16_t type, int index, struct virtio_dev *vd)
{
	if (!scanned) {
		pci_scan();
		scanned = true;
	}
	memset(vd, 0, sizeof(*vd));
	int skip = index;
	for (int n = 0; n < pci_ndevs; n++) {
		struct pci_dev *d = &pci_devs[n];
		if (device_type(d) != type || skip-- > 0)
			continue;
		vd->pci = d;
		vd->type = type;
		for (uint8_t c = pci_find_cap(d, PCI_CAP_VENDOR, 0); c;
		     c = pci_find_cap(d, PCI_CAP_VENDOR, c)) {
			switch (pci_read8(d, c + 3)) {
			case CAP_COMMON:
				if (!vd->common)
					vd->common = cap_region(d, c, 0x38);
				break;
			case CAP_NOTIFY:
				if (!vd->notify_base) {
					vd->notify_base = cap_region(d, c, 2);
					vd->notify_mult = pci_read32(d, c + 16);
				}
				break;
			case CAP_ISR:
				if (!vd->isr)
					vd->isr = cap_region(d, c, 1);
				break;
			case CAP_DEVICE:
				if (!vd->device_cfg)
					vd->device_cfg = cap_region(d, c, 1);
				break;
			}
		}
		vd->msix_cap = pci_find_cap(d, PCI_CAP_MSIX, 0);
		printf("virtio: type %u at 00:%02x.%x (%04x:%04x) common %#lx notify %#lx x%u "
		       "isr %#lx device %#lx\n",
		       type, d->slot, d->fn, d->vendor, d->device, vd->common, vd->notify_base,
		       vd->notify_mult, vd->isr, vd->device_cfg);
		if (!vd->common || !vd->notify_base || !vd->isr) {
			printf("virtio: the device lacks a usable common/notify/ISR capability\n");
			return false;
		}
		pci_enable(d);
		return true;
	}
	printf("virtio: no device of type %u (index %d) on bus 0\n", type, index);
	return false;
}

uint8_t virtio_status(struct virtio_dev *vd)
{
	return mmio_read8(vd->common + COMMON_STATUS);
}

static void set_status(struct virtio_dev *vd, uint8_t bits)
{
	mmio_write8(vd->common + COMMON_STATUS, virtio_status(vd) | bits);
}

uint64_t virtio_device_features(struct virtio_dev *vd)
{
	mmio_write32(vd->common + COMMON_DFSELECT, 0);
	uint64_t lo = mmio_read32(vd->common + COMMON_DF);
	mmio_write32(vd->common + COMMON_DFSELECT, 1);
	uint64_t hi = mmio_read32(vd->common + COMMON_DF);
	return hi << 32 | lo;
}

bool virtio_negotiate(struct virtio_dev *vd, uint64_t wanted)
{
	mmio_write8(vd->common + COMMON_STATUS, 0); /* reset; reads 0 once done */
	for (int i = 0; i < 1000000 && virtio_status(vd); i++)
		cpu_relax();
	set_status(vd, VIRTIO_STATUS_ACKNOWLEDGE);
	set_status(vd, VIRTIO_STATUS_DRIVER);
	uint64_t offered = virtio_device_features(vd);
	if (!(offered >> VIRTIO_F_VERSION_1 & 1)) {
		printf("virtio: device offers %#lx, without VERSION_1\n", offered);
		set_status(vd, VIRTIO_STATUS_FAILED);
		return false;
	}
	vd->features = offered & (wanted | 1ull << VIRTIO_F_VERSION_1);
	mmio_write32(vd->common + COMMON_GFSELECT, 0);
	mmio_write32(vd->common + COMMON_GF, (uint32_t)vd->features);
	mmio_write32(vd->common + COMMON_GFSELECT, 1);
	mmio_write32(vd->common + COMMON_GF, (uint32_t)(vd->features >> 32));
	set_status(vd, VIRTIO_STATUS_FEATURES_OK);
	if (!(virtio_status(vd) & VIRTIO_STATUS_FEATURES_OK)) {
		printf("virtio: device refused features %#lx\n", vd->features);
		set_status(vd, VIRTIO_STATUS_FAILED);
		return false;
	}
	printf("virtio: offered %#lx, negotiated %#lx\n", offered, vd->features);
	return true;
}

static void write64(uint64_t addr, uint64_t v)
{
	mmio_write32(addr, (uint32_t)v);
	mmio_write32(addr + 4, (uint32_t)(v >> 32));
}

bool virtio_queue_setup(struct virtio_dev *vd, uint16_t q, uint16_t max_size, uint16_t msix)
{
	if (q >= VIRTIO_MAX_QUEUES || q >= mmio_read16(vd->common + COMMON_NUMQ))
		return false;
	mmio_write16(vd->common + COMMON_Q_SELECT, q);
	uint16_t size = mmio_read16(vd->common + COMMON_Q_SIZE);
	if (!size)
		return false;
	if (max_size > VIRTQ_MAX_SIZE)
		max_size = VIRTQ_MAX_SIZE;
	while (size > max_size)
		size >>= 1; /* sizes are powers of two: stay one */
	struct virtq *vq = &vd->vq[q];
	memset(vq, 0, sizeof(*vq));
	void *desc = page_alloc(), *avail = page_alloc(), *used = page_alloc();
	if (!desc || !avail || !used)
		return false;
	memset(desc, 0, PAGE_SIZE);
	memset(avail, 0, PAGE_SIZE);
	memset(used, 0, PAGE_SIZE);
	vq->index = q;
	vq->size = size;
	vq->desc = desc;
	vq->avail = avail;
	vq->used = used;
	for (uint16_t i = 0; i < size; i++)
		vq->desc[i].next = (uint16_t)(i + 1);
	vq->num_free = size;
	mmio_write16(vd->common + COMMON_Q_SIZE, size);
	write64(vd->common + COMMON_Q_DESC, (uint64_t)desc);
	write64(vd->common + COMMON_Q_DRIVER, (uint64_t)avail);
	write64(vd->common + COMMON_Q_DEVICE, (uint64_t)used);
	mmio_write16(vd->common + COMMON_Q_MSIX, msix);
	uint16_t noff = mmio_read16(vd->common + COMMON_Q_NOFF);
	vq->notify_addr = vd->notify_base + (uint64_t)noff * vd->notify_mult;
	vq->event_idx = virtio_has(vd, VIRTIO_F_EVENT_IDX);
	mmio_write16(vd->common + COMMON_Q_ENABLE, 1);
	return mmio_read16(vd->common + COMMON_Q_ENABLE) == 1;
}

uint16_t virtio_queue_msix(struct virtio_dev *vd, uint16_t q)
{
	mmio_write16(vd->common + COMMON_Q_SELECT, q);
	return mmio_read16(vd->common + COMMON_Q_MSIX);
}

void virtio_driver_ok(struct virtio_dev *vd)
{
	set_status(vd, VIRTIO_STATUS_DRIVER_OK);
}

uint8_t virtio_cfg8(struct virtio_dev *vd, unsigned off)
{
	return mmio_read8(vd->device_cfg + off);
}

uint16_t virtio_cfg16(struct virtio_dev *vd, unsigned off)
{
	return mmio_read16(vd->device_cfg + off);
}

uint32_t virtio_cfg32(struct virtio_dev *vd, unsigned off)
{
	return mmio_read32(vd->device_cfg + off);
}

uint64_t virtio_cfg64(struct virtio_dev *vd, unsigned off)
{
	/* Two 32-bit reads, retried until the configuration generation holds still. */
	for (;;) {
		uint8_t gen = mmio_read8(vd->common + 0x15);
		uint64_t v = mmio_read32(vd->device_cfg + off) |
			     (uint64_t)mmio_read32(vd->device_cfg + off + 4) << 32;
		if (mmio_read8(vd->common + 0x15) == gen)
			return v;
	}
}

int virtq_add(struct virtq *vq, const struct vbuf *bufs, int n)
{
	if (n <= 0 || n > vq->num_free)
		return -1;
	uint16_t head = vq->free_head, i = head, last = head;
	for (int k = 0; k < n; k++) {
		struct virtq_desc *d = &vq->desc[i];
		d->addr = (uint64_t)bufs[k].addr;
		d->len = bufs[k].len;
		d->flags = (uint16_t)((bufs[k].device_writes ? VIRTQ_DESC_F_WRITE : 0) |
				      (k + 1 < n ? VIRTQ_DESC_F_NEXT : 0));
		last = i;
		i = d->next;
	}
	vq->free_head = vq->desc[last].next;
	vq->num_free = (uint16_t)(vq->num_free - n);
	vq->avail->ring[vq->avail->idx % vq->size] = head;
	mb(); /* the ring entry before the index the device reads */
	vq->avail->idx++;
	return head;
}

void virtq_kick(struct virtio_dev *vd, struct virtq *vq)
{
	mb(); /* the index before the notification */
	mmio_write16(vq->notify_addr, vq->index);
}

bool virtq_kick_needed(struct virtq *vq, uint16_t old)
{
	mb(); /* our index before the device's wishes */
	if (!vq->event_idx)
		return !(vq->used->flags & VIRTQ_USED_F_NO_NOTIFY);
	/* avail_event: the 16 bits after the used ring's last element */
	const volatile uint8_t *ev = (const volatile uint8_t *)vq->used + 4 + 8u * vq->size;
	uint16_t event = (uint16_t)(ev[0] | ev[1] << 8);
	uint16_t new = vq->avail->idx;
	return (uint16_t)(new - event - 1) < (uint16_t)(new - old); /* vring_need_event */
}

bool virtq_get_used(struct virtq *vq, uint32_t *id, uint32_t *len)
{
	if (vq->used->idx == vq->last_used)
		return false;
	mb(); /* the index before the element it covers */
	const volatile struct virtq_used_elem *e = &vq->used->ring[vq->last_used % vq->size];
	uint32_t head = e->id;
	*id = head;
	*len = e->len;
	vq->last_used++;
	if (head >= vq->size)
		return true; /* a broken device: nothing sane to free */
	/* Return the chain to the free list. */
	uint16_t i = (uint16_t)head;
	for (int k = 0; k < vq->size; k++) {
		vq->num_free++;
		if (!(vq->desc[i].flags & VIRTQ_DESC_F_NEXT))
			break;
		i = vq->desc[i].next;
	}
	vq->desc[i].next = vq->free_head;
	vq->free_head = (uint16_t)head;
	return true;
}

int64_t virtq_transfer(struct virtio_dev *vd, struct virtq *vq, const struct vbuf *bufs, int n,
		       uint64_t timeout_ms)
{
	int head = virtq_add(vq, bufs, n);
	if (head < 0)
		return -1;
	virtq_kick(vd, vq);
	uint64_t end = deadline_ms(timeout_ms);
	for (;;) {
		uint32_t id, len;
		while (virtq_get_used(vq, &id, &len)) {
			if (id == (uint32_t)head)
				return len;
		}
		if (deadline_passed(end))
			return -1;
		cpu_relax();
	}
}

bool virtio_msix_setup(struct virtio_dev *vd, unsigned entry, uint32_t apic_id, uint8_t vector)
{
	const struct pci_dev *d = vd->pci;
	if (!vd->msix_cap)
		return false;
	uint16_t ctrl = pci_read16(d, vd->msix_cap + 2);
	vd->msix_count = (uint16_t)((ctrl & 0x7ff) + 1);
	uint32_t table = pci_read32(d, vd->msix_cap + 4);
	uint8_t bir = table & 7;
	uint64_t off = table & ~7u;
	if (entry >= vd->msix_count || bir > 5 || !d->bar[bir] ||
	    off + 16ull * vd->msix_count > d->bar_size[bir])
		return false;
	vd->msix_table = d->bar[bir] + off;
	uint64_t e = vd->msix_table + 16ull * entry;
	mmio_write32(e + 0, 0xfee00000u | apic_id << 12); /* physical destination */
	mmio_write32(e + 4, 0);
	mmio_write32(e + 8, vector); /* fixed delivery, edge */
	mmio_write32(e + 12, 0);     /* unmasked */
	/* MSI-X enable (bit 15), function mask (bit 14) off. */
	pci_write16(d, vd->msix_cap + 2, (uint16_t)((ctrl | 0x8000) & ~0x4000));
	return true;
}
