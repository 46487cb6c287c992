#include "virtio/virtio.h"
#include "util/err.h"

#include <stdio.h>
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

/* ---- state ---- */

#define STATE_VERSION 1

static void put_queue(struct state_writer *w, unsigned i, const struct virtq *q)
{
	char name[32];
#define QF(field, fn, val)                                                                         \
	do {                                                                                       \
		snprintf(name, sizeof(name), "q%u.%s", i, field);                                  \
		fn(w, name, val);                                                                  \
	} while (0)
	QF("size", state_put_u16, q->size);
	QF("enabled", state_put_bool, q->enabled);
	QF("msix_vector", state_put_u16, q->msix_vector);
	QF("desc", state_put_u64, q->desc_gpa);
	QF("avail", state_put_u64, q->avail_gpa);
	QF("used", state_put_u64, q->used_gpa);
	QF("last_avail", state_put_u16, q->last_avail);
	QF("used_idx", state_put_u16, q->used_idx);
	QF("signalled_used", state_put_u16, q->signalled_used);
	QF("signalled_valid", state_put_bool, q->signalled_valid);
#undef QF
}

int virtio_dev_save(struct virtio_dev *vd, struct state_buf *out)
{
	struct state_writer w;
	pthread_mutex_lock(&vd->lock);
	state_begin(&w, out, "virtio", STATE_VERSION);
	state_put_u16(&w, "device_id", vd->ops->device_id);
	state_put_u64(&w, "host_features", vd->host_features);
	state_put_u64(&w, "driver_features", vd->driver_features);
	state_put_u8(&w, "status", virtio_dev_get_status(vd));
	state_put_u8(&w, "config_generation", vd->config_generation);
	state_put_u16(&w, "config_vector", vd->config_vector);
	state_put_u32(&w, "pending_notify", vd->pending_notify);
	state_put_u8(&w, "queues", (uint8_t)vd->nvqs);
	for (unsigned q = 0; q < vd->nvqs; q++)
		put_queue(&w, q, &vd->vqs[q]);
	state_end(&w);
	pthread_mutex_unlock(&vd->lock);
	if (state_buf_check(out) < 0)
		return -1;
	return vd->ops->state ? vd->ops->state->save(vd->dev, out) : 0;
}

struct saved_queue {
	uint16_t size, msix_vector, last_avail, used_idx, signalled_used;
	bool enabled, signalled_valid;
	uint64_t desc, avail, used;
};

static int get_queue(const struct state_reader *r, unsigned i, struct saved_queue *q)
{
	char n[10][32];
	static const char *const f[] = {
	    "size", "enabled",	  "msix_vector", "desc",	   "avail",
	    "used", "last_avail", "used_idx",	 "signalled_used", "signalled_valid"};
	for (int k = 0; k < 10; k++)
		snprintf(n[k], sizeof(n[k]), "q%u.%s", i, f[k]);
	return state_get_u16(r, n[0], &q->size) < 0 || state_get_bool(r, n[1], &q->enabled) < 0 ||
		       state_get_u16(r, n[2], &q->msix_vector) < 0 ||
		       state_get_u64(r, n[3], &q->desc) < 0 ||
		       state_get_u64(r, n[4], &q->avail) < 0 ||
		       state_get_u64(r, n[5], &q->used) < 0 ||
		       state_get_u16(r, n[6], &q->last_avail) < 0 ||
		       state_get_u16(r, n[7], &q->used_idx) < 0 ||
		       state_get_u16(r, n[8], &q->signalled_used) < 0 ||
		       state_get_bool(r, n[9], &q->signalled_valid) < 0
		   ? -1
		   : 0;
}

struct saved_dev {
	uint16_t device_id, config_vector;
	uint64_t host_features, driver_features;
	uint8_t status, generation, nqueues;
	uint32_t pending;
	struct saved_queue q[VIRTIO_MAX_QUEUES];
};

static int read_saved(struct virtio_dev *vd, const struct state_reader *r, struct saved_dev *d)
{
	const char *name = vd->ops->name;
	if (state_get_u16(r, "device_id", &d->device_id) < 0 ||
	    state_get_u64(r, "host_features", &d->host_features) < 0 ||
	    state_get_u64(r, "driver_features", &d->driver_features) < 0 ||
	    state_get_u8(r, "status", &d->status) < 0 ||
	    state_get_u8(r, "config_generation", &d->generation) < 0 ||
	    state_get_u16(r, "config_vector", &d->config_vector) < 0 ||
	    state_get_u32(r, "pending_notify", &d->pending) < 0 ||
	    state_get_u8(r, "queues", &d->nqueues) < 0)
		return -1;
	if (d->device_id != vd->ops->device_id || d->nqueues != vd->nvqs)
		return kite_error("device state: %s: the saved device is virtio type %u with %u "
				  "queues",
				  name, d->device_id, d->nqueues);
	if (d->driver_features & ~vd->host_features)
		return kite_error("device state: %s: the driver uses features (0x%llx) this "
				  "device does not offer",
				  name,
				  (unsigned long long)(d->driver_features & ~vd->host_features));
	for (unsigned q = 0; q < vd->nvqs; q++) {
		if (get_queue(r, q, &d->q[q]) < 0)
			return -1;
		if (d->q[q].size > vd->ops->queue_max_size)
			return kite_error("device state: %s: queue %u has %u entries, at most %u",
					  name, q, d->q[q].size, vd->ops->queue_max_size);
	}
	return 0;
}

int virtio_dev_load(struct virtio_dev *vd, struct state_stream *s)
{
	struct state_reader r;
	struct saved_dev d;
	if (state_next(s, &r, "virtio", 1, STATE_VERSION) < 0 || read_saved(vd, &r, &d) < 0)
		return -1;
	pthread_mutex_lock(&vd->lock);
	vd->driver_features = d.driver_features;
	vd->config_generation = d.generation;
	vd->config_vector = d.config_vector;
	vd->pending_notify = d.pending & ((1u << vd->nvqs) - 1);
	int r_ok = 0;
	for (unsigned q = 0; q < vd->nvqs && r_ok == 0; q++) {
		struct virtq *vq = &vd->vqs[q];
		const struct saved_queue *sq = &d.q[q];
		virtq_reset(vq, vd->mem, vd->ops->queue_max_size);
		vq->size = sq->size;
		vq->msix_vector = sq->msix_vector;
		vq->desc_gpa = sq->desc;
		vq->avail_gpa = sq->avail;
		vq->used_gpa = sq->used;
		if (!sq->enabled)
			continue;
		vq->event_idx = d.driver_features >> VIRTIO_F_EVENT_IDX & 1;
		vq->indirect = d.driver_features >> VIRTIO_F_INDIRECT_DESC & 1;
		if (virtq_restore(vq, sq->last_avail, sq->used_idx, sq->signalled_used,
				  sq->signalled_valid) < 0)
			r_ok = kite_error("device state: %s: queue %u: %s", vd->ops->name, q,
					  vq->error);
	}
	if (r_ok < 0) {
		for (unsigned q = 0; q < vd->nvqs; q++)
			virtq_reset(&vd->vqs[q], vd->mem, vd->ops->queue_max_size);
		vd->driver_features = 0;
	} else {
		__atomic_store_n(&vd->status, d.status, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&vd->lock);
	if (r_ok < 0)
		return -1;
	if (vd->ops->state && state_load_dev(vd->ops->state, vd->dev, s) < 0)
		return -1;
	/* A device that runs threads of its own hears of DRIVER_OK through start(). */
	if ((d.status & VIRTIO_STATUS_DRIVER_OK) && vd->ops->start)
		vd->ops->start(vd->dev);
	return 0;
}

void virtio_dev_quiesce(struct virtio_dev *vd, bool stop)
{
	if (vd->ops->quiesce)
		vd->ops->quiesce(vd->dev, stop);
}

void virtio_dev_kick_all(struct virtio_dev *vd)
{
	for (unsigned q = 0; q < vd->nvqs; q++)
		virtio_dev_notify(vd, q);
}
