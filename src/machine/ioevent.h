/* Virtio queue notifications through KVM ioeventfds, and the "io event" thread that serves
 * them.
 *
 * A driver kicks queue q with a 16-bit write at BAR0 + VIRTIO_PCI_NOTIFY_OFF + q * 4. Without
 * help that write is an MMIO exit: the vCPU leaves the guest, kite decodes the access on the
 * vCPU thread and calls virtio_dev_notify(). Here each queue of each virtio-pci function gets
 * an eventfd, and KVM is asked (KVM_IOEVENTFD, MMIO, no datamatch; length 0 = any size where
 * KVM has KVM_CAP_IOEVENTFD_ANY_LENGTH, else 2) to signal that eventfd instead of exiting:
 * the vCPU goes straight back to the guest, and one thread, epoll over all the eventfds,
 * calls the same virtio_dev_notify(). A device with its own thread may instead hand over an
 * eventfd it waits on itself (virtio_device_ops.queue_eventfd, e.g. virtio-blk's worker):
 * KVM then signals that one, it stays out of the epoll set, and a kick wakes the device's
 * thread directly, one thread crossing instead of two. It is the device's, open for the
 * device's life (longer than ours: ioevent_stop() comes first), so registering, moving and
 * dropping it with KVM never races a close. Such kicks are not in `notifies`: the device
 * counts them (virtio_dev.eventfd_kicks).
 *
 * A queue's ioeventfd is registered while the queue is enabled and BAR0 decodes (memory
 * decoding on, an address programmed): set at queue enable, dropped at a device reset, moved
 * when the guest moves BAR0 or toggles decoding (pci_bus_ops.bar_moved). The MMIO path stays:
 * a notify that still traps (before registration, a write KVM does not match, or an address
 * KVM refused, e.g. two BARs the guest made overlap: KVM refuses a second ioeventfd at one
 * address, and the registration is retried at every later change) reaches the device as
 * before. A kick that arrives twice (a stale eventfd count after a reset) is harmless: a
 * notify of a queue not enabled is ignored, and an extra kick just finds no new buffers.
 *
 * Locks: ioevent->lock is taken under the PCI bus lock (bar_moved) and under vd->lock
 * (queue changes) and takes neither; the thread calls into devices holding no lock of ours.
 * ioevent_stop() joins the thread before the devices go. */
#ifndef KITE_MACHINE_IOEVENT_H
#define KITE_MACHINE_IOEVENT_H

#include "virtio/virtio_devices.h"
#include "kvm/kvm.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define IOEVENT_MAX_DEVS (VIRTIO_MAX_DISKS + VIRTIO_MAX_NICS + 3)

struct ioevent_queue {
	struct virtio_pci *vp;
	unsigned q;
	int fd;		   /* eventfd, for the life of the ioevent (or the device's) */
	bool device_owned; /* fd is the device's (ops->queue_eventfd): not polled, not closed */
	uint64_t assigned; /* guest address KVM signals fd for; 0 = not registered */
};

struct ioevent_dev {
	struct virtio_pci *vp;
	uint64_t bar;	  /* BAR0 as last decoded, 0 = not decoding */
	uint32_t enabled; /* queues the driver enabled (bit q) */
	unsigned nq;
	struct ioevent_queue queues[VIRTIO_MAX_QUEUES];
};

struct ioevent {
	int vm_fd;
	uint32_t len; /* KVM_IOEVENTFD length: 0 (any) or 2 */
	pthread_mutex_t lock;
	int epfd, stopfd;
	pthread_t thread;
	bool started;
	int ndevs;
	struct ioevent_dev devs[IOEVENT_MAX_DEVS];
	uint64_t notifies; /* guest kicks that came through an eventfd (atomic), for --stats */
};

/* Prepares an eventfd per queue of every virtio-pci function of `v`, hooks the functions'
 * queue changes and starts the thread. Nothing is registered with KVM until the guest
 * enables a queue. Returns 1 when running, 0 when KVM has no ioeventfds (every notify then
 * traps, as before; ioevent_stop() is still due), -1 with an error printed (nothing left to
 * stop). */
int ioevent_start(struct ioevent *io, const struct kvm_host *kvm, int vm_fd,
		  struct virtio_devices *v);
/* pci_bus_ops.bar_moved: BAR `bar` of `d` now decodes at `new_addr` (0 = not at all). */
void ioevent_bar_moved(struct ioevent *io, struct pci_device *d, int bar, uint64_t new_addr);
/* Stops the thread, unregisters and closes every eventfd, unhooks the functions. Call after
 * the vCPUs stopped and before the devices are destroyed. */
void ioevent_stop(struct ioevent *io);

#endif
