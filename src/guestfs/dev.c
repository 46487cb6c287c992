#include "guestfs/dev.h"
#include "util/err.h"

static int in_range(const struct gdev *dev, size_t len, uint64_t off)
{
	return off <= dev->size && len <= dev->size - off;
}

int gdev_read(const struct gdev *dev, void *buf, size_t len, uint64_t off)
{
	if (!in_range(dev, len, off))
		return kite_error("read of %zu bytes at offset %llu is beyond the end of the disk",
				  len, (unsigned long long)off);
	return dev->pread(dev->opaque, buf, len, off);
}

int gdev_write(const struct gdev *dev, const void *buf, size_t len, uint64_t off)
{
	if (!dev->pwrite)
		return kite_error("the disk is open read-only");
	if (!in_range(dev, len, off))
		return kite_error("write of %zu bytes at offset %llu is beyond the end of the disk",
				  len, (unsigned long long)off);
	return dev->pwrite(dev->opaque, buf, len, off);
}

static int win_pread(void *opaque, void *buf, size_t len, uint64_t off)
{
	struct gdev_window *w = opaque;
	return gdev_read(w->parent, buf, len, w->start + off);
}

static int win_pwrite(void *opaque, const void *buf, size_t len, uint64_t off)
{
	struct gdev_window *w = opaque;
	return gdev_write(w->parent, buf, len, w->start + off);
}

static int win_flush(void *opaque)
{
	struct gdev_window *w = opaque;
	return w->parent->flush ? w->parent->flush(w->parent->opaque) : 0;
}

int gdev_window_init(struct gdev *out, struct gdev_window *win, const struct gdev *parent,
		     uint64_t start, uint64_t len)
{
	if (start > parent->size || len > parent->size - start)
		return kite_error("partition (offset %llu, %llu bytes) extends beyond the end of "
				  "the disk (%llu bytes)",
				  (unsigned long long)start, (unsigned long long)len,
				  (unsigned long long)parent->size);
	win->parent = parent;
	win->start = start;
	out->opaque = win;
	out->pread = win_pread;
	out->pwrite = parent->pwrite ? win_pwrite : NULL;
	out->flush = parent->pwrite ? win_flush : NULL;
	out->size = len;
	return 0;
}
