/* qcow2 check, the counting half: every reference the header, the active and the
 * snapshots' L1/L2 tables, the snapshot table, the refcount structure and the bitmaps make,
 * with QEMU's checks of each entry on the way (reserved bits, alignment, subcluster
 * bitmaps) and its repairs (a misaligned preallocated cluster becomes a zero cluster; a
 * refcount block past the end of the file gets the file grown under it). Also the check of
 * the COPIED flags against the stored refcounts. */
#include "block/qcow2_check_int.h"
#include "util/err.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* What an L2 entry is, as QEMU's qcow2_get_cluster_type() says (extended L2 entries have
 * no zero flag: their bitmap says it). */
enum chk_ctype { CT_UNALLOC, CT_ZERO_PLAIN, CT_ZERO_ALLOC, CT_NORMAL, CT_COMPRESSED };

static enum chk_ctype cluster_type(const struct qcow2 *q, uint64_t e)
{
	if (e & OFLAG_COMPRESSED)
		return CT_COMPRESSED;
	if ((e & OFLAG_ZERO) && !q->extended_l2)
		return (e & L2E_OFFSET_MASK) ? CT_ZERO_ALLOC : CT_ZERO_PLAIN;
	return qcow2_entry_has_host(q, e) ? CT_NORMAL : CT_UNALLOC;
}

static uint64_t compressed_offset_mask(const struct qcow2 *q)
{
	return (1ull << (62 - (q->cluster_bits - 8))) - 1;
}

/* The host bytes of a compressed cluster: whole 512-byte sectors from its offset. */
static void compressed_range(const struct qcow2 *q, uint64_t e, uint64_t *off, uint64_t *len)
{
	uint32_t shift = 62 - (q->cluster_bits - 8);
	uint64_t sectors = ((e >> shift) & ((1ull << (q->cluster_bits - 8)) - 1)) + 1;
	*off = e & compressed_offset_mask(q);
	*len = sectors * 512 - (*off & 511);
}

/* Turns entry `i` of the L2 table at `l2_off` (its copy in `l2`) into a zero cluster without
 * a host cluster and writes it. Moves one corruption to the fixed ones. */
static int fix_l2_entry_by_zero(struct qcow2_chk *c, struct blk_check_result *res, uint64_t l2_off,
				uint8_t *l2, uint64_t i, bool *overlap)
{
	struct qcow2 *q = c->q;
	uint64_t esize = q->l2_entry_bytes, eoff = l2_off + i * esize, bitmap;
	qcow2_l2_get(q, l2, i, &bitmap);
	if (q->extended_l2) /* allocated subclusters read as zeros */
		qcow2_l2_set(q, l2, i, 0, (bitmap | bitmap << 32) & L2_BITMAP_ALL_ZERO);
	else
		qcow2_l2_set(q, l2, i, OFLAG_ZERO, 0);
	*overlap = qcow2_check_overlap_l2(c->b, eoff, esize, "repaired L2 entry") < 0;
	if (*overlap) {
		chk_say(c, "ERROR: Overlap check failed\n");
		res->check_errors++;
		return -EIO;
	}
	if (blk_file_pwrite(c->b->fd, l2 + i * esize, esize, eoff, c->b->filename) < 0 ||
	    blk_sync(c->b) < 0) {
		int r = chk_errno();
		chk_say(c, "ERROR: Failed to overwrite L2 table entry: %s\n", strerror(-r));
		res->check_errors++;
		return r;
	}
	mcache_forget(&q->l2c, l2_off);
	res->corruptions--;
	res->corruptions_fixed++;
	return 0;
}

struct l2_walk {
	uint64_t l2_off;
	unsigned flags, fix;
	uint64_t next_contiguous; /* fragmentation is counted within one L2 table */
};

static int check_compressed(struct qcow2_chk *c, struct blk_check_result *res,
			    const struct l2_walk *w, uint64_t i, uint64_t e, uint64_t bitmap)
{
	if (e & OFLAG_COPIED) {
		chk_say(c,
			"ERROR: coffset=0x%llx: copied flag must never be set for compressed "
			"clusters\n",
			(unsigned long long)(e & compressed_offset_mask(c->q)));
		e &= ~OFLAG_COPIED;
		res->corruptions++;
	}
	if (bitmap) {
		chk_say(c,
			"ERROR compressed cluster %llu with non-zero subcluster allocation bitmap, "
			"entry=0x%llx\n",
			(unsigned long long)i, (unsigned long long)e);
		res->corruptions++;
		return 0;
	}
	uint64_t off, len;
	compressed_range(c->q, e, &off, &len);
	int r = chk_inc_refcounts(c, res, off, len);
	if (r == 0 && (w->flags & CHK_FRAG_INFO)) {
		res->allocated_clusters++;
		res->compressed_clusters++;
		res->fragmented_clusters++; /* compressed clusters are fragmented by nature */
	}
	return r;
}

/* A cluster with a host offset (data, or preallocated zeros). Returns 1 when the entry was
 * repaired into a plain zero cluster (nothing to count), 0, or a negative errno. */
static int check_allocated(struct qcow2_chk *c, struct blk_check_result *res, struct l2_walk *w,
			   uint8_t *l2, uint64_t i, uint64_t e, uint64_t bitmap)
{
	struct qcow2 *q = c->q;
	uint64_t off = e & L2E_OFFSET_MASK;
	if ((bitmap >> 32) & bitmap) {
		res->corruptions++;
		chk_say(c,
			"ERROR offset=%llx: Allocated cluster has corrupted subcluster allocation "
			"bitmap\n",
			(unsigned long long)off);
	}
	if (off & (q->cluster_size - 1)) {
		res->corruptions++;
		bool has_data = q->extended_l2 ? (bitmap & L2_BITMAP_ALL_ALLOC) : !(e & OFLAG_ZERO);
		if (has_data) {
			chk_say(c,
				"ERROR offset=%llx: Data cluster is not properly aligned; L2 entry "
				"corrupted.\n",
				(unsigned long long)off);
		} else {
			bool fixing = w->fix & BLK_CHECK_FIX_ERRORS, overlap = false;
			chk_say(c,
				"%s offset=%llx: Preallocated cluster is not properly aligned; L2 "
				"entry corrupted.\n",
				fixing ? "Repairing" : "ERROR", (unsigned long long)off);
			if (fixing) {
				int r = fix_l2_entry_by_zero(c, res, w->l2_off, l2, i, &overlap);
				if (overlap)
					return r; /* something is badly wrong: stop this table */
				if (r == 0)
					return 1;
			}
		}
	}
	if (w->flags & CHK_FRAG_INFO) {
		res->allocated_clusters++;
		if (w->next_contiguous && off != w->next_contiguous)
			res->fragmented_clusters++;
		w->next_contiguous = off + q->cluster_size;
	}
	if (qcow2_has_data_file(q)) /* the data file's clusters are outside the refcounts */
		return 0;
	return chk_inc_refcounts(c, res, off, q->cluster_size);
}

/* QEMU's check_refcounts_l2(): the table is read as it is on disk, wherever it is. */
static int check_refcounts_l2(struct qcow2_chk *c, struct blk_check_result *res, uint64_t l2_off,
			      unsigned flags, unsigned fix)
{
	struct qcow2 *q = c->q;
	struct l2_walk w = {.l2_off = l2_off, .flags = flags, .fix = fix};
	uint8_t *l2 = malloc(q->cluster_size);
	if (!l2) {
		res->check_errors++;
		return -ENOMEM;
	}
	int r = 0;
	if (blk_file_pread(c->b->fd, l2, q->cluster_size, l2_off, c->b->filename) < 0) {
		r = chk_errno();
		chk_say(c, "ERROR: I/O error in check_refcounts_l2\n");
		res->check_errors++;
	}
	for (uint64_t i = 0; r == 0 && i < q->l2_entries; i++) {
		uint64_t bitmap, e = qcow2_l2_get(q, l2, i, &bitmap);
		enum chk_ctype t = cluster_type(q, e);
		if (t != CT_COMPRESSED && (e & L2E_STD_RESERVED_MASK)) {
			chk_say(c, "ERROR found l2 entry with reserved bits set: %llx\n",
				(unsigned long long)e);
			res->corruptions++;
		}
		if (t == CT_COMPRESSED) {
			r = check_compressed(c, res, &w, i, e, bitmap);
		} else if (t == CT_NORMAL || t == CT_ZERO_ALLOC) {
			r = check_allocated(c, res, &w, l2, i, e, bitmap);
			r = r > 0 ? 0 : r;
		} else if (t == CT_UNALLOC && (bitmap & L2_BITMAP_ALL_ALLOC)) {
			res->corruptions++;
			chk_say(c, "ERROR: Unallocated cluster has non-zero subcluster allocation "
				   "map\n");
		}
	}
	free(l2);
	return r;
}

static int read_l1(struct qcow2_chk *c, struct blk_check_result *res, uint64_t l1_off,
		   uint32_t l1_size, uint64_t **out)
{
	uint64_t *l1 = malloc((size_t)l1_size * 8);
	if (!l1) {
		res->check_errors++;
		return -ENOMEM;
	}
	if (blk_file_pread(c->b->fd, l1, (size_t)l1_size * 8, l1_off, c->b->filename) < 0) {
		int r = chk_errno();
		chk_say(c, "ERROR: I/O error in check_refcounts_l1\n");
		res->check_errors++;
		free(l1);
		return r;
	}
	for (uint32_t i = 0; i < l1_size; i++)
		l1[i] = get_be64((uint8_t *)&l1[i]);
	*out = l1;
	return 0;
}

/* QEMU's check_refcounts_l1(): the L1 table, its L2 tables and what they reference. */
static int check_refcounts_l1(struct qcow2_chk *c, struct blk_check_result *res, uint64_t l1_off,
			      uint32_t l1_size, unsigned flags, unsigned fix)
{
	struct qcow2 *q = c->q;
	if (!l1_size)
		return 0;
	uint64_t *l1 = NULL;
	int r = chk_inc_refcounts(c, res, l1_off, (uint64_t)l1_size * 8);
	if (r == 0)
		r = read_l1(c, res, l1_off, l1_size, &l1);
	if (r < 0)
		return r;
	for (uint32_t i = 0; r == 0 && i < l1_size; i++) {
		if (!l1[i])
			continue;
		if (l1[i] & L1E_RESERVED_MASK) {
			chk_say(c, "ERROR found L1 entry with reserved bits set: %llx\n",
				(unsigned long long)l1[i]);
			res->corruptions++;
		}
		uint64_t l2_off = l1[i] & L1E_OFFSET_MASK;
		r = chk_inc_refcounts(c, res, l2_off, q->cluster_size);
		if (r < 0)
			break;
		if (l2_off & (q->cluster_size - 1)) {
			chk_say(c,
				"ERROR l2_offset=%llx: Table is not cluster aligned; L1 entry "
				"corrupted\n",
				(unsigned long long)l2_off);
			res->corruptions++;
		}
		r = check_refcounts_l2(c, res, l2_off, flags, fix);
	}
	free(l1);
	return r;
}

/* A refcount block past the end of the file: the file is grown to hold it (zeros). */
static int grow_file_for_refblock(struct qcow2_chk *c, struct blk_check_result *res, uint64_t off,
				  uint64_t cluster, bool *rebuild)
{
	struct qcow2 *q = c->q;
	int r = 0;
	if (off > (uint64_t)INT64_MAX - q->cluster_size)
		r = -EINVAL;
	else if (ftruncate(c->b->fd, (off_t)(off + q->cluster_size)) < 0)
		r = -errno;
	if (r == 0)
		r = chk_refresh_file_len(c);
	uint64_t nb = (c->file_len + q->cluster_size - 1) >> q->cluster_bits;
	if (r == 0 && nb > c->imrt.nb) {
		r = imrt_resize(c, nb);
		if (r < 0) {
			res->check_errors++;
			return r;
		}
	}
	if (r == 0 && cluster >= c->imrt.nb)
		r = -EINVAL;
	if (r < 0) {
		*rebuild = true;
		chk_say(c, "ERROR could not resize image: %s\n", strerror(-r));
		return 0;
	}
	res->corruptions--;
	res->corruptions_fixed++;
	/* the new cluster is zeros and referenced once */
	return chk_inc_refcounts(c, res, off, q->cluster_size);
}

/* QEMU's check_refblocks(): each refcount block is counted and must be referenced once. */
static int check_refblocks(struct qcow2_chk *c, struct blk_check_result *res, unsigned fix,
			   bool *rebuild)
{
	struct qcow2 *q = c->q;
	for (uint64_t i = 0; i < q->rt_entries; i++) {
		uint64_t off = q->rt[i] & RTE_OFFSET_MASK, cluster = off >> q->cluster_bits;
		int r = 0;
		if (q->rt[i] & RTE_RESERVED_MASK) {
			chk_say(c, "ERROR refcount table entry %llu has reserved bits set\n",
				(unsigned long long)i);
			res->corruptions++;
			*rebuild = true;
		} else if (off & (q->cluster_size - 1)) {
			chk_say(c,
				"ERROR refcount block %llu is not cluster aligned; refcount table "
				"entry corrupted\n",
				(unsigned long long)i);
			res->corruptions++;
			*rebuild = true;
		} else if (cluster >= c->imrt.nb) {
			res->corruptions++;
			chk_say(c, "%s refcount block %llu is outside image\n",
				(fix & BLK_CHECK_FIX_ERRORS) ? "Repairing" : "ERROR",
				(unsigned long long)i);
			if (fix & BLK_CHECK_FIX_ERRORS)
				r = grow_file_for_refblock(c, res, off, cluster, rebuild);
		} else if (off) {
			r = chk_inc_refcounts(c, res, off, q->cluster_size);
			if (r == 0 && imrt_get(c, cluster) != 1) {
				chk_say(c, "ERROR refcount block %llu refcount=%llu\n",
					(unsigned long long)i,
					(unsigned long long)imrt_get(c, cluster));
				res->corruptions++;
				*rebuild = true;
			}
		}
		if (r < 0)
			return r;
	}
	return 0;
}

static int count_snapshots(struct qcow2_chk *c, struct blk_check_result *res, unsigned fix)
{
	struct qcow2 *q = c->q;
	for (uint32_t i = 0; i < q->nb_snapshots; i++) {
		const struct qcow2_snapshot *s = &q->snaps[i];
		if (s->l1_offset & (q->cluster_size - 1)) {
			chk_say(c,
				"ERROR snapshot %s (%s) l1_offset=%#llx: L1 table is not cluster "
				"aligned; snapshot table entry corrupted\n",
				s->id, s->name, (unsigned long long)s->l1_offset);
			res->corruptions++;
			continue;
		}
		if ((uint64_t)s->l1_size > QCOW2_MAX_L1_BYTES / 8) {
			chk_say(
			    c,
			    "ERROR snapshot %s (%s) l1_size=%#x: L1 table is too large; snapshot "
			    "table entry corrupted\n",
			    s->id, s->name, s->l1_size);
			res->corruptions++;
			continue;
		}
		int r = check_refcounts_l1(c, res, s->l1_offset, s->l1_size, 0, fix);
		if (r < 0)
			return r;
	}
	return chk_inc_refcounts(c, res, q->snapshots_offset, q->snapshots_size);
}

static int count_bitmaps(struct qcow2_chk *c, struct blk_check_result *res)
{
	uint64_t *list;
	size_t n;
	if (qcow2_bitmap_clusters(c->b, c->q->file_end, &list, &n) < 0) {
		res->check_errors++;
		return chk_errno();
	}
	int r = 0;
	for (size_t i = 0; r == 0 && i < n; i++)
		r = chk_inc_refcounts(c, res, list[i], c->q->cluster_size);
	free(list);
	return r;
}

/* QEMU's calculate_refcounts(). */
int chk_calculate_refcounts(struct qcow2_chk *c, struct blk_check_result *res, unsigned fix,
			    bool *rebuild)
{
	struct qcow2 *q = c->q;
	int r = chk_refresh_file_len(c);
	if (r < 0) {
		res->check_errors++;
		return r;
	}
	r = chk_inc_refcounts(c, res, 0, q->cluster_size); /* the header */
	if (r == 0)
		r = check_refcounts_l1(c, res, q->l1_offset, q->l1_size, CHK_FRAG_INFO, fix);
	if (r == 0)
		r = count_snapshots(c, res, fix);
	if (r == 0)
		r = chk_inc_refcounts(c, res, q->rt_offset, q->rt_entries * 8);
	if (r == 0 && q->crypto_hdr_len) /* the LUKS header */
		r = chk_inc_refcounts(c, res, q->crypto_hdr_off, q->crypto_hdr_len);
	if (r == 0)
		r = count_bitmaps(c, res);
	if (r == 0)
		r = check_refblocks(c, res, fix, rebuild);
	return r;
}

/* Checks (and with `repair` sets) the COPIED flags of one active L2 table's entries. */
static int copied_in_l2(struct qcow2_chk *c, struct blk_check_result *res, uint64_t l2_off,
			bool repair, uint8_t *l2)
{
	struct qcow2 *q = c->q;
	if (blk_file_pread(c->b->fd, l2, q->cluster_size, l2_off, c->b->filename) < 0) {
		int r = chk_errno();
		chk_say(c, "ERROR: Could not read L2 table: %s\n", strerror(-r));
		res->check_errors++;
		return r;
	}
	uint64_t dirty = 0;
	for (uint64_t j = 0; j < q->l2_entries; j++) {
		uint64_t bitmap, e = qcow2_l2_get(q, l2, j, &bitmap), rc;
		enum chk_ctype t = cluster_type(q, e);
		if (t != CT_NORMAL && t != CT_ZERO_ALLOC)
			continue;
		if (qcow2_has_data_file(q)) /* data file clusters: no refcounts, one user */
			rc = 1;
		else if (qcow2_get_refcount(c->b, (e & L2E_OFFSET_MASK) >> q->cluster_bits, &rc) <
			 0)
			continue; /* reported by the refcount comparison already */
		if ((rc == 1) == ((e & OFLAG_COPIED) != 0))
			continue;
		res->corruptions++;
		chk_say(c, "%s OFLAG_COPIED data cluster: l2_entry=%llx refcount=%llu\n",
			repair ? "Repairing" : "ERROR", (unsigned long long)e,
			(unsigned long long)rc);
		if (repair) {
			qcow2_l2_set(q, l2, j, rc == 1 ? e | OFLAG_COPIED : e & ~OFLAG_COPIED,
				     bitmap);
			dirty++;
		}
	}
	if (!dirty)
		return 0;
	if (qcow2_check_overlap_l2(c->b, l2_off, q->cluster_size, "repaired L2 table") < 0) {
		chk_say(c, "ERROR: Could not write L2 table; metadata overlap check failed: %s\n",
			strerror(EIO));
		res->check_errors++;
		return -EIO;
	}
	if (blk_file_pwrite(c->b->fd, l2, q->cluster_size, l2_off, c->b->filename) < 0) {
		int r = chk_errno();
		chk_say(c, "ERROR: Could not write L2 table: %s\n", strerror(-r));
		res->check_errors++;
		return r;
	}
	mcache_forget(&q->l2c, l2_off);
	res->corruptions -= dirty;
	res->corruptions_fixed += dirty;
	return 0;
}

static int write_l1_entry(struct qcow2_chk *c, uint32_t i)
{
	uint8_t v[8];
	put_be64(v, c->q->l1[i]);
	if (blk_file_pwrite(c->b->fd, v, 8, c->q->l1_offset + (uint64_t)i * 8, c->b->filename) <
		0 ||
	    blk_sync(c->b) < 0)
		return chk_errno();
	return 0;
}

/* QEMU's check_oflag_copied(): COPIED must be set exactly where the refcount is 1. With
 * leak repair only, the flags are repaired when the refcounts are known to be right. */
int chk_oflag_copied(struct qcow2_chk *c, struct blk_check_result *res, unsigned fix)
{
	struct qcow2 *q = c->q;
	bool repair =
	    (fix & BLK_CHECK_FIX_ERRORS) ||
	    ((fix & BLK_CHECK_FIX_LEAKS) && !res->check_errors && !res->corruptions && !res->leaks);
	uint8_t *l2 = malloc(q->cluster_size);
	if (!l2)
		return -ENOMEM;
	int r = 0;
	for (uint32_t i = 0; r == 0 && i < q->l1_size; i++) {
		uint64_t l1e = q->l1[i], l2_off = l1e & L1E_OFFSET_MASK, rc;
		if (!l2_off)
			continue;
		if (qcow2_get_refcount(c->b, l2_off >> q->cluster_bits, &rc) < 0)
			continue; /* reported by the refcount comparison already */
		if ((rc == 1) != ((l1e & OFLAG_COPIED) != 0)) {
			res->corruptions++;
			chk_say(c,
				"%s OFLAG_COPIED L2 cluster: l1_index=%u l1_entry=%llx "
				"refcount=%llu\n",
				repair ? "Repairing" : "ERROR", i, (unsigned long long)l1e,
				(unsigned long long)rc);
			if (repair) {
				q->l1[i] = rc == 1 ? l1e | OFLAG_COPIED : l1e & ~OFLAG_COPIED;
				r = write_l1_entry(c, i);
				if (r < 0) {
					res->check_errors++;
					break;
				}
				res->corruptions--;
				res->corruptions_fixed++;
			}
		}
		r = copied_in_l2(c, res, l2_off, repair, l2);
	}
	free(l2);
	return r;
}
