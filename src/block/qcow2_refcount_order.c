/* qemu-img amend -o refcount_bits=N: the refcount structure rewritten at a new width, as
 * QEMU 7.2's qcow2_change_refcount_order() does, so that the image ends up laid out as
 * qemu-img leaves it. The new refcount blocks and table are allocated through the old
 * structure (passes over the old refcounts repeat until one needs no new block), then
 * written from the old refcounts and synced, and one header write switches to them; the old
 * structure is freed last. A crash at any point leaves a valid image, leaking at worst. */
#include "block/qcow2_int.h"
#include "util/err.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

struct walk {
	struct blk *b;
	struct qcow2 nq;      /* the new width, for qcow2_rb_set */
	uint64_t nrb_entries; /* refcounts per new block */
	uint64_t *rt;	      /* the new refcount table (host byte order) */
	uint64_t rt_size;     /* its entries, whole clusters of them */
	uint8_t *block;	      /* the last pass: the new block being filled; else NULL */
	bool allocated;	      /* this pass allocated a new block */
	struct qcow2_amend_status *st;
	uint64_t pass, passes; /* for the progress report */
};

/* Where a pass is in the new structure. */
struct pos {
	uint64_t idx;  /* new block */
	uint64_t fill; /* refcounts in it so far */
	bool empty;    /* all of them 0 */
};

static int grow_table(struct walk *w, uint64_t idx)
{
	uint64_t per = Q(w->b)->cluster_size / 8;
	uint64_t n = (idx + per) / per * per;
	if (n > QCOW2_MAX_RT_BYTES / 8)
		return kite_error("This operation would make the refcount table grow beyond the "
				  "maximum size supported by QEMU, aborting");
	uint64_t *rt = realloc(w->rt, n * 8);
	if (!rt)
		return kite_error("Failed to increase reftable buffer size");
	memset(rt + w->rt_size, 0, (n - w->rt_size) * 8);
	w->rt = rt;
	w->rt_size = n;
	return 0;
}

/* Allocating passes: a block for every new block with a refcount in it. The last pass:
 * writes the block (an allocated one even if its refcounts have all gone to 0). */
static int finish_block(struct walk *w, uint64_t idx, bool empty)
{
	struct qcow2 *q = Q(w->b);
	if (w->block) {
		int r = 0;
		if (idx < w->rt_size && w->rt[idx]) {
			if (qcow2_check_overlap(w->b, w->rt[idx], q->cluster_size,
						"refcount block") < 0 ||
			    blk_file_pwrite(w->b->fd, w->block, q->cluster_size, w->rt[idx],
					    w->b->filename) < 0)
				r = -1;
		} else if (!empty) {
			r = kite_error("%s: refcount block %" PRIu64 " was not allocated",
				       w->b->filename, idx);
		}
		memset(w->block, 0, q->cluster_size);
		return r;
	}
	if (empty)
		return 0;
	if (idx >= w->rt_size && grow_table(w, idx) < 0)
		return -1;
	if (w->rt[idx])
		return 0;
	int64_t off = qcow2_alloc_clusters(w->b, 1);
	if (off < 0)
		return -1;
	w->rt[idx] = (uint64_t)off;
	w->allocated = true;
	return 0;
}

/* Adds one refcount to the new structure; 1 when that finished a block (whose allocation
 * may have changed the old refcount blocks or evicted them from the cache). */
static int take(struct walk *w, struct pos *p, uint64_t rc)
{
	if (w->block)
		qcow2_rb_set(&w->nq, w->block, p->fill, rc);
	p->empty = p->empty && rc == 0;
	if (++p->fill < w->nrb_entries)
		return 0;
	int r = finish_block(w, p->idx, p->empty);
	p->idx++;
	p->fill = 0;
	p->empty = true;
	return r < 0 ? -1 : 1;
}

/* `n` refcounts of 0 (an old refcount block that does not exist). */
static int take_zeros(struct walk *w, struct pos *p, uint64_t n)
{
	while (n) {
		uint64_t k = w->nrb_entries - p->fill < n ? w->nrb_entries - p->fill : n;
		p->fill += k;
		n -= k;
		if (p->fill < w->nrb_entries)
			break;
		if (finish_block(w, p->idx, p->empty) < 0)
			return -1;
		p->idx++;
		p->fill = 0;
		p->empty = true;
	}
	return 0;
}

static int walk_block(struct walk *w, struct pos *p, uint64_t off)
{
	struct qcow2 *q = Q(w->b);
	uint8_t *rb = NULL;
	for (uint64_t k = 0; k < q->rb_entries; k++) {
		if (!rb && !(rb = mcache_get(w->b, &q->rbc, off, true)))
			return -1;
		int r = take(w, p, qcow2_rb_get(q, rb, k));
		if (r < 0)
			return -1;
		if (r > 0)
			rb = NULL;
	}
	return 0;
}

/* One pass over the old refcounts, in cluster order (the old table may grow meanwhile). */
static int walk_all(struct walk *w)
{
	struct qcow2 *q = Q(w->b);
	struct pos p = {.empty = true};
	for (uint64_t i = 0; i < q->rt_entries; i++) {
		qcow2_amend_report(w->st, w->pass * q->rt_entries + i, w->passes * q->rt_entries);
		uint64_t off = q->rt[i] & RTE_OFFSET_MASK;
		int r = off ? walk_block(w, &p, off) : take_zeros(w, &p, q->rb_entries);
		if (r < 0)
			return -1;
	}
	if (p.fill && finish_block(w, p.idx, p.empty) < 0)
		return -1;
	w->pass++;
	return 0;
}

/* Allocates the new table after a pass that allocated blocks (freeing the one placed
 * before: the table may have grown, and QEMU places it anew). */
static int place_table(struct walk *w, uint64_t *off, uint64_t *clusters)
{
	struct qcow2 *q = Q(w->b);
	if (*off && qcow2_update_refcount(w->b, *off, *clusters * q->cluster_size, -1) < 0)
		return -1;
	*off = 0;
	*clusters = w->rt_size * 8 / q->cluster_size;
	int64_t a = qcow2_alloc_clusters(w->b, *clusters);
	if (a < 0)
		return -1;
	*off = (uint64_t)a;
	return 0;
}

static int write_table(struct walk *w, uint64_t off)
{
	uint64_t bytes = w->rt_size * 8;
	uint8_t *disk = malloc(bytes);
	if (!disk)
		return kite_error("out of memory");
	for (uint64_t i = 0; i < w->rt_size; i++)
		put_be64(disk + i * 8, w->rt[i]);
	int r = qcow2_check_overlap(w->b, off, bytes, "refcount table");
	if (r == 0)
		r = blk_file_pwrite(w->b->fd, disk, bytes, off, w->b->filename);
	free(disk);
	return r;
}

/* The last pass: every new block written with the refcounts as they now stand, then the
 * table; all on disk before the header may point at them. */
static int write_structure(struct walk *w, uint64_t rt_off)
{
	w->block = calloc(1, Q(w->b)->cluster_size);
	if (!w->block)
		return kite_error("out of memory");
	w->passes = w->pass + 1;
	int r = walk_all(w);
	free(w->block);
	w->block = NULL;
	if (r == 0)
		r = write_table(w, rt_off);
	if (r == 0)
		r = qcow2_sync_refcounts(w->b);
	if (r == 0)
		r = blk_sync(w->b);
	return r;
}

/* One header write makes the new structure the image's. */
static int point_header(struct walk *w, uint64_t rt_off, uint32_t order)
{
	struct qcow2 *q = Q(w->b);
	struct qcow2 old = *q;
	q->refcount_order = order;
	q->rt_offset = rt_off;
	q->rt_clusters = (uint32_t)(w->rt_size * 8 / q->cluster_size);
	if (qcow2_update_header_sync(w->b) == 0)
		return 0;
	q->refcount_order = old.refcount_order;
	q->rt_offset = old.rt_offset;
	q->rt_clusters = old.rt_clusters;
	return -1;
}

/* The in-memory state follows the header; the old blocks and table (counted in the new
 * blocks) are freed. */
static int adopt_structure(struct walk *w, uint64_t *old_rt, uint64_t old_entries, uint64_t old_off,
			   uint64_t old_clusters)
{
	struct qcow2 *q = Q(w->b);
	mcache_forget_all(&q->rbc); /* the old blocks, written back already */
	q->rt = w->rt;
	q->rt_entries = w->rt_size;
	w->rt = NULL;
	q->refcount_bits = 1u << q->refcount_order;
	q->rb_entries = q->cluster_size * 8 / q->refcount_bits;
	q->free_hint = 0;
	qcow2_meta_invalidate(q);
	int r = 0;
	for (uint64_t i = 0; r == 0 && i < old_entries; i++)
		if (old_rt[i] & RTE_OFFSET_MASK)
			r = qcow2_update_refcount(w->b, old_rt[i] & RTE_OFFSET_MASK,
						  q->cluster_size, -1);
	if (r == 0)
		r = qcow2_update_refcount(w->b, old_off, old_clusters * q->cluster_size, -1);
	free(old_rt);
	return r == 0 ? qcow2_flush_all(w->b) : -1;
}

/* A failure before the switch: what was allocated for the new structure is freed again. */
static void undo(struct walk *w, uint64_t rt_off, uint64_t rt_clusters)
{
	struct qcow2 *q = Q(w->b);
	for (uint64_t i = 0; i < w->rt_size; i++)
		if (w->rt[i])
			qcow2_update_refcount(w->b, w->rt[i], q->cluster_size, -1);
	if (rt_off)
		qcow2_update_refcount(w->b, rt_off, rt_clusters * q->cluster_size, -1);
	qcow2_flush_all(w->b);
}

int qcow2_change_refcount_order(struct blk *b, uint32_t order, struct qcow2_amend_status *st)
{
	struct qcow2 *q = Q(b);
	struct walk w = {.b = b, .st = st};
	w.nq.refcount_order = order;
	w.nq.refcount_bits = 1u << order;
	w.nrb_entries = q->cluster_size * 8 >> order;
	uint64_t rt_off = 0, rt_clusters = 0;
	if (qcow2_flush_all(b) < 0)
		return -1;
	int r;
	do {
		w.allocated = false;
		w.passes = w.pass + 2 > 3 ? w.pass + 2 : 3;
		r = walk_all(&w);
		if (r == 0 && w.allocated)
			r = place_table(&w, &rt_off, &rt_clusters);
	} while (r == 0 && w.allocated);
	if (r == 0)
		r = write_structure(&w, rt_off);
	uint64_t *old_rt = q->rt, old_entries = q->rt_entries, old_off = q->rt_offset;
	uint64_t old_clusters = q->rt_clusters;
	if (r == 0)
		r = point_header(&w, rt_off, order);
	if (r < 0) {
		undo(&w, rt_off, rt_clusters);
		free(w.rt);
		return -1;
	}
	return adopt_structure(&w, old_rt, old_entries, old_off, old_clusters);
}

/* qemu-img's refusal, before anything is written: a refcount the new width cannot hold. */
int qcow2_refcounts_fit(struct blk *b, uint32_t order)
{
	struct qcow2 *q = Q(b);
	uint32_t bits = 1u << order;
	if (bits == 64)
		return 0;
	for (uint64_t i = 0; i < q->rt_entries; i++) {
		uint64_t off = q->rt[i] & RTE_OFFSET_MASK;
		uint8_t *rb = off ? mcache_get(b, &q->rbc, off, true) : NULL;
		if (off && !rb)
			return -1;
		for (uint64_t k = 0; rb && k < q->rb_entries; k++) {
			uint64_t rc = qcow2_rb_get(q, rb, k);
			if (rc >> bits)
				return kite_error(
				    "Cannot decrease refcount entry width to %u bits: "
				    "Cluster at offset %#" PRIx64 " has a refcount of %" PRIu64,
				    bits, (i * q->rb_entries + k) << q->cluster_bits, rc);
		}
	}
	return 0;
}
