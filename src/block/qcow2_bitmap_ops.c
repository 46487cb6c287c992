/* qemu-img bitmap's actions on a qcow2 image, with QEMU's checks in QEMU's order and its
 * messages. Each action is written to the image before the next one runs (QEMU keeps them in
 * memory until it closes the image: the image ends up the same). */
#include "block/qcow2_bitmap_int.h"
#include "util/err.h"

#include <string.h>

static const char inconsistent_hint[] =
    "Try block-dirty-bitmap-remove to delete this bitmap from disk";

/* In use on disk, and not by kite itself: a writer stopped without storing it. */
static bool inconsistent(const struct qbm *bm)
{
	return (bm->flags & BME_FLAG_IN_USE) && !bm->tracked;
}

static int fail_inconsistent(const char *name, enum blk_bitmap_op op, const char *which)
{
	return blk_bitmap_fail(name, op, "Bitmap '%s' is inconsistent and cannot be used\n%s",
			       which, inconsistent_hint);
}

/* QEMU's default: the cluster size, within 4k..64k. */
static uint32_t default_granularity(const struct qcow2 *q)
{
	uint64_t cs = q->cluster_size;
	return (uint32_t)(cs < 4096 ? 4096 : cs > 65536 ? 65536 : cs);
}

static uint64_t dir_bytes(const struct qbm_dir *d)
{
	uint64_t n = 0;
	for (uint32_t i = 0; i < d->n; i++)
		n += (24 + strlen(d->v[i].name) + 7) & ~7ull;
	return n;
}

/* QEMU's qcow2_co_can_store_new_dirty_bitmap(): the reason it cannot, or NULL. */
static const char *cannot_store(const struct qcow2 *q, const struct qbm_dir *d, const char *name,
				uint32_t gbits)
{
	uint64_t bytes = qbm_bytes((q->size + (1ull << gbits) - 1) >> gbits);
	if (q->version < 3)
		return "Cannot store dirty bitmaps in qcow2 v2 files";
	if (bytes > BME_MAX_PHYS_SIZE || bytes > (uint64_t)BME_MAX_TABLE_SIZE * q->cluster_size)
		return "Too much space will be occupied by the bitmap. Use larger granularity";
	if (strlen(name) > BME_MAX_NAME_SIZE)
		return "Name length exceeds maximum (1023 characters)";
	if (d->n >= BME_MAX_BITMAPS)
		return "Maximum number of persistent bitmaps is already reached";
	if (dir_bytes(d) + ((24 + strlen(name) + 7) & ~7ull) > BME_MAX_DIR_SIZE)
		return "Not enough space in the bitmap directory";
	return NULL;
}

static int op_add(struct blk *b, struct qbm_dir *d, const char *name, uint32_t granularity)
{
	struct qcow2 *q = Q(b);
	uint32_t g = granularity ? granularity : default_granularity(q);
	uint32_t gbits = (uint32_t)__builtin_ctz(g);
	const char *why = cannot_store(q, d, name, gbits);
	if (why)
		return blk_bitmap_fail(name, BLK_BITMAP_ADD,
				       "Can't make bitmap '%s' persistent in "
				       "'%s': %s",
				       name, b->filename, why);
	if (qbm_find(d, name))
		return blk_bitmap_fail(name, BLK_BITMAP_ADD, "Bitmap already exists: %s", name);
	if (!q->size) /* no bits to store: QEMU loses the bitmap the same way */
		return kite_error("Lost persistent bitmaps during inactivation of node '%s': No "
				  "memory",
				  b->filename),
		       0;
	struct qbm *bm = qbm_append(d, name, gbits, BME_FLAG_AUTO);
	if (!bm)
		return kite_error("out of memory");
	if (qbm_zero(b, bm) < 0)
		return -1;
	if (d->tracking) { /* kite writes this image meanwhile: the new one follows too */
		bm->flags |= BME_FLAG_IN_USE;
		bm->tracked = true;
	}
	return qbm_commit(b, d);
}

/* The bitmap the action names: QEMU's block_dirty_bitmap_lookup(). */
static struct qbm *lookup(struct qbm_dir *d, const char *name, enum blk_bitmap_op op,
			  const char *target)
{
	struct qbm *bm = qbm_find(d, name);
	if (!bm)
		blk_bitmap_fail(target, op, "Dirty bitmap '%s' not found", name);
	return bm;
}

static int op_remove(struct blk *b, struct qbm_dir *d, const char *name)
{
	struct qbm *bm = lookup(d, name, BLK_BITMAP_REMOVE, name);
	if (!bm || qbm_remove(d, (uint32_t)(bm - d->v)) < 0)
		return -1;
	return qbm_commit(b, d);
}

static int op_clear(struct blk *b, struct qbm_dir *d, const char *name)
{
	struct qbm *bm = lookup(d, name, BLK_BITMAP_CLEAR, name);
	if (!bm)
		return -1;
	if (inconsistent(bm))
		return fail_inconsistent(name, BLK_BITMAP_CLEAR, name);
	if (qbm_zero(b, bm) < 0)
		return -1;
	return qbm_commit(b, d);
}

static int op_enable(struct blk *b, struct qbm_dir *d, const char *name, enum blk_bitmap_op op)
{
	struct qbm *bm = lookup(d, name, op, name);
	if (!bm)
		return -1;
	if (inconsistent(bm))
		return fail_inconsistent(name, op, name);
	if (op == BLK_BITMAP_ENABLE)
		bm->flags |= BME_FLAG_AUTO;
	else
		bm->flags &= ~BME_FLAG_AUTO;
	return qbm_commit(b, d);
}

/* The source bitmap of a merge, its bits loaded; NULL after QEMU's error. */
static struct qbm *merge_source(struct blk *src, const char *src_name, const char *target)
{
	struct qbm_dir *sd = qbm_dir_get(src);
	if (!sd)
		return NULL;
	struct qbm *sbm = lookup(sd, src_name, BLK_BITMAP_MERGE, target);
	if (sbm && inconsistent(sbm)) {
		fail_inconsistent(target, BLK_BITMAP_MERGE, src_name);
		return NULL;
	}
	return sbm;
}

static int op_merge(struct blk *b, struct qbm_dir *d, const char *name,
		    const struct blk_bitmap_change *c)
{
	struct blk *src = c->src ? c->src : b;
	struct qbm *dst = lookup(d, name, BLK_BITMAP_MERGE, name);
	if (!dst)
		return -1;
	if (src->drv != b->drv) /* an image without persistent bitmaps */
		return blk_bitmap_fail(name, BLK_BITMAP_MERGE, "Dirty bitmap '%s' not found",
				       c->src_name);
	struct qbm *sbm = merge_source(src, c->src_name, name);
	if (!sbm)
		return -1;
	if (Q(src)->size != Q(b)->size)
		return blk_bitmap_fail(name, BLK_BITMAP_MERGE,
				       "Bitmaps are of different sizes (destination size is %llu, "
				       "source size is %llu) and can't be merged",
				       (unsigned long long)Q(b)->size,
				       (unsigned long long)Q(src)->size);
	if (inconsistent(dst))
		return fail_inconsistent(name, BLK_BITMAP_MERGE, name);
	if ((!sbm->bits && qbm_load(src, sbm) < 0) || (!dst->bits && qbm_load(b, dst) < 0))
		return -1;
	qbm_merge(dst, sbm, Q(b)->size);
	return qbm_commit(b, d);
}

int qcow2_bitmap_change(struct blk *b, const char *name, const struct blk_bitmap_change *c)
{
	struct qbm_dir *d = qbm_dir_get(b);
	if (!d)
		return -1;
	switch (c->op) {
	case BLK_BITMAP_ADD:
		return op_add(b, d, name, (uint32_t)c->granularity);
	case BLK_BITMAP_REMOVE:
		return op_remove(b, d, name);
	case BLK_BITMAP_CLEAR:
		return op_clear(b, d, name);
	case BLK_BITMAP_ENABLE:
	case BLK_BITMAP_DISABLE:
		return op_enable(b, d, name, c->op);
	case BLK_BITMAP_MERGE:
		return op_merge(b, d, name, c);
	}
	return kite_error("unknown bitmap action");
}
