#include "virtio/virtio_console.h"
#include "util/err.h"

#include <stdlib.h>
#include <string.h>

#define VIRTIO_CONSOLE_F_EMERG_WRITE 2
#define CONFIG_SIZE		     12 /* cols, rows, max_nr_ports, emerg_wr */
#define RX_Q			     0
#define TX_Q			     1

struct virtio_console {
	struct virtio_dev vd;
	struct virtio_console_backend be;
	pthread_mutex_t lock;
	struct virtq_elem elem;
};

static void console_tx(struct virtio_console *c)
{
	struct virtq *q = &c->vd.vqs[TX_Q];
	bool pushed = false;
	while (virtio_dev_live(&c->vd)) {
		int got = virtq_pop(q, &c->elem);
		if (got == 0)
			break;
		if (got < 0) {
			virtio_dev_fail(&c->vd, q->error);
			break;
		}
		for (unsigned i = 0; i < c->elem.n_out; i++)
			if (c->be.write)
				c->be.write(c->be.opaque, c->elem.out[i].base, c->elem.out[i].len);
		virtq_push(q, c->elem.head, 0);
		pushed = true;
	}
	if (pushed)
		virtio_dev_queue_done(&c->vd, TX_Q);
}

static void console_notify(void *dev, unsigned q)
{
	struct virtio_console *c = dev;
	pthread_mutex_lock(&c->lock);
	if (q == TX_Q)
		console_tx(c);
	pthread_mutex_unlock(&c->lock);
	if (q == RX_Q && c->be.rx_ready)
		c->be.rx_ready(c->be.opaque);
}

size_t virtio_console_input(struct virtio_console *c, const uint8_t *buf, size_t len)
{
	struct virtq *q = &c->vd.vqs[RX_Q];
	size_t done = 0;
	pthread_mutex_lock(&c->lock);
	while (done < len && virtio_dev_live(&c->vd)) {
		int got = virtq_pop(q, &c->elem);
		if (got == 0)
			break;
		if (got < 0) {
			virtio_dev_fail(&c->vd, q->error);
			break;
		}
		size_t n = virtq_elem_write(&c->elem, 0, buf + done, len - done);
		virtq_push(q, c->elem.head, (uint32_t)n);
		done += n;
	}
	if (done)
		virtio_dev_queue_done(&c->vd, RX_Q);
	pthread_mutex_unlock(&c->lock);
	return done;
}

static void console_config_read(void *dev, uint32_t off, uint8_t *data, unsigned len)
{
	uint8_t cfg[CONFIG_SIZE] = {0};
	cfg[0] = 80; /* cols */
	cfg[2] = 25; /* rows */
	cfg[4] = 1;  /* max_nr_ports */
	memcpy(data, cfg + off, len);
}

static void console_config_write(void *dev, uint32_t off, const uint8_t *data, unsigned len)
{
	struct virtio_console *c = dev;
	/* emerg_wr: one character written before the queues are up (early printk). */
	if (off == 8 && c->be.write)
		c->be.write(c->be.opaque, data, 1);
}

static void console_reset(void *dev)
{
	struct virtio_console *c = dev;
	pthread_mutex_lock(&c->lock);
	pthread_mutex_unlock(&c->lock);
}

/* Output and input are both handled under the lock: holding it keeps the device still. The
 * port holds no buffer of its own (input waits in the host console until the guest posts
 * receive buffers), so the transport's record is all its state. */
static void console_quiesce(void *dev, bool stop)
{
	struct virtio_console *c = dev;
	if (stop)
		pthread_mutex_lock(&c->lock);
	else
		pthread_mutex_unlock(&c->lock);
}

static const struct virtio_device_ops console_ops = {
    .name = "virtio-console",
    .device_id = VIRTIO_ID_CONSOLE,
    .pci_class = 0x078000, /* simple communication controller, other */
    .config_size = CONFIG_SIZE,
    .nqueues = 2,
    .queue_max_size = 128,
    .config_read = console_config_read,
    .config_write = console_config_write,
    .queue_notify = console_notify,
    .reset = console_reset,
    .quiesce = console_quiesce,
};

struct virtio_console *virtio_console_create(const struct guest_mem *mem,
					     const struct virtio_console_backend *be)
{
	struct virtio_console *c = calloc(1, sizeof(*c));
	if (!c) {
		kite_error("virtio-console: out of memory");
		return NULL;
	}
	if (be)
		c->be = *be;
	int err = pthread_mutex_init(&c->lock, NULL);
	if (err) {
		free(c);
		kite_error_errno(err, "virtio-console: mutex");
		return NULL;
	}
	if (virtio_dev_init(&c->vd, &console_ops, c, mem, 1ull << VIRTIO_CONSOLE_F_EMERG_WRITE) <
	    0) {
		pthread_mutex_destroy(&c->lock);
		free(c);
		return NULL;
	}
	return c;
}

void virtio_console_destroy(struct virtio_console *c)
{
	if (!c)
		return;
	virtio_dev_destroy(&c->vd);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

struct virtio_dev *virtio_console_dev(struct virtio_console *c)
{
	return &c->vd;
}
