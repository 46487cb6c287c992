/* qemu-img amend -o compat=0.10: v2 has no zero clusters, so before the downgrade each one,
 * in the active L2 tables and the snapshots', becomes what QEMU 7.2's
 * qcow2_expand_zero_clusters() makes of it: unallocated when no backing file shows through,
 * else a new cluster of zeros (counted once for each table sharing the L2 table); a zero
 * cluster that kept its host cluster is zeroed there (see zero_in_place() for where kite
 * differs). Each L2 table is rewritten in place once the clusters it will point at are
 * counted and zeroed on disk, so a crash leaves zero clusters (still valid in v3) and, at
 * worst, leaked clusters; a failure frees what it had allocated for the table. */
#include "block/qcow2_int.h"
#include "util/err.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

struct expand {
	struct blk *b;
	uint8_t *table; /* the L2 table being expanded, as on disk */
	uint8_t *zeros; /* one cluster of zeros */
	struct qcow2_amend_status *st;
	uint64_t visited, total; /* L1 entries, for the progress report */
	/* for the table being expanded: clusters allocated for it (each counted l2rc
	 * times), and those it lets go of (l2rc times each) once it is written */
	uint64_t *fresh, *release;
	size_t nfresh, nrelease;
	uint64_t l2rc;
};

static int zero_cluster(struct expand *x, uint64_t off)
{
	struct qcow2 *q = Q(x->b);
	if (off & (q->cluster_size - 1))
		return kite_error("%s: corrupt image: cluster offset %#" PRIx64 " unaligned",
				  x->b->filename, off);
	if (qcow2_check_overlap(x->b, off, q->cluster_size, "zeroed cluster") < 0)
		return -1;
	return blk_file_pwrite(x->b->fd, x->zeros, q->cluster_size, off, x->b->filename);
}

/* A zero cluster that kept its host cluster is zeroed there, unless tables other than
 * this L2 table's references use that cluster: QEMU zeroes it anyway, wiping the data a
 * snapshot keeps there; here this table lets go of it instead (after the table is written)
 * and gets a cluster of its own, as a zero cluster without one does. 1: zeroed in place. */
static int zero_in_place(struct expand *x, uint64_t off, uint64_t *rc)
{
	struct qcow2 *q = Q(x->b);
	if (qcow2_get_refcount(x->b, off >> q->cluster_bits, rc) < 0)
		return -1;
	if (*rc <= x->l2rc)
		return 1;
	x->release[x->nrelease++] = off;
	return 0;
}

/* A new cluster for a zero cluster, counted once for each table sharing this one. */
static int64_t fresh_cluster(struct expand *x)
{
	struct qcow2 *q = Q(x->b);
	int64_t a = qcow2_alloc_clusters(x->b, 1);
	if (a < 0)
		return -1;
	if (x->l2rc > 1 &&
	    qcow2_update_refcount(x->b, (uint64_t)a, q->cluster_size, (int64_t)x->l2rc - 1) < 0) {
		qcow2_update_refcount(x->b, (uint64_t)a, q->cluster_size, -1);
		return -1;
	}
	x->fresh[x->nfresh++] = (uint64_t)a;
	return a;
}

/* Entry j of the table, shared by x->l2rc L1 tables; *changed when it was a zero cluster. */
static int expand_entry(struct expand *x, uint64_t j, bool *changed)
{
	struct qcow2 *q = Q(x->b);
	uint64_t e = qcow2_l2_get(q, x->table, j, NULL);
	enum qcow2_ctype t = qcow2_entry_type(q, e);
	if (t != QC_ZERO_PLAIN && t != QC_ZERO_ALLOC)
		return 0;
	*changed = true;
	uint64_t off = e & L2E_OFFSET_MASK, rc = x->l2rc;
	int in_place = t == QC_ZERO_ALLOC ? zero_in_place(x, off, &rc) : 0;
	if (in_place < 0)
		return -1;
	if (!in_place) {
		rc = x->l2rc;
		if (!q->backing_file) {
			qcow2_l2_set(q, x->table, j, 0, 0);
			return 0;
		}
		int64_t a = fresh_cluster(x);
		if (a < 0)
			return -1;
		off = (uint64_t)a;
	}
	if (zero_cluster(x, off) < 0)
		return -1;
	qcow2_l2_set(q, x->table, j, off | (rc == 1 ? OFLAG_COPIED : 0), 0);
	return 0;
}

/* The table was written: the clusters it let go of lose its references (after the next
 * flush). Not written: the clusters allocated for it are freed again. */
static int settle_table(struct expand *x, bool written)
{
	struct qcow2 *q = Q(x->b);
	int r = 0;
	for (size_t i = 0; written && r == 0 && i < x->nrelease; i++)
		for (uint64_t k = 0; r == 0 && k < x->l2rc; k++)
			r = qcow2_free_later(x->b, x->release[i], q->cluster_size);
	for (size_t i = 0; !written && i < x->nfresh; i++)
		qcow2_update_refcount(x->b, x->fresh[i], q->cluster_size, -(int64_t)x->l2rc);
	x->nfresh = x->nrelease = 0;
	return r;
}

static int rewrite_table(struct expand *x, uint64_t l2off)
{
	struct blk *b = x->b;
	bool changed = false;
	for (uint64_t j = 0; j < Q(b)->l2_entries; j++)
		if (expand_entry(x, j, &changed) < 0)
			return -1;
	if (!changed)
		return 0;
	/* the refcounts and zeros on disk before the table points at them */
	if (qcow2_sync_refcounts(b) < 0 || blk_sync(b) < 0)
		return -1;
	if (qcow2_check_overlap_l2(b, l2off, Q(b)->cluster_size, "L2 table") < 0)
		return -1;
	return blk_file_pwrite(b->fd, x->table, Q(b)->cluster_size, l2off, b->filename);
}

static int expand_table(struct expand *x, uint64_t l2off)
{
	struct blk *b = x->b;
	struct qcow2 *q = Q(b);
	if (l2off & (q->cluster_size - 1))
		return kite_error("%s: corrupt image: L2 table offset %#" PRIx64 " unaligned",
				  b->filename, l2off);
	if (qcow2_get_refcount(b, l2off >> q->cluster_bits, &x->l2rc) < 0 ||
	    blk_file_pread(b->fd, x->table, q->cluster_size, l2off, b->filename) < 0)
		return -1;
	int r = rewrite_table(x, l2off);
	return settle_table(x, r == 0) < 0 ? -1 : r;
}

static int expand_l1(struct expand *x, const uint64_t *l1, uint32_t size)
{
	for (uint32_t i = 0; i < size; i++) {
		uint64_t l2off = l1[i] & L1E_OFFSET_MASK;
		if (l2off && expand_table(x, l2off) < 0)
			return -1;
		qcow2_amend_report(x->st, ++x->visited, x->total);
	}
	return 0;
}

static int expand_snapshot(struct expand *x, const struct qcow2_snapshot *s)
{
	struct blk *b = x->b;
	uint64_t *l1 = calloc(s->l1_size ? s->l1_size : 1, 8);
	if (!l1)
		return kite_error("out of memory");
	int r = blk_file_pread(b->fd, l1, (size_t)s->l1_size * 8, s->l1_offset, b->filename);
	for (uint32_t i = 0; r == 0 && i < s->l1_size; i++)
		l1[i] = get_be64((uint8_t *)&l1[i]);
	if (r == 0)
		r = expand_l1(x, l1, s->l1_size);
	free(l1);
	return r;
}

int qcow2_expand_zero_clusters(struct blk *b, struct qcow2_amend_status *st)
{
	struct qcow2 *q = Q(b);
	struct expand x = {.b = b, .st = st, .total = q->l1_size};
	for (uint32_t i = 0; i < q->nb_snapshots; i++)
		x.total += q->snaps[i].l1_size;
	/* the tables are read and written on disk: nothing may stay in the cache */
	if (qcow2_flush_all(b) < 0)
		return -1;
	mcache_forget_all(&q->l2c);
	x.table = malloc(q->cluster_size);
	x.zeros = calloc(1, q->cluster_size);
	x.fresh = malloc(q->l2_entries * sizeof(uint64_t));
	x.release = malloc(q->l2_entries * sizeof(uint64_t));
	int r = x.table && x.zeros && x.fresh && x.release ? 0 : kite_error("out of memory");
	if (r == 0)
		r = expand_l1(&x, q->l1, q->l1_size);
	for (uint32_t i = 0; r == 0 && i < q->nb_snapshots; i++)
		r = expand_snapshot(&x, &q->snaps[i]);
	free(x.table);
	free(x.zeros);
	free(x.fresh);
	free(x.release);
	/* also on failure: what the written tables let go of */
	return qcow2_flush_all(b) < 0 ? -1 : r;
}

int qcow2_has_compressed(struct blk *b, uint64_t end)
{
	struct qcow2 *q = Q(b);
	uint64_t clusters = (end + q->cluster_size - 1) >> q->cluster_bits;
	for (uint64_t c = 0; c < clusters; c += q->l2_entries) {
		uint8_t *l2;
		if (qcow2_get_l2(b, c / q->l2_entries, false, &l2) < 0)
			return -1;
		uint64_t n = clusters - c < q->l2_entries ? clusters - c : q->l2_entries;
		for (uint64_t j = 0; l2 && j < n; j++)
			if (qcow2_l2_get(q, l2, j, NULL) & OFLAG_COMPRESSED)
				return 1;
	}
	return 0;
}
