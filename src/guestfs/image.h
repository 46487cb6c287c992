/* An image opened for kite guest: the block layer device (which locks the image as QEMU does)
 * and the struct gdev that partition and filesystem code reads through. */
#ifndef KITE_GUESTFS_IMAGE_H
#define KITE_GUESTFS_IMAGE_H

#include "guestfs/dev.h"

#include <stdbool.h>

struct blk;

struct gimage {
	struct blk *blk;
	struct gdev dev;
	bool dirty; /* written since the last flush */
};

/* `format`: "raw", "qcow2", "vmdk" or NULL to probe. With `write`, the image must be writable
 * and nobody else may be using it. */
int gimage_open(struct gimage *im, const char *path, const char *format, bool write);
/* Read-only, with force-share (BLK_O_SHARE): the image opens while another process (a
 * running VM) writes it, no lock keeps that writer out, and what is read may be mid-write. */
int gimage_open_shared(struct gimage *im, const char *path, const char *format);
/* Flushes (when anything was written since the last flush) and closes; returns -1 if the
 * flush failed. */
int gimage_close(struct gimage *im);

#endif
