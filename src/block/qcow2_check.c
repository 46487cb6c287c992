/* qcow2 consistency check and repair (qemu-img check): rebuilds every cluster's refcount
 * from the header, tables, L1/L2 entries and snapshots, compares it with the stored one,
 * and with repair flags writes the rebuilt value back. */
#include "block/qcow2_int.h"
#include "util/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct check {
	struct blk *b;
	bool quiet;
	struct qcow2_check_result *res;
	uint32_t *ref;	/* computed refcounts (saturating) */
	uint64_t nb;	/* clusters in the file */
	uint8_t *l2buf; /* one L2 table */
};

static void inc(struct check *c, uint64_t off, uint64_t len, const char *what)
{
	struct qcow2 *q = Q(c->b);
	if (!len)
		return;
	uint64_t first = off >> q->cluster_bits, last = (off + len - 1) >> q->cluster_bits;
	for (uint64_t k = first; k <= last; k++) {
		if (k >= c->nb) {
			fprintf(stderr,
				"ERROR: %s at offset 0x%llx is beyond the end of the image file\n",
				what, (unsigned long long)(k << q->cluster_bits));
			c->res->corruptions++;
			return;
		}
		if (c->ref[k] != UINT32_MAX)
			c->ref[k]++;
	}
}

/* Walks one L1 table; `active` also checks COPIED flags and gathers statistics. */
static int walk_l1(struct check *c, const uint64_t *l1, uint32_t l1_size, bool active)
{
	struct blk *b = c->b;
	struct qcow2 *q = Q(b);
	uint64_t cs = q->cluster_size, next = 0;
	for (uint32_t i = 0; i < l1_size; i++) {
		uint64_t l2off = l1[i] & L1E_OFFSET_MASK;
		if (!l2off)
			continue;
		if (l2off & (cs - 1)) {
			fprintf(stderr,
				"ERROR: L2 table offset 0x%llx not cluster aligned; L1 entry "
				"corrupted\n",
				(unsigned long long)l2off);
			c->res->corruptions++;
			continue;
		}
		inc(c, l2off, cs, "L2 table");
		if (l2off >= q->file_end)
			continue;
		if (blk_file_pread(b->fd, c->l2buf, cs, l2off, b->filename) < 0) {
			c->res->check_errors++;
			continue;
		}
		for (uint64_t j = 0; j < q->l2_entries; j++) {
			uint64_t e = qcow2_l2_get(q, c->l2buf, j, NULL);
			enum qcow2_ctype t = qcow2_entry_type(q, e);
			if (t == QC_COMPRESSED) {
				uint64_t co, cl;
				if (qcow2_compressed_range(q, e, &co, &cl) < 0) {
					c->res->corruptions++;
					continue;
				}
				inc(c, co, cl, "compressed cluster");
				if (active) {
					c->res->allocated_clusters++;
					c->res->compressed_clusters++;
					c->res->fragmented_clusters++;
				}
				continue;
			}
			uint64_t off = e & L2E_OFFSET_MASK;
			if (!off)
				continue;
			if (off & (cs - 1)) {
				fprintf(stderr,
					"ERROR offset=%llx: Cluster is not properly aligned; L2 "
					"entry corrupted.\n",
					(unsigned long long)off);
				c->res->corruptions++;
				continue;
			}
			inc(c, off, cs, "data cluster");
			if (active) {
				c->res->allocated_clusters++;
				if (next && off != next)
					c->res->fragmented_clusters++;
				next = off + cs;
			}
		}
	}
	return 0;
}

/* Counts active entries whose COPIED flag disagrees with the stored refcount. */
static int check_copied(struct check *c, bool fixing)
{
	struct blk *b = c->b;
	struct qcow2 *q = Q(b);
	uint64_t cs = q->cluster_size;
	for (uint32_t i = 0; i < q->l1_size; i++) {
		uint64_t l2off = q->l1[i] & L1E_OFFSET_MASK, rc;
		if (!l2off || (l2off & (cs - 1)) || l2off >= q->file_end)
			continue;
		if (qcow2_get_refcount(b, l2off >> q->cluster_bits, &rc) < 0)
			return -1;
		if ((rc == 1) != ((q->l1[i] & OFLAG_COPIED) != 0)) {
			if (!c->quiet)
				fprintf(stderr,
					"%s OFLAG_COPIED L2 cluster: l1_index=%u l1_entry=%llx "
					"refcount=%llu\n",
					fixing ? "Repairing" : "ERROR", i,
					(unsigned long long)q->l1[i], (unsigned long long)rc);
			c->res->corruptions++;
		}
		if (blk_file_pread(b->fd, c->l2buf, cs, l2off, b->filename) < 0)
			return -1;
		for (uint64_t j = 0; j < q->l2_entries; j++) {
			uint64_t e = qcow2_l2_get(q, c->l2buf, j, NULL);
			uint64_t off = e & L2E_OFFSET_MASK;
			if ((e & OFLAG_COMPRESSED) || !off || (off & (cs - 1)))
				continue;
			if (qcow2_get_refcount(b, off >> q->cluster_bits, &rc) < 0)
				return -1;
			if ((rc == 1) != ((e & OFLAG_COPIED) != 0)) {
				if (!c->quiet)
					fprintf(stderr,
						"%s OFLAG_COPIED data cluster: l2_entry=%llx "
						"refcount=%llu\n",
						fixing ? "Repairing" : "ERROR",
						(unsigned long long)e, (unsigned long long)rc);
				c->res->corruptions++;
			}
		}
	}
	return 0;
}

static int compare(struct check *c, unsigned fix)
{
	struct blk *b = c->b;
	struct qcow2 *q = Q(b);
	/* As qemu-img check -r: what is found first, then what is repaired. */
	for (uint64_t k = 0; fix && !c->quiet && k < c->nb; k++) {
		uint64_t stored;
		if (qcow2_get_refcount(b, k, &stored) < 0 || stored == c->ref[k])
			continue;
		fprintf(stderr, "%s cluster %llu refcount=%llu reference=%llu\n",
			c->ref[k] < stored ? "Leaked" : "ERROR", (unsigned long long)k,
			(unsigned long long)stored, (unsigned long long)c->ref[k]);
	}
	for (uint64_t k = 0; k < c->nb; k++) {
		uint64_t stored;
		if (qcow2_get_refcount(b, k, &stored) < 0) {
			c->res->check_errors++;
			continue;
		}
		uint64_t want = c->ref[k];
		if (stored == want)
			continue;
		bool leak = want < stored;
		bool repair = leak ? (fix & QCOW2_FIX_LEAKS) : (fix & QCOW2_FIX_ERRORS);
		if (!c->quiet)
			fprintf(stderr, "%s cluster %llu refcount=%llu reference=%llu\n",
				repair ? "Repairing" : (leak ? "Leaked" : "ERROR"),
				(unsigned long long)k, (unsigned long long)stored,
				(unsigned long long)want);
		if (leak)
			c->res->leaks++;
		else
			c->res->corruptions++;
		if (repair) {
			if (qcow2_set_refcount(b, k, want) < 0)
				return -1;
			if (leak)
				c->res->leaks_fixed++;
			else
				c->res->corruptions_fixed++;
		}
	}
	(void)q;
	return 0;
}

static int collect(struct check *c)
{
	struct blk *b = c->b;
	struct qcow2 *q = Q(b);
	uint64_t cs = q->cluster_size;
	inc(c, 0, cs, "header");
	inc(c, q->l1_offset, (uint64_t)q->l1_size * 8, "active L1 table");
	if (walk_l1(c, q->l1, q->l1_size, true) < 0)
		return -1;
	for (uint32_t i = 0; i < q->nb_snapshots; i++) {
		struct qcow2_snapshot *s = &q->snaps[i];
		inc(c, s->l1_offset, (uint64_t)s->l1_size * 8, "snapshot L1 table");
		uint64_t *l1 = calloc(s->l1_size ? s->l1_size : 1, 8);
		if (!l1)
			return kite_error("out of memory");
		if (blk_file_pread(b->fd, l1, (size_t)s->l1_size * 8, s->l1_offset, b->filename) <
		    0) {
			free(l1);
			c->res->check_errors++;
			continue;
		}
		for (uint32_t k = 0; k < s->l1_size; k++)
			l1[k] = get_be64((uint8_t *)&l1[k]);
		walk_l1(c, l1, s->l1_size, false);
		free(l1);
	}
	inc(c, q->snapshots_offset, q->snapshots_size, "snapshot table");
	uint64_t *bm;
	size_t nbm;
	int r = qcow2_bitmap_clusters(b, q->file_end, &bm, &nbm);
	if (r < 0)
		return -1;
	for (size_t i = 0; i < nbm; i++)
		inc(c, bm[i], cs, "bitmap");
	free(bm);
	inc(c, q->rt_offset, (uint64_t)q->rt_clusters * cs, "refcount table");
	for (uint64_t i = 0; i < q->rt_entries; i++) {
		uint64_t off = q->rt[i] & RTE_OFFSET_MASK;
		if (off)
			inc(c, off, cs, "refcount block");
	}
	return 0;
}

int qcow2_check(struct blk *b, unsigned fix, struct qcow2_check_result *res)
{
	memset(res, 0, sizeof(*res));
	if (strcmp(blk_format_name(b), "qcow2"))
		return kite_error("%s: not a qcow2 image", blk_filename(b));
	struct qcow2 *q = Q(b);
	if (fix && !blk_is_writable(b))
		return kite_error("%s: repairing needs the image open read-write", b->filename);
	if (blk_is_writable(b) && qcow2_flush_all(b) < 0)
		return -1;
	uint64_t cs = q->cluster_size;
	struct check c = {.b = b, .res = res, .quiet = (fix & QCOW2_CHECK_QUIET) != 0};
	if (blk_file_size(b->fd, &q->file_end, b->filename) < 0)
		return -1;
	c.nb = (q->file_end + cs - 1) / cs;
	c.ref = calloc(c.nb ? c.nb : 1, sizeof(*c.ref));
	c.l2buf = malloc(cs);
	int r = -1;
	if (!c.ref || !c.l2buf) {
		kite_error("out of memory");
		goto out;
	}
	if (collect(&c) < 0)
		goto out;
	res->total_clusters = (q->size + cs - 1) / cs;
	/* Allocations made while repairing (new refcount blocks) go past everything in use. */
	uint64_t saved_hint = q->free_hint;
	if (fix)
		q->free_hint = c.nb;
	if (compare(&c, fix) < 0)
		goto out;
	if (fix && (qcow2_flush_all(b) < 0 || qcow2_apply_pending_frees(b) < 0))
		goto out;
	q->free_hint = fix ? 0 : saved_hint;
	uint64_t before = res->corruptions;
	if (check_copied(&c, (fix & QCOW2_FIX_ERRORS) != 0) < 0)
		goto out;
	if ((fix & QCOW2_FIX_ERRORS) && res->corruptions > before) {
		if (qcow2_update_copied(b) < 0)
			goto out;
		res->corruptions_fixed += res->corruptions - before;
	}
	for (uint64_t k = c.nb; k > 0; k--)
		if (c.ref[k - 1]) {
			res->image_end_offset = k * cs;
			break;
		}
	if (fix)
		qcow2_meta_invalidate(q);
	r = 0;
out:
	free(c.ref);
	free(c.l2buf);
	return r;
}
