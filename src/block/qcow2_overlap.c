/* Overlap checks: no data write may land on qcow2 metadata, whatever hostile L2 entries
 * or refcounts say. Fixed tables are checked by range; L2 tables and refcount blocks,
 * which can be many, through a bitmap over host clusters built on the first write and
 * kept up to date as tables are allocated and freed. */
#include "block/qcow2_int.h"
#include "util/err.h"

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

int qcow2_check_overlap(struct blk *b, uint64_t off, uint64_t len, const char *what)
{
	struct qcow2 *q = Q(b);
	const char *hit = NULL;
	uint64_t cs = q->cluster_size;
	if (!q->meta_map_clusters && build(b) < 0)
		return -1;
	if (overlaps(off, len, 0, cs))
		hit = "the header";
	else if (overlaps(off, len, q->l1_offset, (uint64_t)q->l1_size * 8))
		hit = "the active L1 table";
	else if (overlaps(off, len, q->rt_offset, (uint64_t)q->rt_clusters * cs))
		hit = "the refcount table";
	else if (overlaps(off, len, q->snapshots_offset, q->snapshots_size))
		hit = "the snapshot table";
	for (uint32_t i = 0; !hit && i < q->nb_snapshots; i++)
		if (overlaps(off, len, q->snaps[i].l1_offset, (uint64_t)q->snaps[i].l1_size * 8))
			hit = "a snapshot L1 table";
	if (!hit && len) {
		uint64_t first = off >> q->cluster_bits, last = (off + len - 1) >> q->cluster_bits;
		for (uint64_t c = first; c <= last && c < q->meta_map_clusters; c++)
			if (q->meta_map[c / 8] & (1u << (c % 8))) {
				hit = "an L2 table or refcount block";
				break;
			}
	}
	if (hit)
		return kite_error("%s: corrupt image: %s at 0x%llx would overwrite %s; refusing "
				  "to write",
				  b->filename, what, (unsigned long long)off, hit);
	return 0;
}
