/* The modern virtio-pci transport (virtio 1.x, 4.1): vendor 0x1af4, device 0x1040 + id.
 * BAR0 (16 KiB) holds the common configuration (0x0000), ISR (0x1000), device configuration
 * (0x2000) and the notification area (0x3000, 4 bytes per queue); BAR1 holds the MSI-X table
 * (one vector per queue plus one for configuration changes). Knows no device. */
#ifndef KITE_VIRTIO_VIRTIO_PCI_H
#define KITE_VIRTIO_VIRTIO_PCI_H

#include "devices/pci.h"
#include "virtio/virtio.h"

#define VIRTIO_PCI_BAR	       0
#define VIRTIO_PCI_MSIX_BAR    1
#define VIRTIO_PCI_BAR_SIZE    0x4000
#define VIRTIO_PCI_COMMON_OFF  0x0000
#define VIRTIO_PCI_ISR_OFF     0x1000
#define VIRTIO_PCI_DEVICE_OFF  0x2000
#define VIRTIO_PCI_NOTIFY_OFF  0x3000
#define VIRTIO_PCI_NOTIFY_MULT 4

/* Common configuration layout (struct virtio_pci_common_cfg). */
#define VIRTIO_PCI_COMMON_DFSELECT  0x00
#define VIRTIO_PCI_COMMON_DF	    0x04
#define VIRTIO_PCI_COMMON_GFSELECT  0x08
#define VIRTIO_PCI_COMMON_GF	    0x0C
#define VIRTIO_PCI_COMMON_MSIX	    0x10
#define VIRTIO_PCI_COMMON_NUMQ	    0x12
#define VIRTIO_PCI_COMMON_STATUS    0x14
#define VIRTIO_PCI_COMMON_CFGGEN    0x15
#define VIRTIO_PCI_COMMON_Q_SELECT  0x16
#define VIRTIO_PCI_COMMON_Q_SIZE    0x18
#define VIRTIO_PCI_COMMON_Q_MSIX    0x1A
#define VIRTIO_PCI_COMMON_Q_ENABLE  0x1C
#define VIRTIO_PCI_COMMON_Q_NOFF    0x1E
#define VIRTIO_PCI_COMMON_Q_DESCLO  0x20
#define VIRTIO_PCI_COMMON_Q_DESCHI  0x24
#define VIRTIO_PCI_COMMON_Q_AVAILLO 0x28
#define VIRTIO_PCI_COMMON_Q_AVAILHI 0x2C
#define VIRTIO_PCI_COMMON_Q_USEDLO  0x30
#define VIRTIO_PCI_COMMON_Q_USEDHI  0x34
#define VIRTIO_PCI_COMMON_SIZE	    0x38

/* Capability cfg_type values. */
#define VIRTIO_PCI_CAP_COMMON_CFG 1
#define VIRTIO_PCI_CAP_NOTIFY_CFG 2
#define VIRTIO_PCI_CAP_ISR_CFG	  3
#define VIRTIO_PCI_CAP_DEVICE_CFG 4
#define VIRTIO_PCI_CAP_PCI_CFG	  5

struct virtio_pci {
	struct pci_device pci;
	struct virtio_dev *vd;
	pthread_mutex_t isr_lock; /* ISR bits and the INTx level move together */
	uint8_t isr;
	uint32_t dfselect, gfselect;
	uint16_t queue_sel;
	uint8_t pci_cfg_cap; /* config offset of the PCI configuration access capability */
	/* Optional (machine/ioevent.h): told which queues are enabled (bit q) after the driver
	 * enabled one or reset the device. Called with vd->lock held: it must not call into
	 * the device or the bus. */
	void (*queues_changed)(void *opaque, struct virtio_pci *vp, uint32_t enabled);
	void *queues_opaque;
};

/* Creates the PCI function for `vd` and plugs it into `bus` (first free slot). Returns the
 * slot, or -1 with an error printed. */
int virtio_pci_init(struct virtio_pci *vp, struct pci_bus *bus, struct virtio_dev *vd);
void virtio_pci_destroy(struct virtio_pci *vp);

/* Guest-physical address whose writes notify queue `q` (for an ioeventfd that then calls
 * virtio_dev_notify(vp->vd, q)), 0 while the BAR is not decoding. Changes when the guest
 * reprograms BAR0: see pci_bus_ops.bar_moved. Queue q's notify address within BAR0 is
 * VIRTIO_PCI_NOTIFY_OFF + q * VIRTIO_PCI_NOTIFY_MULT. */
uint64_t virtio_pci_notify_addr(struct virtio_pci *vp, unsigned q);
/* Installs (or, with NULL, removes) the queues_changed hook. */
void virtio_pci_set_queue_hook(struct virtio_pci *vp,
			       void (*fn)(void *opaque, struct virtio_pci *vp, uint32_t enabled),
			       void *opaque);
/* State: the function's PCI record, the transport's (section "virtio-pci": ISR, feature
 * and queue selectors), then the device's (virtio_dev_save). Load takes them in that order
 * and tells the queue hook which queues are enabled. Returns 0 or -1 (printed). */
int virtio_pci_save(struct virtio_pci *vp, struct state_buf *out);
int virtio_pci_load(struct virtio_pci *vp, struct state_stream *s);

/* The virtio transport behind a PCI function, or NULL when it is not one of ours. */
struct virtio_pci *virtio_pci_of(struct pci_device *d);

#endif
