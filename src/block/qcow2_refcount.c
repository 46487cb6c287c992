/* qcow2 refcounts: reading and updating entries of any width (1..64 bits), cluster
 * allocation, new refcount blocks and growing the refcount table, and the queue of
 * decrements that must wait until no table on disk uses the clusters. */
#include "block/qcow2_int.h"
#include "util/err.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

uint64_t qcow2_rb_get(const struct qcow2 *q, const uint8_t *blk, uint64_t i)
{
	switch (q->refcount_order) {
	case 0:
	case 1:
	case 2: {
		uint32_t bits = q->refcount_bits;
		uint64_t bit = i * bits;
		return (blk[bit / 8] >> (bit % 8)) & ((1u << bits) - 1);
	}
	case 3:
		return blk[i];
	case 4:
		return get_be16(blk + i * 2);
	case 5:
		return get_be32(blk + i * 4);
	default:
		return get_be64(blk + i * 8);
	}
}

void qcow2_rb_set(const struct qcow2 *q, uint8_t *blk, uint64_t i, uint64_t v)
{
	switch (q->refcount_order) {
	case 0:
	case 1:
	case 2: {
		uint32_t bits = q->refcount_bits;
		uint64_t bit = i * bits;
		uint8_t mask = (uint8_t)(((1u << bits) - 1) << (bit % 8));
		blk[bit / 8] = (uint8_t)((blk[bit / 8] & ~mask) | ((v << (bit % 8)) & mask));
		break;
	}
	case 3:
		blk[i] = (uint8_t)v;
		break;
	case 4:
		put_be16(blk + i * 2, (uint16_t)v);
		break;
	case 5:
		put_be32(blk + i * 4, (uint32_t)v);
		break;
	default:
		put_be64(blk + i * 8, v);
	}
}

static uint64_t max_refcount(const struct qcow2 *q)
{
	return q->refcount_bits == 64 ? UINT64_MAX : (1ull << q->refcount_bits) - 1;
}

int qcow2_get_refcount(struct blk *b, uint64_t cluster, uint64_t *rc)
{
	struct qcow2 *q = Q(b);
	uint64_t idx = cluster / q->rb_entries;
	*rc = 0;
	if (idx >= q->rt_entries || !(q->rt[idx] & RTE_OFFSET_MASK))
		return 0;
	uint8_t *rb = mcache_get(b, &q->rbc, q->rt[idx] & RTE_OFFSET_MASK, true);
	if (!rb)
		return -1;
	*rc = qcow2_rb_get(q, rb, cluster % q->rb_entries);
	return 0;
}

static int64_t find_free(struct blk *b, uint64_t n);

static int write_rt_entry(struct blk *b, uint64_t idx)
{
	struct qcow2 *q = Q(b);
	uint8_t v[8];
	put_be64(v, q->rt[idx]);
	return blk_file_pwrite(b->fd, v, 8, q->rt_offset + idx * 8, b->filename);
}

static void note_end(struct qcow2 *q, uint64_t end)
{
	if (end > q->file_end)
		q->file_end = end;
}

/* Grows the refcount table to cover block index `min_idx`. The new refcount blocks and the
 * new table go after the end of the file, describing themselves. */
static int grow_rt(struct blk *b, uint64_t min_idx)
{
	struct qcow2 *q = Q(b);
	uint64_t cs = q->cluster_size;
	uint64_t e = (q->file_end + cs - 1) / cs; /* first cluster certainly unused */
	uint64_t old = q->rt_entries;
	uint64_t n = 0, k = 0, tc = 0;
	uint64_t max_entries = QCOW2_MAX_RT_BYTES / 8;
	if (min_idx >= max_entries || e / q->rb_entries >= max_entries)
		return kite_error("%s: refcount table would exceed %u bytes (cluster offset too "
				  "large)",
				  b->filename, QCOW2_MAX_RT_BYTES);
	for (int iter = 0; iter < 64; iter++) {
		uint64_t last = (e + k + tc) / q->rb_entries;
		n = old * 2;
		if (n < min_idx + 1)
			n = min_idx + 1;
		if (n < last + 1)
			n = last + 1;
		tc = (n * 8 + cs - 1) / cs;
		n = tc * cs / 8;
		if (n > max_entries)
			return kite_error("%s: refcount table would exceed %u bytes", b->filename,
					  QCOW2_MAX_RT_BYTES);
		uint64_t need = 0;
		for (uint64_t i = e / q->rb_entries; i <= (e + k + tc - 1) / q->rb_entries; i++)
			if (i >= old || !(q->rt[i] & RTE_OFFSET_MASK))
				need++;
		if (need == k && (e + k + tc - 1) / q->rb_entries < n)
			break;
		k = need;
	}
	if ((uint64_t)tc * cs > QCOW2_MAX_RT_BYTES)
		return kite_error("%s: refcount table would exceed %u bytes", b->filename,
				  QCOW2_MAX_RT_BYTES);
	uint64_t *nrt = calloc(n, 8);
	uint8_t *buf = calloc(1, cs > n * 8 ? cs : n * 8);
	if (!nrt || !buf) {
		free(nrt);
		free(buf);
		return kite_error("out of memory");
	}
	memcpy(nrt, q->rt, old * 8);
	uint64_t first = e, endc = e + k + tc;
	int r = 0;
	note_end(q, endc * cs);
	/* New refcount blocks at e.., each holding the refcounts of the new clusters. */
	uint64_t next = e;
	for (uint64_t i = first / q->rb_entries; r == 0 && i <= (endc - 1) / q->rb_entries; i++) {
		if (i < old && (q->rt[i] & RTE_OFFSET_MASK))
			continue;
		nrt[i] = next * cs;
		qcow2_meta_mark(q, next * cs, true);
		memset(buf, 0, cs);
		for (uint64_t c = first; c < endc; c++)
			if (c / q->rb_entries == i)
				qcow2_rb_set(q, buf, c % q->rb_entries, 1);
		r = blk_file_pwrite(b->fd, buf, cs, next * cs, b->filename);
		next++;
	}
	/* New clusters that fall into existing blocks are counted there. */
	for (uint64_t c = first; r == 0 && c < endc; c++) {
		uint64_t i = c / q->rb_entries;
		if (i < old && (q->rt[i] & RTE_OFFSET_MASK)) {
			uint8_t *rb = mcache_get(b, &q->rbc, q->rt[i] & RTE_OFFSET_MASK, true);
			if (!rb) {
				r = -1;
				break;
			}
			qcow2_rb_set(q, rb, c % q->rb_entries, 1);
			mcache_dirty(&q->rbc, rb);
		}
	}
	if (r == 0)
		r = qcow2_sync_refcounts(b);
	if (r == 0) {
		memset(buf, 0, n * 8 > cs ? n * 8 : cs);
		for (uint64_t i = 0; i < n; i++)
			put_be64(buf + i * 8, nrt[i]);
		r = blk_file_pwrite(b->fd, buf, tc * cs, (e + k) * cs, b->filename);
	}
	if (r == 0 && blk_sync(b) < 0)
		r = -1;
	if (r == 0) {
		uint8_t h[12];
		put_be64(h, (e + k) * cs);
		put_be32(h + 8, (uint32_t)tc);
		r = blk_file_pwrite(b->fd, h, 12, 48, b->filename);
	}
	if (r == 0 && blk_sync(b) < 0)
		r = -1;
	free(buf);
	if (r < 0) {
		free(nrt);
		return -1;
	}
	uint64_t old_off = q->rt_offset, old_clusters = q->rt_clusters;
	free(q->rt);
	q->rt = nrt;
	q->rt_entries = n;
	q->rt_offset = (e + k) * cs;
	q->rt_clusters = (uint32_t)tc;
	note_end(q, endc * cs);
	return qcow2_update_refcount(b, old_off, old_clusters * cs, -1);
}

/* Makes sure refcount block `idx` exists. Returns 1 if one was created, 0 if it existed. */
static int ensure_block(struct blk *b, uint64_t idx, int depth)
{
	struct qcow2 *q = Q(b);
	uint64_t cs = q->cluster_size;
	if (depth > 8)
		return kite_error("%s: cannot place a new refcount block", b->filename);
	if (idx >= q->rt_entries) {
		if (grow_rt(b, idx) < 0)
			return -1;
		if (q->rt[idx] & RTE_OFFSET_MASK)
			return 1; /* new blocks were placed: callers must look again */
	}
	if (q->rt[idx] & RTE_OFFSET_MASK)
		return 0;
	int64_t r = find_free(b, 1);
	if (r < 0)
		return -1;
	uint64_t rc = (uint64_t)r;
	if (rc / q->rb_entries != idx) {
		/* The new block lives in another block's range: count it there. */
		if (ensure_block(b, rc / q->rb_entries, depth + 1) < 0)
			return -1;
		if (q->rt[idx] & RTE_OFFSET_MASK)
			return 1; /* the recursion placed it (self-describing) */
		uint64_t v;
		if (qcow2_get_refcount(b, rc, &v) < 0)
			return -1;
		if (v) /* taken by the recursion: retry */
			return ensure_block(b, idx, depth + 1);
		if (qcow2_update_refcount(b, rc * cs, cs, 1) < 0)
			return -1;
	}
	uint8_t *rb = mcache_get(b, &q->rbc, rc * cs, false);
	if (!rb)
		return -1;
	if (rc / q->rb_entries == idx)
		qcow2_rb_set(q, rb, rc % q->rb_entries, 1);
	mcache_dirty(&q->rbc, rb);
	note_end(q, rc * cs + cs);
	if (qcow2_sync_refcounts(b) < 0)
		return -1;
	q->rt[idx] = rc * cs;
	qcow2_meta_mark(q, rc * cs, true);
	if (write_rt_entry(b, idx) < 0)
		return -1;
	return 1;
}

/* A cluster whose refcount dropped to 0 is free: nothing may be served from it later. */
static void cluster_freed(struct qcow2 *q, uint64_t c)
{
	if (c < q->free_hint)
		q->free_hint = c;
	qcow2_meta_mark(q, c << q->cluster_bits, false);
	mcache_forget(&q->l2c, c << q->cluster_bits);
	if (q->cz_off >> q->cluster_bits == c)
		q->cz_off = 0;
	if (q->cbyte_off >> q->cluster_bits == c)
		q->cbyte_off = 0; /* no more compressed data into a free cluster */
}

int qcow2_update_refcount(struct blk *b, uint64_t off, uint64_t len, int64_t delta)
{
	struct qcow2 *q = Q(b);
	if (!len)
		return 0;
	uint64_t first = off >> q->cluster_bits;
	uint64_t last = (off + len - 1) >> q->cluster_bits;
	for (uint64_t c = first; c <= last; c++) {
		uint64_t idx = c / q->rb_entries;
		if (delta > 0 && ensure_block(b, idx, 0) < 0)
			return -1;
		if (idx >= q->rt_entries || !(q->rt[idx] & RTE_OFFSET_MASK))
			return kite_error("%s: corrupt image: refcount of cluster %llu is not "
					  "stored, cannot decrement it",
					  b->filename, (unsigned long long)c);
		uint8_t *rb = mcache_get(b, &q->rbc, q->rt[idx] & RTE_OFFSET_MASK, true);
		if (!rb)
			return -1;
		uint64_t v = qcow2_rb_get(q, rb, c % q->rb_entries);
		if (delta > 0 && v > max_refcount(q) - (uint64_t)delta)
			return kite_error(
			    "%s: refcount overflow on cluster %llu (refcount_bits=%u)", b->filename,
			    (unsigned long long)c, q->refcount_bits);
		if (delta < 0 && v < (uint64_t)-delta)
			return kite_error("%s: corrupt image: refcount of cluster %llu would go "
					  "below zero",
					  b->filename, (unsigned long long)c);
		v += (uint64_t)delta;
		qcow2_rb_set(q, rb, c % q->rb_entries, v);
		mcache_dirty(&q->rbc, rb);
		if (v == 0)
			cluster_freed(q, c);
	}
	return 0;
}

/* First run of `n` clusters with refcount 0 (clusters beyond the table count as free). */
static int64_t find_free(struct blk *b, uint64_t n)
{
	struct qcow2 *q = Q(b);
	uint64_t c = q->free_hint, start = c, run = 0;
	bool first_free_seen = false;
	if (c == 0)
		c = start = 1; /* the header is never free */
	for (;;) {
		uint64_t idx = c / q->rb_entries;
		uint64_t v = 0;
		if (idx < q->rt_entries && (q->rt[idx] & RTE_OFFSET_MASK)) {
			if (qcow2_get_refcount(b, c, &v) < 0)
				return -1;
		}
		if (v == 0) {
			if (!first_free_seen) {
				q->free_hint = c;
				first_free_seen = true;
			}
			if (run == 0)
				start = c;
			if (++run == n)
				return (int64_t)start;
		} else {
			run = 0;
		}
		c++;
		if (c > (1ull << (56 - q->cluster_bits)))
			return kite_error("%s: no free space left in the image", b->filename);
	}
}

/* 1 when clusters [c0, c0+n) all have refcount 0, 0 if not, -1. */
static int run_free(struct blk *b, uint64_t c0, uint64_t n)
{
	for (uint64_t c = c0; c < c0 + n; c++) {
		uint64_t v;
		if (qcow2_get_refcount(b, c, &v) < 0)
			return -1;
		if (v)
			return 0;
	}
	return 1;
}

int64_t qcow2_alloc_clusters(struct blk *b, uint64_t n)
{
	struct qcow2 *q = Q(b);
	for (int tries = 0; tries < 16; tries++) {
		int64_t s = find_free(b, n);
		if (s < 0)
			return -1;
		uint64_t start = (uint64_t)s, hint = q->free_hint;
		bool created = false;
		/* a refcount block the run needs goes after it, where QEMU puts it */
		q->free_hint = start + n;
		for (uint64_t i = start / q->rb_entries; i <= (start + n - 1) / q->rb_entries;
		     i++) {
			int r = ensure_block(b, i, 0);
			if (r < 0)
				return -1;
			created |= r > 0;
		}
		if (q->free_hint > hint) /* (a freed cluster may have lowered it) */
			q->free_hint = hint;
		int still = created ? run_free(b, start, n) : 1;
		if (still < 0)
			return -1;
		if (!still)
			continue; /* a new refcount block landed in the run: search again */
		if (qcow2_update_refcount(b, start * q->cluster_size, n * q->cluster_size, 1) < 0)
			return -1;
		if (q->free_hint == start)
			q->free_hint = start + n;
		note_end(q, (start + n) * q->cluster_size);
		return (int64_t)(start * q->cluster_size);
	}
	return kite_error("%s: cluster allocation did not settle", b->filename);
}

/* Allocates `n` clusters at `off` if they are all free. Returns 0, 1 if busy, -1. */
int64_t qcow2_alloc_clusters_at(struct blk *b, uint64_t off, uint64_t n)
{
	struct qcow2 *q = Q(b);
	uint64_t c0 = off >> q->cluster_bits;
	for (uint64_t c = c0; c < c0 + n; c++) {
		uint64_t v;
		if (qcow2_get_refcount(b, c, &v) < 0)
			return -1;
		if (v)
			return 1;
	}
	for (uint64_t i = c0 / q->rb_entries; i <= (c0 + n - 1) / q->rb_entries; i++)
		if (ensure_block(b, i, 0) < 0)
			return -1;
	for (uint64_t c = c0; c < c0 + n; c++) { /* a new block may have landed here */
		uint64_t v;
		if (qcow2_get_refcount(b, c, &v) < 0)
			return -1;
		if (v)
			return 1;
	}
	if (qcow2_update_refcount(b, off, n * q->cluster_size, 1) < 0)
		return -1;
	note_end(q, off + n * q->cluster_size);
	return 0;
}

int qcow2_free_later(struct blk *b, uint64_t off, uint64_t len)
{
	struct qcow2 *q = Q(b);
	if (!len)
		return 0;
	uint64_t first = off >> q->cluster_bits, last = (off + len - 1) >> q->cluster_bits;
	for (uint64_t c = first; c <= last; c++) {
		if (q->nb_pending == q->cap_pending) {
			size_t cap = q->cap_pending ? q->cap_pending * 2 : 256;
			uint64_t *p = realloc(q->pending_free, cap * 8);
			if (!p)
				return kite_error("out of memory");
			q->pending_free = p;
			q->cap_pending = cap;
		}
		q->pending_free[q->nb_pending++] = c << q->cluster_bits;
	}
	return 0;
}

int qcow2_apply_pending_frees(struct blk *b)
{
	struct qcow2 *q = Q(b);
	while (q->nb_pending) {
		uint64_t off = q->pending_free[q->nb_pending - 1];
		if (qcow2_update_refcount(b, off, q->cluster_size, -1) < 0)
			return -1;
		q->nb_pending--;
	}
	return 0;
}

/* Sets one cluster's stored refcount (check's repair), creating its block if needed. */
int qcow2_set_refcount(struct blk *b, uint64_t cluster, uint64_t v)
{
	struct qcow2 *q = Q(b);
	uint64_t idx = cluster / q->rb_entries;
	if (v > max_refcount(q))
		return kite_error("%s: refcount %llu of cluster %llu does not fit in %u bits",
				  b->filename, (unsigned long long)v, (unsigned long long)cluster,
				  q->refcount_bits);
	if (ensure_block(b, idx, 0) < 0)
		return -1;
	uint8_t *rb = mcache_get(b, &q->rbc, q->rt[idx] & RTE_OFFSET_MASK, true);
	if (!rb)
		return -1;
	qcow2_rb_set(q, rb, cluster % q->rb_entries, v);
	mcache_dirty(&q->rbc, rb);
	if (v == 0)
		cluster_freed(q, cluster);
	return 0;
}
