/* A minimal modern (virtio 1.x) virtio-pci driver for guest programs: finds a device by
 * type, negotiates features (VERSION_1 required), sets up split virtqueues in guest RAM and
 * polls their used rings. All of it works in ring 3 (run_user), where the data-path loops
 * belong. */
#pragma once
#include "pci.h"
#include <stdbool.h>
#include <stdint.h>

#define VIRTIO_ID_NET	  1
#define VIRTIO_ID_BLOCK	  2
#define VIRTIO_ID_ENTROPY 4

#define VIRTIO_F_EVENT_IDX 29
#define VIRTIO_F_VERSION_1 32

#define VIRTIO_STATUS_ACKNOWLEDGE 1
#define VIRTIO_STATUS_DRIVER	  2
#define VIRTIO_STATUS_DRIVER_OK	  4
#define VIRTIO_STATUS_FEATURES_OK 8
#define VIRTIO_STATUS_NEEDS_RESET 64
#define VIRTIO_STATUS_FAILED	  128

#define VIRTIO_MSI_NO_VECTOR 0xffff

#define VIRTQ_DESC_F_NEXT  1
#define VIRTQ_DESC_F_WRITE 2

#define VIRTQ_AVAIL_F_NO_INTERRUPT 1
#define VIRTQ_USED_F_NO_NOTIFY	   1

#define VIRTIO_MAX_QUEUES 4
#define VIRTQ_MAX_SIZE	  256

struct virtq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct virtq_avail {
	uint16_t flags;
	uint16_t idx;
	uint16_t ring[];
};

struct virtq_used_elem {
	uint32_t id;
	uint32_t len;
};

struct virtq_used {
	uint16_t flags;
	uint16_t idx;
	struct virtq_used_elem ring[];
};

struct virtq {
	uint16_t index, size;
	struct virtq_desc *desc;
	struct virtq_avail *avail;
	volatile struct virtq_used *used;
	uint16_t free_head, num_free;
	uint16_t last_used;
	uint64_t notify_addr;
	bool event_idx; /* VIRTIO_F_EVENT_IDX negotiated when the queue was set up */
};

struct virtio_dev {
	struct pci_dev *pci;
	uint16_t type;
	uint64_t common, isr, device_cfg, notify_base;
	uint32_t notify_mult;
	uint64_t features; /* negotiated */
	struct virtq vq[VIRTIO_MAX_QUEUES];
	uint8_t msix_cap;
	uint64_t msix_table;
	uint16_t msix_count;
};

/* One buffer of a request: `len` bytes at `addr` (identity-mapped, so physical). */
struct vbuf {
	void *addr;
	uint32_t len;
	bool device_writes;
};

/* The `index`th device of virtio `type` on bus 0 (scanned on first use), its BARs decoding
 * and its virtio capabilities located. False, with a message, when absent or malformed. */
bool virtio_find(uint16_t type, int index, struct virtio_dev *vd);
/* Reset, ACKNOWLEDGE, DRIVER, features = offered & (`wanted` | VERSION_1), FEATURES_OK
 * (checked). False when the device lacks VERSION_1 or refuses the features. */
bool virtio_negotiate(struct virtio_dev *vd, uint64_t wanted);
uint64_t virtio_device_features(struct virtio_dev *vd);
static inline bool virtio_has(const struct virtio_dev *vd, int bit)
{
	return (vd->features >> bit) & 1;
}
/* Sets up queue `q` with at most `max_size` entries (its rings in fresh pages), MSI-X vector
 * `msix` (VIRTIO_MSI_NO_VECTOR for none), and enables it. False when absent or refused. */
bool virtio_queue_setup(struct virtio_dev *vd, uint16_t q, uint16_t max_size, uint16_t msix);
void virtio_driver_ok(struct virtio_dev *vd);
uint8_t virtio_status(struct virtio_dev *vd);
/* Device-specific configuration space. */
uint8_t virtio_cfg8(struct virtio_dev *vd, unsigned off);
uint16_t virtio_cfg16(struct virtio_dev *vd, unsigned off);
uint32_t virtio_cfg32(struct virtio_dev *vd, unsigned off);
uint64_t virtio_cfg64(struct virtio_dev *vd, unsigned off);

/* Puts a descriptor chain on the available ring (not yet notified); returns its head, or -1
 * when the queue has too few free descriptors. */
int virtq_add(struct virtq *vq, const struct vbuf *bufs, int n);
void virtq_kick(struct virtio_dev *vd, struct virtq *vq);
/* Whether the device wants a notification for what was added since the available index was
 * `old`: its avail_event with VIRTIO_F_EVENT_IDX, else its VIRTQ_USED_F_NO_NOTIFY flag (as
 * Linux's virtqueue_kick_prepare). virtq_kick() itself always notifies. */
bool virtq_kick_needed(struct virtq *vq, uint16_t old);
/* Takes the next used element, if any: its head id and written length; frees the chain. */
bool virtq_get_used(struct virtq *vq, uint32_t *id, uint32_t *len);
/* Adds, kicks and polls until the device returns the chain (or `timeout_ms` passes).
 * Returns the written length, or -1 on timeout. */
int64_t virtq_transfer(struct virtio_dev *vd, struct virtq *vq, const struct vbuf *bufs, int n,
		       uint64_t timeout_ms);

/* MSI-X (MMIO and config space: ring 3 is fine). Points table entry `entry` at LAPIC
 * `apic_id` (physical destination), vector `vector`, fixed delivery, unmasked, and enables
 * MSI-X on the function. */
bool virtio_msix_setup(struct virtio_dev *vd, unsigned entry, uint32_t apic_id, uint8_t vector);
/* Reads back the vector the device accepted for queue q (0xffff: refused). */
uint16_t virtio_queue_msix(struct virtio_dev *vd, uint16_t q);
