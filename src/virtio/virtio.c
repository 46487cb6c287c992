#include "virtio/virtio.h"
#include "util/err.h"

#include <string.h>

int virtio_dev_init(struct virtio_dev *vd, const struct virtio_device_ops *ops, void *dev,
		    const struct guest_mem *mem, uint64_t features)
{
	memset(vd, 0, sizeof(*vd));
	if (ops->nqueues > VIRTIO_MAX_QUEUES)
		return kite_error("virtio %s: too many queues", ops->name);
	int err = pthread_mutex_init(&vd->lock, NULL);
	if (err)
		return kite_error_errno(err, "virtio %s: mutex", ops->name);
	vd->ops = ops;
	vd->dev = dev;
	vd->mem = mem;
	vd->host_features = features | 1ull << VIRTIO_F_VERSION_1 | 1ull << VIRTIO_F_INDIRECT_DESC |
			    1ull << VIRTIO_F_EVENT_IDX;
	vd->nvqs = ops->nqueues;
	vd->config_vector = VIRTIO_NO_VECTOR;
	for (unsigned q = 0; q < vd->nvqs; q++)
		virtq_reset(&vd->vqs[q], mem, ops->queue_max_size);
	return 0;
}

void virtio_dev_destroy(struct virtio_dev *vd)
{
	if (vd->ops)
		pthread_mutex_destroy(&vd->lock);
}

uint8_t virtio_dev_get_status(struct virtio_dev *vd)
{
	return __atomic_load_n(&vd->status, __ATOMIC_ACQUIRE);
}

bool virtio_dev_live(struct virtio_dev *vd)
{
	uint8_t s = virtio_dev_get_status(vd);
	return (s & VIRTIO_STATUS_DRIVER_OK) && !(s & VIRTIO_STATUS_NEEDS_RESET);
}

bool virtio_dev_has_feature(struct virtio_dev *vd, unsigned bit)
{
	return bit < 64 && (vd->driver_features >> bit & 1);
}

static void raise_irq(struct virtio_dev *vd, uint16_t vector, uint8_t isr)
{
	if (vd->interrupt)
		vd->interrupt(vd, vector, isr);
}

void virtio_dev_queue_done(struct virtio_dev *vd, unsigned q)
{
	if (q >= vd->nvqs || !virtq_should_notify(&vd->vqs[q]))
		return;
	raise_irq(vd, vd->vqs[q].msix_vector, 1);
}

void virtio_dev_config_changed(struct virtio_dev *vd)
{
	pthread_mutex_lock(&vd->lock);
	vd->config_generation++;
	uint16_t vector = vd->config_vector;
	pthread_mutex_unlock(&vd->lock);
	if (virtio_dev_get_status(vd) & VIRTIO_STATUS_DRIVER_OK)
		raise_irq(vd, vector, 2);
}

#define FAILURES_LOGGED 8

void virtio_dev_fail(struct virtio_dev *vd, const char *why)
{
	unsigned n = __atomic_fetch_add(&vd->failures, 1, __ATOMIC_RELAXED);
	if (n < FAILURES_LOGGED)
		kite_warn("%s: %s: the guest driver broke the protocol, the device needs a reset%s",
			  vd->ops->name, why,
			  n + 1 == FAILURES_LOGGED ? " (further errors not shown)" : "");
	uint8_t old = __atomic_fetch_or(&vd->status, VIRTIO_STATUS_NEEDS_RESET, __ATOMIC_ACQ_REL);
	if (!(old & VIRTIO_STATUS_NEEDS_RESET) && (old & VIRTIO_STATUS_DRIVER_OK))
		raise_irq(vd, vd->config_vector, 2);
}

static void reset(struct virtio_dev *vd)
{
	/* Status first: device threads stop at their next virtio_dev_live() check. */
	__atomic_store_n(&vd->status, 0, __ATOMIC_RELEASE);
	if (vd->ops->reset)
		vd->ops->reset(vd->dev);
	pthread_mutex_lock(&vd->lock);
	vd->driver_features = 0;
	vd->config_vector = VIRTIO_NO_VECTOR;
	vd->pending_notify = 0;
	for (unsigned q = 0; q < vd->nvqs; q++)
		virtq_reset(&vd->vqs[q], vd->mem, vd->ops->queue_max_size);
	pthread_mutex_unlock(&vd->lock);
}

void virtio_dev_set_status(struct virtio_dev *vd, uint8_t status)
{
	if (status == 0) {
		reset(vd);
		return;
	}
	pthread_mutex_lock(&vd->lock);
	uint8_t old = virtio_dev_get_status(vd);
	/* The driver cannot set NEEDS_RESET nor clear it except by a reset. */
	status = (status & ~VIRTIO_STATUS_NEEDS_RESET) | (old & VIRTIO_STATUS_NEEDS_RESET);
	if ((status & VIRTIO_STATUS_FEATURES_OK) && !(old & VIRTIO_STATUS_FEATURES_OK)) {
		/* Accept only what we offered, and only a virtio 1.x driver. */
		if ((vd->driver_features & ~vd->host_features) ||
		    !(vd->driver_features >> VIRTIO_F_VERSION_1 & 1))
			status &= ~VIRTIO_STATUS_FEATURES_OK;
	}
	bool starting = (status & VIRTIO_STATUS_DRIVER_OK) && !(old & VIRTIO_STATUS_DRIVER_OK);
	if (starting && !(status & VIRTIO_STATUS_FEATURES_OK))
		starting = false, status &= ~VIRTIO_STATUS_DRIVER_OK;
	uint32_t replay = starting ? vd->pending_notify : 0;
	vd->pending_notify = 0;
	__atomic_store_n(&vd->status, status, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&vd->lock);
	if (!starting)
		return;
	if (vd->ops->start)
		vd->ops->start(vd->dev);
	for (unsigned q = 0; q < vd->nvqs; q++)
		if (replay >> q & 1)
			vd->ops->queue_notify(vd->dev, q);
}

void virtio_dev_enable_queue_locked(struct virtio_dev *vd, unsigned q)
{
	struct virtq *vq = &vd->vqs[q];
	if (vq->enabled)
		return;
	vq->event_idx = vd->driver_features >> VIRTIO_F_EVENT_IDX & 1;
	vq->indirect = vd->driver_features >> VIRTIO_F_INDIRECT_DESC & 1;
	if (virtq_enable(vq) < 0) {
		pthread_mutex_unlock(&vd->lock); /* virtio_dev_fail may raise an interrupt */
		virtio_dev_fail(vd, vq->error);
		pthread_mutex_lock(&vd->lock);
	}
}

bool virtio_dev_kick_ok(struct virtio_dev *vd, unsigned q)
{
	if (q >= vd->nvqs)
		return false;
	pthread_mutex_lock(&vd->lock);
	bool enabled = vd->vqs[q].enabled;
	bool ok = vd->status & VIRTIO_STATUS_DRIVER_OK;
	/* Some drivers kick before DRIVER_OK (Linux's balloon stats queue): remember it and
	 * process the queue once the driver is ready, as the spec forbids using it earlier. */
	if (enabled && !ok)
		vd->pending_notify |= 1u << q;
	pthread_mutex_unlock(&vd->lock);
	return enabled && ok && virtio_dev_live(vd);
}

void virtio_dev_notify(struct virtio_dev *vd, unsigned q)
{
	if (virtio_dev_kick_ok(vd, q))
		vd->ops->queue_notify(vd->dev, q);
}
