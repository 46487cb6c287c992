/* Enabled persistent bitmaps kept current while kite writes a qcow2 image, as QEMU keeps them:
 * before the first change to what the guest reads, every consistent bitmap is loaded and
 * marked in use on disk; writes, zero writes and discards then set the bits of the enabled
 * ones ("auto"), a resize resizes them all, and at close they are stored and the in-use flags
 * cleared. A kite that dies in between leaves them in use, which QEMU takes as inconsistent
 * (to be removed): never as a record of writes it missed. Reverting to an internal snapshot,
 * which would change what the guest reads behind the bitmaps' back, is refused while the
 * image has bitmaps, as QEMU refuses it. */
#include "block/qcow2_bitmap_int.h"
#include "util/err.h"

static bool inconsistent(const struct qbm *bm)
{
	return (bm->flags & BME_FLAG_IN_USE) && !bm->tracked;
}

/* A directory kite cannot load is dropped before kite writes: its bitmaps would be stale. */
static int drop_unsound(struct blk *b, const char *why)
{
	kite_warn("%s: %s: the persistent bitmaps are dropped", b->filename, why);
	if (qbm_dir_discard(b) < 0)
		return -1;
	Q(b)->bitmaps->tracking = true;
	return 0;
}

static int begin(struct blk *b)
{
	struct qcow2 *q = Q(b);
	if (q->bitmaps ? q->bitmaps->tracking : !qbm_present(q))
		return 0;
	char why[1200];
	struct qbm_dir *d = qbm_dir_get_quiet(b, why, sizeof(why));
	if (!d)
		return drop_unsound(b, why);
	bool any = false;
	for (uint32_t i = 0; i < d->n; i++) {
		struct qbm *bm = &d->v[i];
		if (bm->flags & BME_FLAG_IN_USE)
			continue;
		bm->flags |= BME_FLAG_IN_USE; /* unreadable bits: in use from now on */
		bm->tracked = (bm->bits || qbm_load(b, bm) == 0);
		any = true;
	}
	d->tracking = true;
	return any ? qbm_commit(b, d) : 0;
}

int qcow2_bitmaps_mark(struct blk *b, uint64_t off, uint64_t len)
{
	if (begin(b) < 0)
		return -1;
	struct qbm_dir *d = Q(b)->bitmaps;
	for (uint32_t i = 0; d && i < d->n; i++)
		if (d->v[i].tracked && (d->v[i].flags & BME_FLAG_AUTO))
			qbm_set_range(&d->v[i], off, len);
	return 0;
}

/* QEMU refuses to resize an image whose bitmaps it cannot resize with it. */
static int before_resize(struct blk *b)
{
	char why[1200];
	struct qbm_dir *d = qbm_present(Q(b)) ? qbm_dir_get_quiet(b, why, sizeof(why)) : NULL;
	for (uint32_t i = 0; d && i < d->n; i++)
		if (inconsistent(&d->v[i]))
			return kite_error(
			    "Bitmap '%s' is inconsistent and cannot be used\nTry "
			    "block-dirty-bitmap-remove to delete this bitmap from disk",
			    d->v[i].name);
	return begin(b);
}

/* The tracked bitmaps follow the image's new size (bits past the old end start clear). */
static int resized(struct blk *b)
{
	struct qbm_dir *d = Q(b)->bitmaps;
	for (uint32_t i = 0; d && i < d->n; i++) {
		struct qbm *bm = &d->v[i];
		uint64_t g = 1ull << bm->gbits;
		if (bm->tracked && bm->nbits != (Q(b)->size + g - 1) / g && qbm_resize(b, bm) < 0)
			return -1;
	}
	return 0;
}

int qcow2_resize_tracked(struct blk *b, uint64_t size, bool shrink)
{
	if (size != Q(b)->size && before_resize(b) < 0)
		return -1;
	if (qcow2_resize(b, size, shrink) < 0)
		return -1;
	return resized(b);
}

int qcow2_bitmaps_forbid_revert(struct blk *b)
{
	struct qcow2 *q = Q(b);
	if (q->bitmaps ? q->bitmaps->n > 0 : qbm_present(q))
		return kite_error("%s: Device has active dirty bitmaps", b->filename);
	return 0;
}

void qcow2_bitmaps_close(struct blk *b)
{
	struct qcow2 *q = Q(b);
	struct qbm_dir *d = q->bitmaps;
	if (d && d->tracking && (b->flags & BLK_O_RDWR)) {
		bool any = false;
		for (uint32_t i = 0; i < d->n; i++) {
			if (!d->v[i].tracked)
				continue;
			d->v[i].flags &= ~BME_FLAG_IN_USE;
			d->v[i].tracked = false;
			any = true;
		}
		if (any && qbm_commit(b, d) < 0)
			kite_error(
			    "%s: the persistent bitmaps could not be stored: they stay marked "
			    "in use (inconsistent)",
			    b->filename);
	}
	qbm_dir_free(d);
	q->bitmaps = NULL;
}

int qcow2_write_tracked(struct blk *b, const void *buf, size_t len, uint64_t off)
{
	if (qcow2_bitmaps_mark(b, off, len) < 0)
		return -1;
	return qcow2_write(b, buf, len, off);
}

int qcow2_zero_tracked(struct blk *b, uint64_t off, uint64_t len, unsigned flags)
{
	if (qcow2_bitmaps_mark(b, off, len) < 0)
		return -1;
	return qcow2_zero(b, off, len, flags);
}

int qcow2_discard_tracked(struct blk *b, uint64_t off, uint64_t len)
{
	if (qcow2_bitmaps_mark(b, off, len) < 0)
		return -1;
	return qcow2_discard(b, off, len);
}

int qcow2_write_compressed_tracked(struct blk *b, const void *buf, size_t len, uint64_t off)
{
	if (qcow2_bitmaps_mark(b, off, len) < 0)
		return -1;
	return qcow2_write_compressed(b, buf, len, off);
}

int qcow2_write_precompressed_tracked(struct blk *b, const void *cdata, size_t clen, uint64_t off)
{
	if (qcow2_bitmaps_mark(b, off, Q(b)->cluster_size) < 0)
		return -1;
	return qcow2_write_precompressed(b, cdata, clen, off);
}
