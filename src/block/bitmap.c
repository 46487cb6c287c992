/* Persistent dirty bitmaps, the generic part of blk_bitmap_change: qemu-img's checks that
 * come before any format's (QEMU's block_dirty_bitmap_add), and its words for formats that
 * have no bitmaps. */
#include "block/block_int.h"
#include "util/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static const char *const op_names[] = {
    [BLK_BITMAP_ADD] = "add",	    [BLK_BITMAP_REMOVE] = "remove",   [BLK_BITMAP_CLEAR] = "clear",
    [BLK_BITMAP_ENABLE] = "enable", [BLK_BITMAP_DISABLE] = "disable", [BLK_BITMAP_MERGE] = "merge",
};

int blk_bitmap_fail(const char *name, enum blk_bitmap_op op, const char *fmt, ...)
{
	char *why = NULL;
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(&why, fmt, ap);
	va_end(ap);
	kite_error("Operation %s on bitmap %s failed: %s", op_names[op], name,
		   n < 0 ? "out of memory" : why);
	if (n >= 0)
		free(why);
	return -1;
}

/* QEMU takes the granularity as a 32-bit number: 4G reads as 0 and fails. */
static int check_add(const char *name, uint64_t granularity)
{
	uint32_t g = (uint32_t)granularity;
	if (!name[0])
		return blk_bitmap_fail(name, BLK_BITMAP_ADD, "Bitmap name cannot be empty");
	if (granularity && (g < 512 || (g & (g - 1))))
		return blk_bitmap_fail(name, BLK_BITMAP_ADD,
				       "Granularity must be power of 2 and at least 512");
	return 0;
}

int blk_bitmap_change(struct blk *b, const char *name, const struct blk_bitmap_change *c)
{
	if (!(b->flags & BLK_O_RDWR))
		return kite_error("%s: the image is open read-only", b->filename);
	if (c->op == BLK_BITMAP_ADD && check_add(name, c->granularity) < 0)
		return -1;
	if (!b->drv->bitmap_change && c->op == BLK_BITMAP_ADD)
		return blk_bitmap_fail(
		    name, c->op, "Can't store persistent bitmaps to %s: Operation not supported",
		    b->filename);
	if (!b->drv->bitmap_change)
		return blk_bitmap_fail(name, c->op, "Dirty bitmap '%s' not found", name);
	struct blk_bitmap_change ch = *c;
	ch.granularity = (uint32_t)c->granularity;
	pthread_mutex_lock(&b->lock);
	int r = b->drv->bitmap_change(b, name, &ch);
	pthread_mutex_unlock(&b->lock);
	return r;
}
