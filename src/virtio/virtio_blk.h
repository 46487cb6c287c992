/* virtio-blk (virtio 1.x, 5.2) over the block layer: read, write, flush, discard,
 * write-zeroes, get-id. Requests run on a worker thread of the disk, never on a vCPU. */
#ifndef KITE_VIRTIO_VIRTIO_BLK_H
#define KITE_VIRTIO_VIRTIO_BLK_H

#include "block/block.h"
#include "virtio/virtio.h"

#define VIRTIO_BLK_SERIAL_LEN 20

struct virtio_blk;

/* `blk` stays owned by the caller and must outlive the device. A disk that is not writable
 * is read-only whatever `readonly` says. Returns NULL with an error printed. */
struct virtio_blk *virtio_blk_create(const struct guest_mem *mem, struct blk *blk, bool readonly,
				     const char *serial);
/* Stops the worker and frees the device (not the struct blk). NULL is fine. */
void virtio_blk_destroy(struct virtio_blk *b);
/* Moves the device onto another image of the same size (an external snapshot's overlay):
 * only while it is quiesced (no request in flight). */
void virtio_blk_set_blk(struct virtio_blk *b, struct blk *blk);
/* The device for a transport (virtio_pci_init). */
struct virtio_dev *virtio_blk_dev(struct virtio_blk *b);

#endif
