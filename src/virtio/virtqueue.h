/* Split virtqueues (virtio 1.x, 2.7): the device side. A driver lays out a descriptor
 * table, an available ring and a used ring in guest memory; the device pops descriptor
 * chains from the available ring and returns them through the used ring.
 *
 * Everything the guest wrote is hostile: ring indexes, descriptor indexes, lengths and
 * addresses are checked, chains are walked with a step limit, and a chain is seen only as
 * host pointers that gmem_ptr() returned for the exact ranges the guest described. A chain
 * that breaks a rule makes virtq_pop() fail; the device then marks itself NEEDS_RESET
 * (virtio_dev_fail). */
#ifndef KITE_VIRTIO_VIRTQUEUE_H
#define KITE_VIRTIO_VIRTQUEUE_H

#include "kvm/memory.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VIRTQ_MAX_SIZE 1024 /* largest queue size a device offers (QEMU's limit too) */
#define VIRTQ_MAX_SEGS 1024 /* most buffers in one chain (direct + indirect) */

/* Descriptor flags. */
#define VIRTQ_DESC_F_NEXT     1
#define VIRTQ_DESC_F_WRITE    2
#define VIRTQ_DESC_F_INDIRECT 4

/* Ring flags. */
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1
#define VIRTQ_USED_F_NO_NOTIFY	   1

/* Feature bits shared by every device (virtio 1.x, 6). */
#define VIRTIO_F_INDIRECT_DESC 28
#define VIRTIO_F_EVENT_IDX     29
#define VIRTIO_F_VERSION_1     32

struct virtq_iov {
	uint8_t *base; /* host address inside guest RAM */
	uint32_t len;
};

/* One popped chain: `out` buffers are device-readable (driver to device), `in` buffers are
 * device-writable. A device writes only into `in`. */
struct virtq_elem {
	uint16_t head;
	unsigned n_out, n_in;
	uint64_t out_len, in_len; /* byte totals */
	struct virtq_iov out[VIRTQ_MAX_SEGS];
	struct virtq_iov in[VIRTQ_MAX_SEGS];
};

struct virtq {
	const struct guest_mem *mem;
	uint16_t size;	   /* entries; a power of two once enabled */
	uint16_t max_size; /* what the device offers */
	bool enabled;
	bool event_idx; /* VIRTIO_F_EVENT_IDX negotiated */
	bool indirect;	/* VIRTIO_F_INDIRECT_DESC negotiated */
	uint64_t desc_gpa, avail_gpa, used_gpa;
	uint16_t msix_vector;

	/* Host views of the rings, set by virtq_enable(). */
	uint8_t *desc, *avail, *used;
	uint16_t last_avail; /* next available entry to consume */
	uint16_t used_idx;   /* our copy of used->idx */
	uint16_t signalled_used;
	bool signalled_valid;
	char error[96]; /* why the last virtq_enable() or virtq_pop() failed */
};

/* Resets the queue to its power-on state (size = max_size, disabled, addresses 0). */
void virtq_reset(struct virtq *q, const struct guest_mem *mem, uint16_t max_size);

/* Checks the size and the three ring addresses (RAM, alignment) and maps them. Returns 0, or
 * -1 with the reason in q->error (nothing printed): the queue stays disabled. */
int virtq_enable(struct virtq *q);

/* As virtq_enable, for a queue loaded from saved state: the ring indices are the saved ones,
 * not 0. Returns 0 or -1 with the reason in q->error. */
int virtq_restore(struct virtq *q, uint16_t last_avail, uint16_t used_idx, uint16_t signalled_used,
		  bool signalled_valid);

/* Pops the next available chain into *e. Returns 1 when a chain was popped, 0 when the ring
 * is empty, -1 (reason in q->error, nothing printed) when the guest broke the rules: the
 * queue is then unusable until a reset. */
int virtq_pop(struct virtq *q, struct virtq_elem *e);

/* Gives back the last `n` popped chains, not yet pushed: the next pops return them again
 * (a device that needs several chains for one item and ran out). */
void virtq_unpop(struct virtq *q, uint16_t n);

/* Returns a chain to the driver with `len` bytes written into its `in` buffers. */
void virtq_push(struct virtq *q, uint16_t head, uint32_t len);

/* True when the driver wants an interrupt for what was pushed since the last call that
 * returned true (EVENT_IDX or the NO_INTERRUPT flag). */
bool virtq_should_notify(struct virtq *q);

/* True when the available ring holds chains not yet popped. */
bool virtq_has_avail(struct virtq *q);

/* Copies from the chain's device-readable buffers, starting `off` bytes in. Returns the
 * bytes copied (less than len when the buffers end). */
size_t virtq_elem_read(const struct virtq_elem *e, uint64_t off, void *dst, size_t len);
/* Host address of byte `off` of the chain's device-writable buffers, or NULL past them. */
uint8_t *virtq_elem_ptr(const struct virtq_elem *e, uint64_t off);
/* Copies into the chain's device-writable buffers, starting `off` bytes in. Returns the
 * bytes copied. */
size_t virtq_elem_write(const struct virtq_elem *e, uint64_t off, const void *src, size_t len);

#endif
