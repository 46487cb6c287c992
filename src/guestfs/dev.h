/* A byte-addressed device that guestfs code reads and writes through: the whole image (backed by
 * the block layer) or a window of it (one partition). Keeping guestfs on this small interface
 * lets the partition and filesystem code be tested over plain memory buffers. */
#ifndef KITE_GUESTFS_DEV_H
#define KITE_GUESTFS_DEV_H

#include <stddef.h>
#include <stdint.h>

struct gdev {
	void *opaque;
	/* Each returns 0 on success or -1 (having reported the error). Callers never pass a
	 * range beyond `size`. `pwrite` and `flush` are NULL for a read-only device. */
	int (*pread)(void *opaque, void *buf, size_t len, uint64_t off);
	int (*pwrite)(void *opaque, const void *buf, size_t len, uint64_t off);
	int (*flush)(void *opaque);
	uint64_t size;
};

/* Reads `len` bytes at `off`, failing with a clear error if the range leaves the device. */
int gdev_read(const struct gdev *dev, void *buf, size_t len, uint64_t off);
int gdev_write(const struct gdev *dev, const void *buf, size_t len, uint64_t off);

/* A view of [start, start + len) of `parent`; `parent` must outlive `out`. Returns -1 if the
 * window does not fit inside the parent. */
struct gdev_window {
	const struct gdev *parent;
	uint64_t start;
};
int gdev_window_init(struct gdev *out, struct gdev_window *win, const struct gdev *parent,
		     uint64_t start, uint64_t len);

#endif
