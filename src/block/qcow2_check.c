/* qcow2 consistency check and repair, as qemu-img check: the snapshot table is read (and
 * repaired), every cluster's refcount is computed from the header, tables, L1/L2 entries,
 * snapshots and bitmaps and compared with the stored one; with repair flags leaks and
 * errors are fixed, a refcount structure too broken to patch is rebuilt from scratch
 * (qcow2_rebuild.c), and the COPIED flags are made to agree with the refcounts. The
 * messages, counters and repairs are QEMU 7.2's, so both tools leave the same image. */
#include "block/qcow2_check_int.h"
#include "util/err.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void chk_say(const struct qcow2_chk *c, const char *fmt, ...)
{
	if (c->quiet)
		return;
	va_list ap;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
}

/* The errno of a kite helper that failed, as the negative value the check passes on. */
int chk_errno(void)
{
	return errno > 0 ? -errno : -EIO;
}

static uint64_t clusters_of(const struct qcow2 *q, uint64_t bytes)
{
	return (bytes + q->cluster_size - 1) >> q->cluster_bits;
}

static uint64_t max_refcount(const struct qcow2 *q)
{
	return q->refcount_bits == 64 ? UINT64_MAX : (1ull << q->refcount_bits) - 1;
}

uint64_t imrt_get(const struct qcow2_chk *c, uint64_t cluster)
{
	return qcow2_rb_get(c->q, c->imrt.buf, cluster);
}

void imrt_set(struct qcow2_chk *c, uint64_t cluster, uint64_t v)
{
	qcow2_rb_set(c->q, c->imrt.buf, cluster, v);
}

static uint64_t imrt_bytes(const struct qcow2 *q, uint64_t nb)
{
	return clusters_of(q, (nb * q->refcount_bits + 7) / 8) << q->cluster_bits;
}

/* Makes the computed table cover `nb` clusters (new ones at refcount 0). */
int imrt_resize(struct qcow2_chk *c, uint64_t nb)
{
	uint64_t old = imrt_bytes(c->q, c->imrt.nb), want = imrt_bytes(c->q, nb);
	if (want != old) {
		uint8_t *p = want <= SIZE_MAX ? realloc(c->imrt.buf, want) : NULL;
		if (!p) {
			kite_error("out of memory");
			return -ENOMEM;
		}
		if (want > old)
			memset(p + old, 0, want - old);
		c->imrt.buf = p;
	}
	c->imrt.nb = nb;
	return 0;
}

/* QEMU sees a file's length in whole 512-byte sectors. */
int chk_refresh_file_len(struct qcow2_chk *c)
{
	uint64_t len;
	if (blk_file_size(c->b->fd, &len, c->b->filename) < 0)
		return chk_errno();
	if (len > c->q->file_end)
		c->q->file_end = len;
	c->file_len = (len + 511) & ~511ull;
	return 0;
}

/* Counts one reference to every cluster of [off, off + size). The last cluster may lie
 * partly past the end of the file (compressed data), a whole cluster may not. */
int chk_inc_refcounts(struct qcow2_chk *c, struct blk_check_result *res, uint64_t off,
		      uint64_t size)
{
	struct qcow2 *q = c->q;
	if (!size)
		return 0;
	uint64_t end = off + size;
	if (end < off || (end > c->file_len && end - c->file_len >= q->cluster_size)) {
		chk_say(c,
			"ERROR: counting reference for region exceeding the end of the file by "
			"one cluster or more: offset 0x%llx size 0x%llx\n",
			(unsigned long long)off, (unsigned long long)size);
		res->corruptions++;
		return 0;
	}
	for (uint64_t k = off >> q->cluster_bits; k <= (end - 1) >> q->cluster_bits; k++) {
		if (k >= c->imrt.nb) {
			int r = imrt_resize(c, k + 1);
			if (r < 0) {
				res->check_errors++;
				return r;
			}
		}
		uint64_t rc = imrt_get(c, k);
		if (rc == max_refcount(q)) {
			chk_say(c, "ERROR: overflow cluster offset=0x%llx\n",
				(unsigned long long)(k << q->cluster_bits));
			chk_say(c, "Use qemu-img amend to increase the refcount entry width or "
				   "qemu-img convert to create a clean copy if the image cannot be "
				   "opened for writing\n");
			res->corruptions++;
			continue;
		}
		imrt_set(c, k, rc + 1);
	}
	return 0;
}

/* Compares the stored refcount of every cluster with the computed one; with `fix`, leaks
 * (stored too high) and errors (stored too low, but not 0) are corrected in place. A stored
 * 0 for a cluster in use means the refcount structure itself is broken: *rebuild. */
static void compare_refcounts(struct qcow2_chk *c, struct blk_check_result *res, unsigned fix,
			      bool *rebuild, uint64_t *highest)
{
	*highest = 0;
	for (uint64_t i = 0; i < c->imrt.nb; i++) {
		uint64_t stored, ref = imrt_get(c, i);
		if (qcow2_get_refcount(c->b, i, &stored) < 0) {
			chk_say(c, "Can't get refcount for cluster %llu: %s\n",
				(unsigned long long)i, strerror(EIO));
			res->check_errors++;
			continue;
		}
		if (stored || ref)
			*highest = i;
		if (stored == ref)
			continue;
		uint64_t *fixed = NULL;
		if (stored == 0)
			*rebuild = true;
		else if (stored > ref && (fix & BLK_CHECK_FIX_LEAKS))
			fixed = &res->leaks_fixed;
		else if (stored < ref && (fix & BLK_CHECK_FIX_ERRORS))
			fixed = &res->corruptions_fixed;
		chk_say(c, "%s cluster %llu refcount=%llu reference=%llu\n",
			fixed ? "Repairing" : (stored < ref ? "ERROR" : "Leaked"),
			(unsigned long long)i, (unsigned long long)stored, (unsigned long long)ref);
		if (fixed && qcow2_set_refcount(c->b, i, ref) == 0) {
			(*fixed)++;
			continue;
		}
		if (stored < ref)
			res->corruptions++;
		else
			res->leaks++;
	}
}

/* After a rebuild the old refcount structure is leaked: the references are counted again
 * and (with leak repair) the leaks freed. Leaks that remain were made by the rebuild. */
static int recount_after_rebuild(struct qcow2_chk *c, struct blk_check_result *res, unsigned fix,
				 uint64_t *highest)
{
	struct blk_check_result before = *res;
	uint64_t fresh_leaks = 0;
	bool rebuild = false;
	res->corruptions = 0;
	res->leaks = 0;
	memset(c->imrt.buf, 0, imrt_bytes(c->q, c->imrt.nb));
	int r = chk_calculate_refcounts(c, res, 0, &rebuild);
	if (r < 0)
		return r;
	if (fix & BLK_CHECK_FIX_LEAKS) {
		struct blk_check_result saved = *res;
		memset(res, 0, sizeof(*res));
		compare_refcounts(c, res, BLK_CHECK_FIX_LEAKS, &rebuild, highest);
		if (rebuild)
			chk_say(c, "ERROR rebuilt refcount structure is still broken\n");
		fresh_leaks = res->leaks;
		*res = saved;
	}
	if (res->corruptions < before.corruptions)
		res->corruptions_fixed += before.corruptions - res->corruptions;
	if (res->leaks < before.leaks)
		res->leaks_fixed += before.leaks - res->leaks;
	res->leaks += fresh_leaks;
	return 0;
}

/* QEMU's qcow2_check_refcounts(). */
static int check_refcounts(struct qcow2_chk *c, struct blk_check_result *res, unsigned fix)
{
	struct qcow2 *q = c->q;
	int r = chk_refresh_file_len(c);
	if (r < 0) {
		res->check_errors++;
		return r;
	}
	uint64_t nb = clusters_of(q, c->file_len);
	if (nb > INT_MAX) {
		res->check_errors++;
		return -EFBIG;
	}
	res->total_clusters = clusters_of(q, q->size & ~511ull);
	r = imrt_resize(c, nb);
	if (r < 0) {
		res->check_errors++;
		return r;
	}
	bool rebuild = false;
	r = chk_calculate_refcounts(c, res, fix, &rebuild);
	if (r < 0)
		return r;
	/* Without a rebuild but with repairs, the comparison runs again with them. */
	struct blk_check_result pre_compare = *res;
	uint64_t highest;
	compare_refcounts(c, res, 0, &rebuild, &highest);
	if (rebuild && (fix & BLK_CHECK_FIX_ERRORS)) {
		chk_say(c, "Rebuilding refcount structure\n");
		r = chk_rebuild_refcount_structure(c, res);
		if (r == 0)
			r = recount_after_rebuild(c, res, fix, &highest);
		if (r < 0)
			return r;
	} else if (fix) {
		if (rebuild) {
			chk_say(c, "ERROR need to rebuild refcount structures\n");
			res->check_errors++;
			return -EIO;
		}
		if (res->leaks || res->corruptions) {
			*res = pre_compare;
			compare_refcounts(c, res, fix, &rebuild, &highest);
		}
	}
	r = chk_oflag_copied(c, res, fix);
	if (r < 0)
		return r;
	res->image_end_offset = (highest + 1) * q->cluster_size;
	return 0;
}

static void add_result(struct blk_check_result *out, const struct blk_check_result *in,
		       bool with_allocation_info)
{
	out->corruptions += in->corruptions;
	out->leaks += in->leaks;
	out->check_errors += in->check_errors;
	out->corruptions_fixed += in->corruptions_fixed;
	out->leaks_fixed += in->leaks_fixed;
	if (with_allocation_info) {
		out->image_end_offset = in->image_end_offset;
		out->total_clusters = in->total_clusters;
		out->allocated_clusters = in->allocated_clusters;
		out->fragmented_clusters = in->fragmented_clusters;
		out->compressed_clusters = in->compressed_clusters;
	}
}

/* Clears an incompatible feature bit (dirty, corrupt) once the image is consistent. */
static int clear_incompat(struct qcow2_chk *c, uint64_t bit)
{
	struct qcow2 *q = c->q;
	if (!(q->incompat & bit))
		return 0;
	if (qcow2_flush_all(c->b) < 0 || qcow2_set_incompat(c->b, q->incompat & ~bit) < 0 ||
	    blk_sync(c->b) < 0)
		return chk_errno();
	return 0;
}

/* A writer drops what it does not maintain (see qcow2_drop_autoclear); check does it once
 * the snapshot table is known, so that the header it rewrites keeps it. */
static int drop_bitmaps(struct qcow2_chk *c)
{
	if (!(c->b->flags & BLK_O_CHECK) || !blk_is_writable(c->b))
		return 0;
	if (qcow2_drop_autoclear(c->b) < 0 || qcow2_flush_all(c->b) < 0)
		return chk_errno();
	return 0;
}

/* QEMU's qcow2_co_check_locked(). */
static int run_check(struct qcow2_chk *c, unsigned fix, struct blk_check_result *res)
{
	struct blk_check_result snap = {0}, refs = {0};
	int r = chk_read_snapshot_table(c, &snap, fix);
	if (r == 0)
		r = drop_bitmaps(c);
	if (r < 0) {
		add_result(res, &snap, false);
		return r;
	}
	r = check_refcounts(c, &refs, fix);
	add_result(res, &refs, true);
	if (r < 0) {
		add_result(res, &snap, false);
		return r;
	}
	r = chk_fix_snapshot_table(c, &snap, fix);
	add_result(res, &snap, false);
	if (r < 0)
		return r;
	if (fix && !res->check_errors && !res->corruptions) {
		r = clear_incompat(c, QCOW2_INCOMPAT_DIRTY);
		if (r == 0)
			r = clear_incompat(c, QCOW2_INCOMPAT_CORRUPT);
	}
	return r;
}

int qcow2_check(struct blk *b, unsigned fix, struct blk_check_result *res)
{
	memset(res, 0, sizeof(*res));
	if (strcmp(blk_format_name(b), "qcow2")) {
		errno = ENOTSUP;
		return kite_error("%s: not a qcow2 image", blk_filename(b));
	}
	struct qcow2 *q = Q(b);
	unsigned repair = fix & (BLK_CHECK_FIX_LEAKS | BLK_CHECK_FIX_ERRORS);
	if (repair && !blk_is_writable(b)) {
		errno = EACCES;
		return kite_error("%s: repairing needs the image open read-write", b->filename);
	}
	if (blk_is_writable(b) && qcow2_flush_all(b) < 0) {
		errno = EIO;
		return -1;
	}
	struct qcow2_chk c = {.b = b, .q = q, .quiet = (fix & QCOW2_CHECK_QUIET) != 0};
	int r = run_check(&c, repair, res);
	free(c.imrt.buf);
	if (blk_is_writable(b)) {
		/* what the check wrote went around the caches and the metadata map */
		qcow2_meta_invalidate(q);
		if (r == 0 && qcow2_flush_all(b) < 0)
			r = chk_errno();
	}
	if (r < 0) {
		errno = -r;
		return -1;
	}
	return 0;
}

int qcow2_check_blk(struct blk *b, unsigned fix, struct blk_check_result *res)
{
	if (qcow2_check(b, fix, res) == 0)
		return 0;
	return kite_error("Check failed: %s", strerror(errno ? errno : EIO));
}
