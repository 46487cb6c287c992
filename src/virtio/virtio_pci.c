#include "virtio/virtio_pci.h"
#include "util/err.h"

#include <stddef.h>
#include <string.h>

#define VIRTIO_PCI_VENDOR 0x1af4

static uint64_t get_le(const uint8_t *p, unsigned len)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < len; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}
static void put_le(uint8_t *p, unsigned len, uint64_t v)
{
	for (unsigned i = 0; i < len; i++)
		p[i] = (v >> (8 * i)) & 0xff;
}

/* ---- interrupts ---- */

static void interrupt(struct virtio_dev *vd, uint16_t vector, uint8_t isr)
{
	struct virtio_pci *vp = vd->transport;
	if (pci_msix_enabled(&vp->pci)) {
		if (vector != VIRTIO_NO_VECTOR)
			pci_msix_notify(&vp->pci, vector);
		return;
	}
	pthread_mutex_lock(&vp->isr_lock);
	vp->isr |= isr;
	pci_set_intx(&vp->pci, 1);
	pthread_mutex_unlock(&vp->isr_lock);
}

static uint8_t isr_read_clear(struct virtio_pci *vp)
{
	pthread_mutex_lock(&vp->isr_lock);
	uint8_t v = vp->isr;
	vp->isr = 0;
	pci_set_intx(&vp->pci, 0);
	pthread_mutex_unlock(&vp->isr_lock);
	return v;
}

/* ---- common configuration ---- */

/* The structure as the driver would read it now (vd->lock held). */
static void common_image(struct virtio_pci *vp, uint8_t *img)
{
	struct virtio_dev *vd = vp->vd;
	memset(img, 0, VIRTIO_PCI_COMMON_SIZE);
	put_le(img + VIRTIO_PCI_COMMON_DFSELECT, 4, vp->dfselect);
	uint64_t f = vp->dfselect < 2 ? vd->host_features >> (32 * vp->dfselect) : 0;
	put_le(img + VIRTIO_PCI_COMMON_DF, 4, (uint32_t)f);
	put_le(img + VIRTIO_PCI_COMMON_GFSELECT, 4, vp->gfselect);
	uint64_t g = vp->gfselect < 2 ? vd->driver_features >> (32 * vp->gfselect) : 0;
	put_le(img + VIRTIO_PCI_COMMON_GF, 4, (uint32_t)g);
	put_le(img + VIRTIO_PCI_COMMON_MSIX, 2, vd->config_vector);
	put_le(img + VIRTIO_PCI_COMMON_NUMQ, 2, vd->nvqs);
	img[VIRTIO_PCI_COMMON_STATUS] = virtio_dev_get_status(vd);
	img[VIRTIO_PCI_COMMON_CFGGEN] = vd->config_generation;
	put_le(img + VIRTIO_PCI_COMMON_Q_SELECT, 2, vp->queue_sel);
	if (vp->queue_sel < vd->nvqs) {
		struct virtq *q = &vd->vqs[vp->queue_sel];
		put_le(img + VIRTIO_PCI_COMMON_Q_SIZE, 2, q->size);
		put_le(img + VIRTIO_PCI_COMMON_Q_MSIX, 2, q->msix_vector);
		put_le(img + VIRTIO_PCI_COMMON_Q_ENABLE, 2, q->enabled);
		put_le(img + VIRTIO_PCI_COMMON_Q_NOFF, 2, vp->queue_sel);
		put_le(img + VIRTIO_PCI_COMMON_Q_DESCLO, 8, q->desc_gpa);
		put_le(img + VIRTIO_PCI_COMMON_Q_AVAILLO, 8, q->avail_gpa);
		put_le(img + VIRTIO_PCI_COMMON_Q_USEDLO, 8, q->used_gpa);
	}
}

/* Tells the hook which queues a notify can reach now. Under vd->lock, so that two vCPUs
 * changing queues report in the order the changes happened. */
static void queues_changed(struct virtio_pci *vp)
{
	struct virtio_dev *vd = vp->vd;
	pthread_mutex_lock(&vd->lock);
	if (vp->queues_changed) {
		uint32_t enabled = 0;
		for (unsigned q = 0; q < vd->nvqs; q++)
			if (vd->vqs[q].enabled)
				enabled |= 1u << q;
		vp->queues_changed(vp->queues_opaque, vp, enabled);
	}
	pthread_mutex_unlock(&vd->lock);
}

void virtio_pci_set_queue_hook(struct virtio_pci *vp,
			       void (*fn)(void *opaque, struct virtio_pci *vp, uint32_t enabled),
			       void *opaque)
{
	pthread_mutex_lock(&vp->vd->lock);
	vp->queues_changed = fn;
	vp->queues_opaque = opaque;
	pthread_mutex_unlock(&vp->vd->lock);
}

static uint16_t checked_vector(struct virtio_pci *vp, uint64_t v)
{
	/* A vector the function does not have reads back as NO_VECTOR (4.1.5.1.2). */
	return v < vp->pci.msix_nvec ? (uint16_t)v : VIRTIO_NO_VECTOR;
}

static void common_write(struct virtio_pci *vp, uint64_t off, const uint8_t *data, unsigned len)
{
	struct virtio_dev *vd = vp->vd;
	uint8_t img[VIRTIO_PCI_COMMON_SIZE];
	if (off >= VIRTIO_PCI_COMMON_SIZE || len > VIRTIO_PCI_COMMON_SIZE - off)
		return;
	pthread_mutex_lock(&vd->lock);
	common_image(vp, img);
	memcpy(img + off, data, len);
	bool status_written = false, enable_written = false;
	uint8_t new_status = 0;
	/* Apply every field the write touched, at the offset where it (or, for 64-bit
	 * addresses, either 32-bit half) starts. */
	for (uint64_t o = off; o < off + len; o++) {
		struct virtq *q = vp->queue_sel < vd->nvqs ? &vd->vqs[vp->queue_sel] : NULL;
		bool q_writable = q && !q->enabled;
		switch (o) {
		case VIRTIO_PCI_COMMON_DFSELECT:
			vp->dfselect = get_le(img + o, 4);
			break;
		case VIRTIO_PCI_COMMON_GFSELECT:
			vp->gfselect = get_le(img + o, 4);
			break;
		case VIRTIO_PCI_COMMON_GF:
			/* Features are frozen once FEATURES_OK is set. */
			if (vp->gfselect < 2 &&
			    !(virtio_dev_get_status(vd) & VIRTIO_STATUS_FEATURES_OK)) {
				unsigned sh = 32 * vp->gfselect;
				vd->driver_features =
				    (vd->driver_features & ~(0xffffffffull << sh)) |
				    get_le(img + o, 4) << sh;
			}
			break;
		case VIRTIO_PCI_COMMON_MSIX:
			vd->config_vector = checked_vector(vp, get_le(img + o, 2));
			break;
		case VIRTIO_PCI_COMMON_STATUS:
			status_written = true;
			new_status = img[o];
			break;
		case VIRTIO_PCI_COMMON_Q_SELECT:
			vp->queue_sel = get_le(img + o, 2);
			break;
		case VIRTIO_PCI_COMMON_Q_SIZE:
			if (q_writable)
				q->size = get_le(img + o, 2);
			break;
		case VIRTIO_PCI_COMMON_Q_MSIX:
			if (q)
				q->msix_vector = checked_vector(vp, get_le(img + o, 2));
			break;
		case VIRTIO_PCI_COMMON_Q_ENABLE:
			if (q && get_le(img + o, 2) == 1) {
				virtio_dev_enable_queue_locked(vd, vp->queue_sel);
				enable_written = true;
			}
			break;
		case VIRTIO_PCI_COMMON_Q_DESCLO:
			if (q_writable)
				q->desc_gpa = get_le(img + o, 8);
			break;
		case VIRTIO_PCI_COMMON_Q_DESCHI:
			if (q_writable)
				q->desc_gpa = get_le(img + VIRTIO_PCI_COMMON_Q_DESCLO, 8);
			break;
		case VIRTIO_PCI_COMMON_Q_AVAILLO:
		case VIRTIO_PCI_COMMON_Q_AVAILHI:
			if (q_writable)
				q->avail_gpa = get_le(img + VIRTIO_PCI_COMMON_Q_AVAILLO, 8);
			break;
		case VIRTIO_PCI_COMMON_Q_USEDLO:
		case VIRTIO_PCI_COMMON_Q_USEDHI:
			if (q_writable)
				q->used_gpa = get_le(img + VIRTIO_PCI_COMMON_Q_USEDLO, 8);
			break;
		default:
			break; /* inside a field, or read-only */
		}
	}
	pthread_mutex_unlock(&vd->lock);
	if (status_written)
		virtio_dev_set_status(vd, new_status);
	if (status_written && new_status == 0)
		(void)isr_read_clear(vp); /* a reset also drops a pending INTx */
	if (enable_written || (status_written && new_status == 0))
		queues_changed(vp);
}

static void bar_read(void *opaque, uint64_t off, uint8_t *data, unsigned len)
{
	struct virtio_pci *vp = opaque;
	struct virtio_dev *vd = vp->vd;
	memset(data, 0, len);
	if (off < VIRTIO_PCI_COMMON_SIZE && len <= VIRTIO_PCI_COMMON_SIZE - off) {
		uint8_t img[VIRTIO_PCI_COMMON_SIZE];
		pthread_mutex_lock(&vd->lock);
		common_image(vp, img);
		pthread_mutex_unlock(&vd->lock);
		memcpy(data, img + off, len);
	} else if (off == VIRTIO_PCI_ISR_OFF) {
		data[0] = isr_read_clear(vp);
	} else if (off >= VIRTIO_PCI_DEVICE_OFF && off < VIRTIO_PCI_NOTIFY_OFF) {
		uint64_t o = off - VIRTIO_PCI_DEVICE_OFF;
		if (o < vd->ops->config_size && len <= vd->ops->config_size - o &&
		    vd->ops->config_read)
			vd->ops->config_read(vd->dev, o, data, len);
	}
}

static void bar_write(void *opaque, uint64_t off, const uint8_t *data, unsigned len)
{
	struct virtio_pci *vp = opaque;
	struct virtio_dev *vd = vp->vd;
	if (off < VIRTIO_PCI_COMMON_SIZE) {
		common_write(vp, off, data, len);
	} else if (off >= VIRTIO_PCI_DEVICE_OFF && off < VIRTIO_PCI_NOTIFY_OFF) {
		uint64_t o = off - VIRTIO_PCI_DEVICE_OFF;
		if (o < vd->ops->config_size && len <= vd->ops->config_size - o &&
		    vd->ops->config_write)
			vd->ops->config_write(vd->dev, o, data, len);
	} else if (off >= VIRTIO_PCI_NOTIFY_OFF) {
		virtio_dev_notify(vd, (off - VIRTIO_PCI_NOTIFY_OFF) / VIRTIO_PCI_NOTIFY_MULT);
	}
}

static const struct io_ops virtio_pci_bar_ops = {bar_read, bar_write};

static int add_virtio_cap(struct pci_device *d, uint8_t type, uint32_t off, uint32_t len,
			  bool notify)
{
	/* struct virtio_pci_cap: vndr, next, len, cfg_type, bar, id, pad[2], offset, length;
	 * the notify capability appends notify_off_multiplier. */
	uint8_t cap[20] = {0};
	uint8_t n = notify ? 20 : 16;
	cap[2] = n;
	cap[3] = type;
	cap[4] = VIRTIO_PCI_BAR;
	put_le(cap + 8, 4, off);
	put_le(cap + 12, 4, len);
	if (notify)
		put_le(cap + 16, 4, VIRTIO_PCI_NOTIFY_MULT);
	return pci_add_cap(d, PCI_CAP_ID_VENDOR, cap, n) ? 0 : -1;
}

static void pci_cfg_window(struct pci_device *d, unsigned off, unsigned len, bool is_write,
			   uint32_t *val);

static int add_pci_cfg_cap(struct virtio_pci *vp)
{
	struct pci_device *d = &vp->pci;
	uint8_t cap[20] = {0};
	cap[2] = sizeof(cap);
	cap[3] = VIRTIO_PCI_CAP_PCI_CFG;
	uint8_t off = pci_add_cap(d, PCI_CAP_ID_VENDOR, cap, sizeof(cap));
	if (!off)
		return -1;
	d->wmask[off + 4] = 0xff;	      /* bar */
	memset(d->wmask + off + 8, 0xff, 12); /* offset, length, pci_cfg_data */
	vp->pci_cfg_cap = off;
	d->cfg_window = pci_cfg_window;
	d->window_off = off + 16;
	d->window_len = 4;
	return 0;
}

/* VIRTIO_PCI_CAP_PCI_CFG (4.1.4.9): firmware reaches BAR0 through config space. The
 * driver sets bar, offset and length in the capability, then reads or writes
 * pci_cfg_data; the device performs the BAR access. */
static void pci_cfg_window(struct pci_device *d, unsigned off, unsigned len, bool is_write,
			   uint32_t *val)
{
	struct virtio_pci *vp = virtio_pci_of(d);
	if (!vp)
		return;
	unsigned cap = vp->pci_cfg_cap, data_off = cap + 16;
	if (off < data_off || off + len > data_off + 4)
		return;
	uint32_t bar = pci_cfg_read(d->bus, d->slot, cap + 4, 1);
	uint32_t boff = pci_cfg_read(d->bus, d->slot, cap + 8, 4);
	uint32_t blen = pci_cfg_read(d->bus, d->slot, cap + 12, 4);
	if (bar != VIRTIO_PCI_BAR || (blen != 1 && blen != 2 && blen != 4) || boff % blen ||
	    boff > VIRTIO_PCI_BAR_SIZE - blen)
		return;
	uint8_t buf[4] = {0};
	if (is_write) {
		/* The driver writes pci_cfg_data with the access width it set in length. */
		if (off == data_off && len == blen) {
			put_le(buf, len, *val);
			bar_write(vp, boff, buf, blen);
		}
		return;
	}
	bar_read(vp, boff, buf, blen);
	*val = (uint32_t)get_le(buf + (off - data_off), len);
}

int virtio_pci_init(struct virtio_pci *vp, struct pci_bus *bus, struct virtio_dev *vd)
{
	const struct virtio_device_ops *ops = vd->ops;
	memset(vp, 0, sizeof(*vp));
	if (ops->config_size > VIRTIO_PCI_NOTIFY_OFF - VIRTIO_PCI_DEVICE_OFF ||
	    ops->nqueues * VIRTIO_PCI_NOTIFY_MULT > VIRTIO_PCI_BAR_SIZE - VIRTIO_PCI_NOTIFY_OFF)
		return kite_error("virtio %s: does not fit the transport", ops->name);
	int err = pthread_mutex_init(&vp->isr_lock, NULL);
	if (err)
		return kite_error_errno(err, "virtio %s: mutex", ops->name);
	vp->vd = vd;
	struct pci_device *d = &vp->pci;
	/* Subsystem id 0x1100 and revision 1: a modern-only device (4.1.2.1). */
	pci_device_init(d, ops->name, VIRTIO_PCI_VENDOR, 0x1040 + ops->device_id, ops->pci_class, 1,
			VIRTIO_PCI_VENDOR, 0x1100);
	if (pci_device_set_bar(d, VIRTIO_PCI_BAR, VIRTIO_PCI_BAR_SIZE, &virtio_pci_bar_ops, vp) <
		0 ||
	    add_virtio_cap(d, VIRTIO_PCI_CAP_COMMON_CFG, VIRTIO_PCI_COMMON_OFF,
			   VIRTIO_PCI_COMMON_SIZE, false) < 0 ||
	    add_virtio_cap(d, VIRTIO_PCI_CAP_ISR_CFG, VIRTIO_PCI_ISR_OFF, 1, false) < 0 ||
	    (ops->config_size && add_virtio_cap(d, VIRTIO_PCI_CAP_DEVICE_CFG, VIRTIO_PCI_DEVICE_OFF,
						ops->config_size, false) < 0) ||
	    add_virtio_cap(d, VIRTIO_PCI_CAP_NOTIFY_CFG, VIRTIO_PCI_NOTIFY_OFF,
			   ops->nqueues * VIRTIO_PCI_NOTIFY_MULT, true) < 0 ||
	    add_pci_cfg_cap(vp) < 0 ||
	    pci_msix_init(d, ops->nqueues + 1, VIRTIO_PCI_MSIX_BAR) < 0) {
		pthread_mutex_destroy(&vp->isr_lock);
		return kite_error("virtio %s: cannot build the PCI function", ops->name);
	}
	vd->interrupt = interrupt;
	vd->transport = vp;
	int slot = pci_bus_add(bus, d, -1);
	if (slot < 0)
		pthread_mutex_destroy(&vp->isr_lock);
	return slot;
}

void virtio_pci_destroy(struct virtio_pci *vp)
{
	if (vp->vd)
		pthread_mutex_destroy(&vp->isr_lock);
}

uint64_t virtio_pci_notify_addr(struct virtio_pci *vp, unsigned q)
{
	uint64_t bar = pci_bar_addr(&vp->pci, VIRTIO_PCI_BAR);
	return bar ? bar + VIRTIO_PCI_NOTIFY_OFF + (uint64_t)q * VIRTIO_PCI_NOTIFY_MULT : 0;
}

struct virtio_pci *virtio_pci_of(struct pci_device *d)
{
	if (d->bars[VIRTIO_PCI_BAR].ops != &virtio_pci_bar_ops)
		return NULL;
	return (struct virtio_pci *)((char *)d - offsetof(struct virtio_pci, pci));
}

/* ---- state (util/state.h) ---- */

int virtio_pci_save(struct virtio_pci *vp, struct state_buf *out)
{
	struct state_writer w;
	if (pci_device_save(&vp->pci, out) < 0)
		return -1;
	pthread_mutex_lock(&vp->vd->lock);
	pthread_mutex_lock(&vp->isr_lock);
	state_begin(&w, out, "virtio-pci", 1);
	state_put_u8(&w, "isr", vp->isr);
	state_put_u32(&w, "dfselect", vp->dfselect);
	state_put_u32(&w, "gfselect", vp->gfselect);
	state_put_u16(&w, "queue_select", vp->queue_sel);
	state_end(&w);
	pthread_mutex_unlock(&vp->isr_lock);
	pthread_mutex_unlock(&vp->vd->lock);
	if (state_buf_check(out) < 0)
		return -1;
	return virtio_dev_save(vp->vd, out);
}

int virtio_pci_load(struct virtio_pci *vp, struct state_stream *s)
{
	struct state_reader r;
	uint8_t isr;
	uint32_t dfselect, gfselect;
	uint16_t queue_sel;
	if (state_next(s, &r, "pci-dev", 1, 1) < 0 || pci_device_load(&vp->pci, &r) < 0)
		return -1;
	if (state_next(s, &r, "virtio-pci", 1, 1) < 0 || state_get_u8(&r, "isr", &isr) < 0 ||
	    state_get_u32(&r, "dfselect", &dfselect) < 0 ||
	    state_get_u32(&r, "gfselect", &gfselect) < 0 ||
	    state_get_u16(&r, "queue_select", &queue_sel) < 0)
		return -1;
	if (isr & ~3u)
		return kite_error("device state: %s: ISR 0x%02x", vp->vd->ops->name, isr);
	pthread_mutex_lock(&vp->vd->lock);
	pthread_mutex_lock(&vp->isr_lock);
	vp->isr = isr;
	vp->dfselect = dfselect;
	vp->gfselect = gfselect;
	vp->queue_sel = queue_sel;
	pthread_mutex_unlock(&vp->isr_lock);
	pthread_mutex_unlock(&vp->vd->lock);
	if (virtio_dev_load(vp->vd, s) < 0)
		return -1;
	queues_changed(vp); /* ioeventfds for the queues enabled now */
	return 0;
}
