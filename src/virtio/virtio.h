/* A virtio device as the transports see it, and the few things a device asks of its
 * transport. A device fills a `struct virtio_device_ops` (its own file: virtio_blk.c, ...)
 * and embeds a `struct virtio_dev`; a transport (virtio_pci.c) drives the virtio_dev and
 * installs the interrupt hook. Neither knows the other.
 *
 * Threads: the transport's MMIO handlers run on vCPU threads and take vd->lock; queue
 * notifications arrive on the VMM's io event thread (ioeventfds, machine/ioevent.h), or straight
 * on the device's own thread for a queue whose eventfd it owns (ops->queue_eventfd), or, when
 * a notify still traps, on the vCPU thread that wrote it. A device processes its queues on
 * whatever thread it likes (that one, a worker, an event loop) under its own lock, checking
 * virtio_dev_live() before each chain: the transport clears the status before calling
 * ops->reset(), and reset() returns only once the device no longer touches its queues. */
#ifndef KITE_VIRTIO_VIRTIO_H
#define KITE_VIRTIO_VIRTIO_H

#include "util/state.h"
#include "virtio/virtqueue.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

/* Device ids (virtio 1.x, 5). */
#define VIRTIO_ID_NET	  1
#define VIRTIO_ID_BLOCK	  2
#define VIRTIO_ID_CONSOLE 3
#define VIRTIO_ID_RNG	  4
#define VIRTIO_ID_BALLOON 5

/* Device status bits (2.1). */
#define VIRTIO_STATUS_ACKNOWLEDGE 1
#define VIRTIO_STATUS_DRIVER	  2
#define VIRTIO_STATUS_DRIVER_OK	  4
#define VIRTIO_STATUS_FEATURES_OK 8
#define VIRTIO_STATUS_NEEDS_RESET 64
#define VIRTIO_STATUS_FAILED	  128

#define VIRTIO_MAX_QUEUES 8
#define VIRTIO_NO_VECTOR  0xffff

struct virtio_dev;

struct virtio_device_ops {
	const char *name;
	uint16_t device_id; /* VIRTIO_ID_* */
	uint32_t pci_class; /* class code the PCI transport shows */
	uint32_t config_size;
	unsigned nqueues;
	uint16_t queue_max_size;
	/* Device configuration space; `off` + `len` <= config_size. */
	void (*config_read)(void *dev, uint32_t off, uint8_t *data, unsigned len);
	void (*config_write)(void *dev, uint32_t off, const uint8_t *data, unsigned len);
	/* The driver made buffers available on queue `q` (DRIVER_OK set, queue enabled). */
	void (*queue_notify)(void *dev, unsigned q);
	/* DRIVER_OK was set: features are final, enabled queues are live. Optional. */
	void (*start)(void *dev);
	/* Device reset: stop touching the queues, drop state. Returns when quiescent. */
	void (*reset)(void *dev);
	/* Optional: an eventfd the device itself waits on for kicks of queue `q`, or -1. It
	 * must stay open for the device's life: the VMM then has KVM signal it directly (no
	 * hop through the io event thread), and the device treats each wakeup as a notify
	 * that still has to pass virtio_dev_kick_ok(). */
	int (*queue_eventfd)(void *dev, unsigned q);
	/* Optional: the device's own state, a record after the transport's (util/state.h).
	 * Saved and loaded while the device is quiesced; load runs before the vCPUs do. */
	const struct state_ops *state;
	/* Optional: stop (true) touching guest memory and the queues, every request in
	 * flight completed, until called again with false. Saving a machine does this after
	 * the vCPUs are parked and before it reads any state or memory. */
	void (*quiesce)(void *dev, bool stop);
};

struct virtio_dev {
	const struct virtio_device_ops *ops;
	void *dev; /* the device's own state, passed to the ops */
	const struct guest_mem *mem;
	pthread_mutex_t lock; /* transport state: status, features, queue setup */
	uint64_t host_features, driver_features;
	uint8_t status; /* atomic loads and stores: read by device threads */
	uint8_t config_generation;
	uint16_t config_vector;
	unsigned nvqs;
	struct virtq vqs[VIRTIO_MAX_QUEUES];
	uint32_t pending_notify; /* queues kicked before DRIVER_OK, replayed at DRIVER_OK */
	unsigned failures;	 /* protocol errors seen (atomic), for the log limit */
	uint64_t eventfd_kicks;	 /* kicks read from its own queue eventfd (atomic), --stats */

	/* Installed by the transport: raise the interrupt of `vector` (queue or config),
	 * `isr` is 1 for a used-buffer interrupt, 2 for a config change. */
	void (*interrupt)(struct virtio_dev *vd, uint16_t vector, uint8_t isr);
	void *transport;
};

/* Called by a device's constructor. VERSION_1, INDIRECT_DESC and EVENT_IDX are added to
 * `features`. Returns 0 or -1 with an error printed. */
int virtio_dev_init(struct virtio_dev *vd, const struct virtio_device_ops *ops, void *dev,
		    const struct guest_mem *mem, uint64_t features);
void virtio_dev_destroy(struct virtio_dev *vd);

/* ---- for devices ---- */
/* True when DRIVER_OK is set and NEEDS_RESET is not: queues may be processed. */
bool virtio_dev_live(struct virtio_dev *vd);
bool virtio_dev_has_feature(struct virtio_dev *vd, unsigned bit);
/* After pushing used buffers on queue `q`: interrupts the driver if it asked for it. */
void virtio_dev_queue_done(struct virtio_dev *vd, unsigned q);
/* Device configuration changed (e.g. balloon target): new generation, config interrupt. */
void virtio_dev_config_changed(struct virtio_dev *vd);
/* The guest broke the protocol (`why`, e.g. a virtq's error): set NEEDS_RESET and tell the
 * driver. The first few are logged as warnings, later ones are not (a hostile guest could
 * otherwise flood the host's log). */
void virtio_dev_fail(struct virtio_dev *vd, const char *why);

/* A kick of queue `q` that reached the device directly (ops->queue_eventfd): true when it
 * may be processed now (queue enabled, DRIVER_OK); one that came before DRIVER_OK is
 * remembered and replayed through ops->queue_notify() then, as virtio_dev_notify() does. */
bool virtio_dev_kick_ok(struct virtio_dev *vd, unsigned q);

/* ---- state (util/state.h) ---- */
/* The transport-independent state: negotiated features, status, configuration vector and
 * generation, each queue's setup and ring indices (section "virtio"), then the device's own
 * record (ops->state). Loading checks the device type and its offered features, and maps
 * every enabled queue again (a ring outside guest RAM is refused). */
int virtio_dev_save(struct virtio_dev *vd, struct state_buf *out);
int virtio_dev_load(struct virtio_dev *vd, struct state_stream *s);
void virtio_dev_quiesce(struct virtio_dev *vd, bool stop);
/* After a load, once the machine runs: every enabled queue of a live device is notified once,
 * for buffers the driver made available (and kicked) before the save. */
void virtio_dev_kick_all(struct virtio_dev *vd);

/* ---- for transports ---- */
uint8_t virtio_dev_get_status(struct virtio_dev *vd);
/* Applies a driver status write (feature check at FEATURES_OK, start at DRIVER_OK, reset
 * at 0). Called without vd->lock held. */
void virtio_dev_set_status(struct virtio_dev *vd, uint8_t status);
/* Enables the queue (the driver wrote queue_enable = 1). Failure sets NEEDS_RESET. Called
 * with vd->lock held. */
void virtio_dev_enable_queue_locked(struct virtio_dev *vd, unsigned q);
/* The driver kicked queue `q`. */
void virtio_dev_notify(struct virtio_dev *vd, unsigned q);

#endif
