/* virtio-net (virtio 1.x, 5.1): one receive and one transmit queue, MAC and link status in
 * config space, no offloads. Frames go to and come from a net_backend (src/net/), on the
 * backend's thread: a transmit kick only wakes that thread. */
#ifndef KITE_VIRTIO_VIRTIO_NET_H
#define KITE_VIRTIO_VIRTIO_NET_H

#include "net/net.h"
#include "virtio/virtio.h"

struct virtio_net;

/* Takes `be` (started here, destroyed with the NIC, or at once on failure). Returns NULL
 * with an error printed. */
struct virtio_net *virtio_net_create(const struct guest_mem *mem, struct net_backend *be,
				     const uint8_t mac[6]);
void virtio_net_destroy(struct virtio_net *n); /* and its backend; NULL is fine */
struct virtio_dev *virtio_net_dev(struct virtio_net *n);

#endif
