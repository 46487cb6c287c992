/* See ioevent.h: virtio notifications through KVM ioeventfds, one epoll thread. */
#include "machine/ioevent.h"
#include "util/err.h"

#include <errno.h>
#include <linux/kvm.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

static void warn_once(const char *what, int err)
{
	static bool warned; /* the host's reason, not the guest's: once per process */
	if (!__atomic_exchange_n(&warned, true, __ATOMIC_RELAXED))
		kite_warn("ioeventfd: %s: %s; those virtio notifications trap instead", what,
			  strerror(err));
}

static int kvm_ioeventfd(struct ioevent *io, struct ioevent_queue *q, uint64_t addr, bool assign)
{
	struct kvm_ioeventfd req = {
	    .addr = addr,
	    .len = io->len,
	    .fd = q->fd,
	    .flags = assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN,
	};
	return ioctl(io->vm_fd, KVM_IOEVENTFD, &req) < 0 ? -errno : 0;
}

static uint64_t wanted_addr(const struct ioevent_dev *d, unsigned q)
{
	if (!d->bar || !(d->enabled >> q & 1))
		return 0;
	return d->bar + VIRTIO_PCI_NOTIFY_OFF + (uint64_t)q * VIRTIO_PCI_NOTIFY_MULT;
}

/* Brings KVM's registrations in line with every function's BAR0 and enabled queues (lock
 * held). All stale ones go first, so that an address one function gave up is free for
 * another; a registration KVM refuses stays undone (the notify traps) and is retried here
 * at the next change. */
static void sync_locked(struct ioevent *io)
{
	for (int i = 0; i < io->ndevs; i++) {
		struct ioevent_dev *d = &io->devs[i];
		for (unsigned q = 0; q < d->nq; q++) {
			struct ioevent_queue *iq = &d->queues[q];
			if (!iq->assigned || iq->assigned == wanted_addr(d, q))
				continue;
			int rc = kvm_ioeventfd(io, iq, iq->assigned, false);
			if (rc < 0)
				warn_once("deassign", -rc);
			iq->assigned = 0;
		}
	}
	for (int i = 0; i < io->ndevs; i++) {
		struct ioevent_dev *d = &io->devs[i];
		for (unsigned q = 0; q < d->nq; q++) {
			struct ioevent_queue *iq = &d->queues[q];
			uint64_t want = wanted_addr(d, q);
			if (!want || iq->assigned == want)
				continue;
			int rc = kvm_ioeventfd(io, iq, want, true);
			if (rc == 0)
				iq->assigned = want;
			else if (rc != -EEXIST) /* EEXIST: overlapping BARs, the guest's doing */
				warn_once("assign", -rc);
		}
	}
}

static struct ioevent_dev *dev_of(struct ioevent *io, const struct virtio_pci *vp)
{
	for (int i = 0; i < io->ndevs; i++)
		if (io->devs[i].vp == vp)
			return &io->devs[i];
	return NULL;
}

/* virtio_pci.queues_changed, with vd->lock held. */
static void queues_changed(void *opaque, struct virtio_pci *vp, uint32_t enabled)
{
	struct ioevent *io = opaque;
	pthread_mutex_lock(&io->lock);
	struct ioevent_dev *d = dev_of(io, vp);
	if (d && d->enabled != enabled) {
		d->enabled = enabled;
		sync_locked(io);
	}
	pthread_mutex_unlock(&io->lock);
}

void ioevent_bar_moved(struct ioevent *io, struct pci_device *pd, int bar, uint64_t new_addr)
{
	struct virtio_pci *vp = virtio_pci_of(pd);
	if (!vp || bar != VIRTIO_PCI_BAR)
		return;
	pthread_mutex_lock(&io->lock);
	struct ioevent_dev *d = dev_of(io, vp);
	if (d && d->bar != new_addr) {
		d->bar = new_addr;
		sync_locked(io);
	}
	pthread_mutex_unlock(&io->lock);
}

static void *io_main(void *arg)
{
	struct ioevent *io = arg;
	for (;;) {
		struct epoll_event ev[16];
		int n = epoll_wait(io->epfd, ev, 16, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			kite_error_errno(errno, "io event thread: epoll_wait");
			return NULL;
		}
		for (int i = 0; i < n; i++) {
			struct ioevent_queue *q = ev[i].data.ptr;
			if (!q)
				return NULL; /* ioevent_stop */
			uint64_t count;
			if (read(q->fd, &count, sizeof(count)) != (ssize_t)sizeof(count))
				continue; /* EAGAIN: already drained */
			__atomic_fetch_add(&io->notifies, count, __ATOMIC_RELAXED);
			virtio_dev_notify(q->vp->vd, q->q);
		}
	}
}

static int add_fd(struct ioevent *io, int fd, void *ptr)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = ptr};
	if (epoll_ctl(io->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return kite_error_errno(errno, "io event thread: epoll_ctl");
	return 0;
}

static int add_dev(struct ioevent *io, struct virtio_pci *vp)
{
	struct ioevent_dev *d = &io->devs[io->ndevs++];
	d->vp = vp;
	d->nq = vp->vd->nvqs;
	/* The guest has not run: nothing else holds the bus lock. */
	d->bar = pci_bar_addr(&vp->pci, VIRTIO_PCI_BAR);
	for (unsigned q = 0; q < d->nq; q++) {
		struct ioevent_queue *iq = &d->queues[q];
		iq->vp = vp;
		iq->q = q;
		/* A device that waits on its own eventfd gets KVM's signal first hand. */
		const struct virtio_device_ops *ops = vp->vd->ops;
		int own = ops->queue_eventfd ? ops->queue_eventfd(vp->vd->dev, q) : -1;
		if (own >= 0) {
			iq->fd = own;
			iq->device_owned = true;
			continue;
		}
		iq->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (iq->fd < 0)
			return kite_error_errno(errno, "eventfd");
		if (add_fd(io, iq->fd, iq) < 0)
			return -1;
	}
	return 0;
}

int ioevent_start(struct ioevent *io, const struct kvm_host *kvm, int vm_fd,
		  struct virtio_devices *v)
{
	memset(io, 0, sizeof(*io));
	io->vm_fd = vm_fd;
	io->epfd = io->stopfd = -1;
	for (int i = 0; i < IOEVENT_MAX_DEVS; i++)
		for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++)
			io->devs[i].queues[q].fd = -1;
	int err = pthread_mutex_init(&io->lock, NULL);
	if (err)
		return kite_error_errno(err, "io event thread: mutex");
	if (v->npci == 0 || ioctl(kvm->fd, KVM_CHECK_EXTENSION, KVM_CAP_IOEVENTFD) <= 0)
		return 0;
	io->len = ioctl(kvm->fd, KVM_CHECK_EXTENSION, KVM_CAP_IOEVENTFD_ANY_LENGTH) > 0 ? 0 : 2;
	io->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (io->epfd < 0) {
		kite_error_errno(errno, "epoll_create1");
		goto fail;
	}
	io->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (io->stopfd < 0) {
		kite_error_errno(errno, "eventfd");
		goto fail;
	}
	if (add_fd(io, io->stopfd, NULL) < 0)
		goto fail;
	for (int i = 0; i < v->npci && i < IOEVENT_MAX_DEVS; i++)
		if (add_dev(io, v->pci[i]) < 0)
			goto fail;
	err = pthread_create(&io->thread, NULL, io_main, io);
	if (err) {
		kite_error_errno(err, "cannot start the io event thread");
		goto fail;
	}
	io->started = true;
	/* Hooked last: from here on the vCPUs' queue changes reach us. */
	for (int i = 0; i < io->ndevs; i++)
		virtio_pci_set_queue_hook(io->devs[i].vp, queues_changed, io);
	return 1;
fail:
	ioevent_stop(io);
	return -1;
}

void ioevent_stop(struct ioevent *io)
{
	for (int i = 0; i < io->ndevs; i++)
		virtio_pci_set_queue_hook(io->devs[i].vp, NULL, NULL);
	if (io->started) {
		uint64_t one = 1;
		if (write(io->stopfd, &one, sizeof(one)) != (ssize_t)sizeof(one))
			kite_warn("io event thread: cannot stop it: %s", strerror(errno));
		else
			pthread_join(io->thread, NULL);
		io->started = false;
	}
	pthread_mutex_lock(&io->lock);
	for (int i = 0; i < io->ndevs; i++) {
		io->devs[i].enabled = 0;
		io->devs[i].bar = 0;
	}
	sync_locked(io); /* everything deassigned */
	pthread_mutex_unlock(&io->lock);
	for (int i = 0; i < IOEVENT_MAX_DEVS; i++)
		for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++)
			if (io->devs[i].queues[q].fd >= 0 && !io->devs[i].queues[q].device_owned)
				close(io->devs[i].queues[q].fd);
	if (io->stopfd >= 0)
		close(io->stopfd);
	if (io->epfd >= 0)
		close(io->epfd);
	pthread_mutex_destroy(&io->lock);
	memset(io, 0, sizeof(*io));
	io->epfd = io->stopfd = -1;
}
