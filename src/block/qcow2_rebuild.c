/* qcow2 check -r all: a refcount structure too broken to patch (a cluster in use with a
 * stored refcount of 0, a bad refcount table entry) is replaced by a new one written from
 * the refcounts the check computed, as QEMU 7.2's rebuild_refcount_structure() does: new
 * refcount blocks and a new refcount table go into clusters free in the computed table,
 * then the header points at them. The old structure is leaked; the caller counts again
 * and frees it. */
#include "block/qcow2_check_int.h"
#include "util/err.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Allocates `count` contiguous clusters in the computed table (past its end if needed),
 * searching from *first_free, which is left at the first free cluster seen. Returns the
 * byte offset or a negative errno. */
static int64_t alloc_clusters_imrt(struct qcow2_chk *c, uint64_t count, uint64_t *first_free)
{
	uint64_t cluster = *first_free, run = 0;
	bool first_gap = true;
	for (; cluster < c->imrt.nb && run < count; cluster++) {
		if (imrt_get(c, cluster)) {
			run = 0;
			continue;
		}
		run++;
		if (first_gap) {
			*first_free = cluster;
			first_gap = false;
		}
	}
	if (run < count) {
		int r = imrt_resize(c, cluster + count - run);
		if (r < 0)
			return r;
	}
	cluster -= run;
	for (uint64_t i = 0; i < count; i++)
		imrt_set(c, cluster + i, 1);
	return (int64_t)(cluster << c->q->cluster_bits);
}

/* The refcount table being built (host byte order), whole clusters of entries. */
struct new_rt {
	uint64_t *e;
	uint64_t entries;
};

static int rt_cover(struct qcow2_chk *c, struct new_rt *rt, uint64_t index)
{
	uint64_t per_cluster = c->q->cluster_size / 8;
	uint64_t n = (index / per_cluster + 1) * per_cluster;
	uint64_t *e = realloc(rt->e, n * 8);
	if (!e) {
		kite_error("ERROR allocating reftable memory");
		return -ENOMEM;
	}
	memset(e + rt->entries, 0, (n - rt->entries) * 8);
	rt->e = e;
	rt->entries = n;
	return 0;
}

/* Writes the refcount blocks for the clusters in use among [first, end): each is the slice
 * of the computed table it describes, placed in a cluster free there (which the slice then
 * counts). Returns 1 when the new refcount table had to grow, 0, or a negative errno. */
static int write_refblocks(struct qcow2_chk *c, uint64_t first, uint64_t end, struct new_rt *rt)
{
	struct qcow2 *q = c->q;
	uint64_t block_bits = q->cluster_bits + 3 - q->refcount_order;
	uint64_t first_free = 0;
	int grown = 0;
	for (uint64_t cluster = first; cluster < end; cluster++) {
		if (!imrt_get(c, cluster))
			continue;
		uint64_t index = cluster >> block_bits, start = index << block_bits, off;
		if (index < rt->entries && rt->e[index]) {
			off = rt->e[index]; /* placed in an earlier round */
		} else {
			if (first_free < start)
				first_free = start; /* not in a block written already */
			int64_t a = alloc_clusters_imrt(c, 1, &first_free);
			if (a < 0) {
				kite_error("ERROR allocating refblock: %s", strerror((int)-a));
				return (int)a;
			}
			off = (uint64_t)a;
			if ((off >> q->cluster_bits) >= end)
				end = (off >> q->cluster_bits) + 1; /* its own refcount is due */
			if (index >= rt->entries) {
				int r = rt_cover(c, rt, index);
				if (r < 0)
					return r;
				grown = 1;
			}
			rt->e[index] = off;
		}
		if (qcow2_check_overlap(c->b, off, q->cluster_size, "refcount block") < 0) {
			kite_error("ERROR writing refblock: %s", strerror(EIO));
			return -EIO;
		}
		if (blk_file_pwrite(c->b->fd, c->imrt.buf + index * q->cluster_size,
				    q->cluster_size, off, c->b->filename) < 0) {
			int r = chk_errno();
			kite_error("ERROR writing refblock: %s", strerror(-r));
			return r;
		}
		cluster = start + (1ull << block_bits) - 1; /* this block is done */
	}
	return grown;
}

/* Places the new refcount table in free clusters, which their refcount blocks must then
 * count; that may grow the table, and so on until it fits. */
static int place_rt(struct qcow2_chk *c, struct new_rt *rt, uint64_t *rt_off)
{
	struct qcow2 *q = c->q;
	int grown;
	do {
		uint64_t first_free = 0;
		uint64_t clusters = rt->entries * 8 >> q->cluster_bits;
		int64_t a = alloc_clusters_imrt(c, clusters, &first_free);
		if (a < 0) {
			kite_error("ERROR allocating reftable: %s", strerror((int)-a));
			return (int)a;
		}
		*rt_off = (uint64_t)a;
		uint64_t start = *rt_off >> q->cluster_bits;
		grown = write_refblocks(c, start, start + clusters, rt);
		if (grown < 0)
			return grown;
	} while (grown);
	return 0;
}

static int write_rt(struct qcow2_chk *c, const struct new_rt *rt, uint64_t rt_off)
{
	struct qcow2 *q = c->q;
	uint64_t bytes = rt->entries * 8;
	uint8_t *disk = malloc(bytes);
	if (!disk) {
		kite_error("ERROR writing reftable: %s", strerror(ENOMEM));
		return -ENOMEM;
	}
	for (uint64_t i = 0; i < rt->entries; i++)
		put_be64(disk + i * 8, rt->e[i]);
	int r = 0;
	if (qcow2_check_overlap(c->b, rt_off, bytes, "refcount table") < 0)
		r = -EIO;
	else if (blk_file_pwrite(c->b->fd, disk, bytes, rt_off, c->b->filename) < 0 ||
		 blk_sync(c->b) < 0)
		r = chk_errno();
	free(disk);
	if (r < 0) {
		kite_error("ERROR writing reftable: %s", strerror(-r));
		return r;
	}
	uint8_t h[12];
	put_be64(h, rt_off);
	put_be32(h + 8, (uint32_t)(bytes >> q->cluster_bits));
	if (blk_file_pwrite(c->b->fd, h, sizeof(h), 48, c->b->filename) < 0 || blk_sync(c->b) < 0) {
		r = chk_errno();
		kite_error("ERROR setting reftable: %s", strerror(-r));
		return r;
	}
	return 0;
}

/* The refcount structure in memory follows the one now on disk. */
static void switch_rt(struct qcow2_chk *c, struct new_rt *rt, uint64_t rt_off)
{
	struct qcow2 *q = c->q;
	free(q->rt);
	q->rt = rt->e;
	q->rt_entries = rt->entries;
	q->rt_offset = rt_off;
	q->rt_clusters = (uint32_t)(rt->entries * 8 >> q->cluster_bits);
	q->free_hint = 0;
	rt->e = NULL;
	qcow2_meta_invalidate(q);
}

int chk_rebuild_refcount_structure(struct qcow2_chk *c, struct blk_check_result *res)
{
	struct qcow2 *q = c->q;
	struct new_rt rt = {0};
	uint64_t rt_off = 0;
	/* the cached refcount blocks are the old structure's */
	int r = qcow2_sync_refcounts(c->b) < 0 ? chk_errno() : 0;
	if (r == 0) {
		mcache_forget_all(&q->rbc);
		r = write_refblocks(c, 0, c->imrt.nb, &rt);
	}
	if (r >= 0)
		r = place_rt(c, &rt, &rt_off);
	if (r >= 0)
		r = write_rt(c, &rt, rt_off);
	if (r < 0) {
		res->check_errors++;
		free(rt.e);
		return r;
	}
	switch_rt(c, &rt, rt_off);
	return chk_refresh_file_len(c);
}
