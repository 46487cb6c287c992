/* Overlap checks: no data write may land on qcow2 metadata, whatever hostile L2 entries
 * or refcounts say. Fixed tables are checked by range; L2 tables and refcount blocks,
 * which can be many, through a bitmap over host clusters built on the first write and
 * kept up to date as tables are allocated and freed. */
#include "block/qcow2_int.h"
#include "util/err.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return alen && blen && a < b + blen && b < a + alen;
}

static int map_grow(struct qcow2 *q, uint64_t clusters)
{
	if (clusters <= q->meta_map_clusters)
		return 0;
	uint64_t n = clusters + clusters / 4 + 64;
	uint8_t *m = realloc(q->meta_map, (n + 7) / 8);
	if (!m)
		return -1;
	memset(m + (q->meta_map_clusters + 7) / 8, 0, (n + 7) / 8 - (q->meta_map_clusters + 7) / 8);
	q->meta_map = m;
	q->meta_map_clusters = n;
	return 0;
}

static void map_set(struct qcow2 *q, uint64_t off)
{
	uint64_t c = off >> q->cluster_bits;
	/* A table past the end of the file is no table (reading it fails): no bit. */
	if (!off || c > (q->file_end >> q->cluster_bits) || map_grow(q, c + 1) < 0)
		return;
	q->meta_map[c / 8] |= (uint8_t)(1u << (c % 8));
}

void qcow2_meta_mark(struct qcow2 *q, uint64_t off, bool is_meta)
{
	uint64_t c = off >> q->cluster_bits;
	if (!q->meta_map_clusters)
		return; /* built from the tables when first needed */
	if (is_meta)
		map_set(q, off);
	else if (c < q->meta_map_clusters)
		q->meta_map[c / 8] &= (uint8_t) ~(1u << (c % 8));
}

void qcow2_meta_invalidate(struct qcow2 *q)
{
	free(q->meta_map);
	q->meta_map = NULL;
	q->meta_map_clusters = 0;
}

static int build(struct blk *b)
{
	struct qcow2 *q = Q(b);
	if (map_grow(q, (q->file_end >> q->cluster_bits) + 1) < 0)
		return kite_error("out of memory");
	for (uint32_t i = 0; i < q->l1_size; i++)
		map_set(q, q->l1[i] & L1E_OFFSET_MASK);
	for (uint64_t i = 0; i < q->rt_entries; i++)
		map_set(q, q->rt[i] & RTE_OFFSET_MASK);
	for (uint32_t s = 0; s < q->nb_snapshots; s++) {
		const struct qcow2_snapshot *sn = &q->snaps[s];
		uint64_t *l1 = calloc(sn->l1_size ? sn->l1_size : 1, 8);
		if (!l1)
			return kite_error("out of memory");
		if (blk_file_pread(b->fd, l1, (size_t)sn->l1_size * 8, sn->l1_offset, b->filename) <
		    0) {
			free(l1);
			return -1;
		}
		for (uint32_t i = 0; i < sn->l1_size; i++)
			map_set(q, get_be64((uint8_t *)&l1[i]) & L1E_OFFSET_MASK);
		free(l1);
	}
	return 0;
}

/* The tables at fixed places: the header, the active L1, refcount and snapshot tables, and
 * the snapshots' L1 tables. */
static const char *fixed_table_hit(const struct qcow2 *q, uint64_t off, uint64_t len)
{
	const char *hit = NULL;
	uint64_t cs = q->cluster_size;
	if (overlaps(off, len, 0, cs))
		hit = "the header";
	else if (overlaps(off, len, q->l1_offset, (uint64_t)q->l1_size * 8))
		hit = "the active L1 table";
	else if (overlaps(off, len, q->rt_offset, (uint64_t)q->rt_clusters * cs))
		hit = "the refcount table";
	else if (overlaps(off, len, q->snapshots_offset, q->snapshots_size))
		hit = "the snapshot table";
	else if (overlaps(off, len, q->crypto_hdr_off, q->crypto_hdr_len))
		hit = "the encryption header";
	for (uint32_t i = 0; !hit && i < q->nb_snapshots; i++)
		if (overlaps(off, len, q->snaps[i].l1_offset, (uint64_t)q->snaps[i].l1_size * 8))
			hit = "a snapshot L1 table";
	return hit;
}

static int refuse(struct blk *b, uint64_t off, const char *what, const char *hit)
{
	return kite_error("%s: corrupt image: %s at 0x%llx would overwrite %s; refusing to write",
			  b->filename, what, (unsigned long long)off, hit);
}

static bool hits_l2_table(const struct qcow2 *q, uint64_t off, uint64_t len)
{
	for (uint32_t i = 0; i < q->l1_size; i++) {
		uint64_t l2 = q->l1[i] & L1E_OFFSET_MASK;
		if (l2 && overlaps(off, len, l2, q->cluster_size))
			return true;
	}
	return false;
}

static bool hits_refcount_block(const struct qcow2 *q, uint64_t off, uint64_t len)
{
	for (uint64_t i = 0; i < q->rt_entries; i++) {
		uint64_t rb = q->rt[i] & RTE_OFFSET_MASK;
		if (rb && overlaps(off, len, rb, q->cluster_size))
			return true;
	}
	return false;
}

/* QEMU's qcow2_check_metadata_overlap() with its default checks ("cached"): the name of
 * the first metadata the write would hit, or NULL. `into_l2`: the write goes into an L2
 * table, which may then hit L2 tables. */
static const char *qemu_overlap(const struct qcow2 *q, uint64_t off, uint64_t len, bool into_l2)
{
	uint64_t cs = q->cluster_size;
	if (!len)
		return NULL;
	if (off < cs)
		return "qcow2_header";
	uint64_t start = off & ~(cs - 1), size = ((off - start + len + cs - 1) & ~(cs - 1));
	if (overlaps(start, size, q->l1_offset, (uint64_t)q->l1_size * 8))
		return "active L1 table";
	if (overlaps(start, size, q->rt_offset, q->rt_entries * 8))
		return "refcount table";
	if (overlaps(start, size, q->snapshots_offset, q->snapshots_size))
		return "snapshot table";
	for (uint32_t i = 0; i < q->nb_snapshots; i++)
		if (overlaps(start, size, q->snaps[i].l1_offset, (uint64_t)q->snaps[i].l1_size * 8))
			return "inactive L1 table";
	if (!into_l2 && hits_l2_table(q, start, size))
		return "active L2 table";
	if (hits_refcount_block(q, start, size))
		return "refcount block";
	return NULL;
}

/* What qemu-img check does when one of its repairs would overwrite metadata: the image is
 * marked corrupt (once) and the write refused. */
static int signal_corruption(struct blk *b, const char *hit)
{
	struct qcow2 *q = Q(b);
	if (!(q->incompat & QCOW2_INCOMPAT_CORRUPT)) {
		fprintf(stderr,
			"qcow2: Marking image as corrupt: Preventing invalid write on metadata "
			"(overlaps with %s); further corruption events will be suppressed\n",
			hit);
		if (qcow2_set_incompat(b, q->incompat | QCOW2_INCOMPAT_CORRUPT) == 0)
			blk_sync(b);
	}
	errno = EIO;
	return -1;
}

int qcow2_check_overlap(struct blk *b, uint64_t off, uint64_t len, const char *what)
{
	struct qcow2 *q = Q(b);
	if (b->flags & BLK_O_CHECK) {
		const char *hit = qemu_overlap(q, off, len, false);
		return hit ? signal_corruption(b, hit) : 0;
	}
	if (!q->meta_map_clusters && build(b) < 0)
		return -1;
	const char *hit = fixed_table_hit(q, off, len);
	if (!hit && len) {
		uint64_t first = off >> q->cluster_bits, last = (off + len - 1) >> q->cluster_bits;
		for (uint64_t c = first; c <= last && c < q->meta_map_clusters; c++)
			if (q->meta_map[c / 8] & (1u << (c % 8))) {
				hit = "an L2 table or refcount block";
				break;
			}
	}
	return hit ? refuse(b, off, what, hit) : 0;
}

int qcow2_check_overlap_l2(struct blk *b, uint64_t off, uint64_t len, const char *what)
{
	const char *hit = qemu_overlap(Q(b), off, len, true);
	if (!hit)
		return 0;
	return (b->flags & BLK_O_CHECK) ? signal_corruption(b, hit) : refuse(b, off, what, hit);
}
