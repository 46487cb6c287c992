#include "block/blk_handover.h"
#include "block/block_int.h"
#include "block/imglock.h"
#include "util/err.h"

int blk_release_locks(struct blk *b)
{
	if (!b)
		return 0;
	if ((b->flags & BLK_O_RDWR) && b->drv && b->drv->flush && b->drv->flush(b) < 0)
		return kite_error("%s: cannot flush before handing it over", b->filename);
	if (blk_release_locks(b->backing) < 0 || blk_release_locks(b->data_file) < 0)
		return -1;
	imglock_drop(b->lock_held);
	b->lock_held = NULL;
	return 0;
}

/* As block.c's lock_image: readers need nobody writing, a writer lets nobody write or
 * resize, BLK_O_SHARE lets others do anything. */
int blk_take_locks(struct blk *b)
{
	if (!b)
		return 0;
	if (blk_take_locks(b->backing) < 0 || blk_take_locks(b->data_file) < 0)
		return -1;
	if (b->lock_held)
		return 0;
	unsigned use = IMGLOCK_READ, unshare = IMGLOCK_WRITE;
	if (b->flags & BLK_O_RDWR) {
		use |= IMGLOCK_WRITE | IMGLOCK_RESIZE;
		unshare |= IMGLOCK_RESIZE;
	}
	if (b->flags & BLK_O_SHARE)
		unshare = 0;
	b->lock_held =
	    imglock_take(b->fd, b->filename, use, unshare, b->filename, b->flags & BLK_O_RDWR);
	return b->lock_held ? 0 : -1;
}
