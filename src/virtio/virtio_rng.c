#include "virtio/virtio_rng.h"
#include "util/err.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/random.h>

#define RNG_MAX_PER_REQ (64u << 10)

struct virtio_rng {
	struct virtio_dev vd;
	pthread_mutex_t lock;
	struct virtq_elem elem;
};

static int fill(uint8_t *p, size_t len)
{
	while (len) {
		ssize_t n = getrandom(p, len, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return kite_error_errno(errno, "virtio-rng: getrandom");
		}
		p += n;
		len -= n;
	}
	return 0;
}

/* Runs on the thread that delivers the kick (the io event thread, or the vCPU thread whose
 * notify trapped): getrandom on the non-blocking pool is quick. */
static void rng_notify(void *dev, unsigned qi)
{
	struct virtio_rng *r = dev;
	struct virtq *q = &r->vd.vqs[0];
	bool pushed = false;
	pthread_mutex_lock(&r->lock);
	while (virtio_dev_live(&r->vd)) {
		int got = virtq_pop(q, &r->elem);
		if (got == 0)
			break;
		if (got < 0) {
			virtio_dev_fail(&r->vd, q->error);
			break;
		}
		/* The device may fill less than offered (5.4.6): at most RNG_MAX_PER_REQ
		 * bytes, so that a huge buffer does not hold the thread. */
		uint32_t done = 0;
		for (unsigned i = 0; i < r->elem.n_in && done < RNG_MAX_PER_REQ; i++) {
			uint32_t n = r->elem.in[i].len;
			if (n > RNG_MAX_PER_REQ - done)
				n = RNG_MAX_PER_REQ - done;
			if (fill(r->elem.in[i].base, n) < 0)
				break;
			done += n;
		}
		virtq_push(q, r->elem.head, done);
		pushed = true;
	}
	if (pushed)
		virtio_dev_queue_done(&r->vd, 0);
	pthread_mutex_unlock(&r->lock);
}

static void rng_reset(void *dev)
{
	struct virtio_rng *r = dev;
	pthread_mutex_lock(&r->lock); /* wait out a pass in progress */
	pthread_mutex_unlock(&r->lock);
}

/* Requests are served under the lock: holding it keeps the device still. */
static void rng_quiesce(void *dev, bool stop)
{
	struct virtio_rng *r = dev;
	if (stop)
		pthread_mutex_lock(&r->lock);
	else
		pthread_mutex_unlock(&r->lock);
}

static const struct virtio_device_ops rng_ops = {
    .name = "virtio-rng",
    .device_id = VIRTIO_ID_RNG,
    .pci_class = 0x00ff00, /* unclassified, as QEMU */
    .config_size = 0,
    .nqueues = 1,
    .queue_max_size = 256,
    .queue_notify = rng_notify,
    .reset = rng_reset,
    .quiesce = rng_quiesce,
};

struct virtio_rng *virtio_rng_create(const struct guest_mem *mem)
{
	struct virtio_rng *r = calloc(1, sizeof(*r));
	if (!r) {
		kite_error("virtio-rng: out of memory");
		return NULL;
	}
	int err = pthread_mutex_init(&r->lock, NULL);
	if (err) {
		free(r);
		kite_error_errno(err, "virtio-rng: mutex");
		return NULL;
	}
	if (virtio_dev_init(&r->vd, &rng_ops, r, mem, 0) < 0) {
		pthread_mutex_destroy(&r->lock);
		free(r);
		return NULL;
	}
	return r;
}

void virtio_rng_destroy(struct virtio_rng *r)
{
	if (!r)
		return;
	virtio_dev_destroy(&r->vd);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

struct virtio_dev *virtio_rng_dev(struct virtio_rng *r)
{
	return &r->vd;
}
