/* virtio-console (virtio 1.x, 5.3) with one port and no multiport control queue: queue 0
 * carries host input to the guest (hvc0's receiveq), queue 1 the guest's output. Output
 * goes to a backend callback; input is pushed with virtio_console_input(). */
#ifndef KITE_VIRTIO_VIRTIO_CONSOLE_H
#define KITE_VIRTIO_VIRTIO_CONSOLE_H

#include "virtio/virtio.h"

#include <stddef.h>

struct virtio_console_backend {
	/* Guest output; called on the thread that delivers the transmit queue's kick (the io
	 * event thread, or a vCPU thread whose notify trapped). */
	void (*write)(void *opaque, const uint8_t *buf, size_t len);
	void *opaque;
	/* Optional: the guest posted receive buffers, input held back may go now (wire it to
	 * console_kick). Same thread as write. */
	void (*rx_ready)(void *opaque);
};

struct virtio_console;

struct virtio_console *virtio_console_create(const struct guest_mem *mem,
					     const struct virtio_console_backend *be);
void virtio_console_destroy(struct virtio_console *c); /* NULL is fine */
struct virtio_dev *virtio_console_dev(struct virtio_console *c);

/* Copies up to `len` bytes of input into the guest's receive buffers; returns how many
 * were taken (0 when the driver has no buffer posted: retry after rx_ready). Any thread.
 * Has the shape of console_input_fn (devices/console.h) with the device as opaque. */
size_t virtio_console_input(struct virtio_console *c, const uint8_t *buf, size_t len);

#endif
