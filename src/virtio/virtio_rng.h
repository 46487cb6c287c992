/* virtio-rng (virtio 1.x, 5.4): fills the driver's buffers from getrandom(2). */
#ifndef KITE_VIRTIO_VIRTIO_RNG_H
#define KITE_VIRTIO_VIRTIO_RNG_H

#include "virtio/virtio.h"

struct virtio_rng;

struct virtio_rng *virtio_rng_create(const struct guest_mem *mem);
void virtio_rng_destroy(struct virtio_rng *r); /* NULL is fine */
struct virtio_dev *virtio_rng_dev(struct virtio_rng *r);

#endif
