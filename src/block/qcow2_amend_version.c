/* qemu-img amend -o compat=: the v2 <-> v3 header change, as QEMU 7.2's qcow2_upgrade()
 * and qcow2_downgrade() make it. v3 carries the feature name table, v2 none; an upgrade
 * first rewrites a snapshot table whose entries lack the fields v3 requires (the disk size
 * and 64-bit VM state size), a downgrade first expands the zero clusters v2 cannot hold. The
 * header is written last, in one write. */
#include "block/qcow2_int.h"
#include "util/err.h"

#include <stdlib.h>
#include <string.h>

static int find_ext(const struct qcow2 *q, uint32_t type)
{
	for (int i = 0; i < q->nb_exts; i++)
		if (q->exts[i].type == type)
			return i;
	return -1;
}

/* Takes the feature table out of the header extensions (moved last, not counted). */
static int hide_features(struct qcow2 *q)
{
	int i = find_ext(q, QCOW2_EXT_FEATURES);
	if (i < 0)
		return 0;
	struct qcow2_ext x = q->exts[i];
	memmove(&q->exts[i], &q->exts[i + 1], sizeof(x) * (size_t)(q->nb_exts - i - 1));
	q->exts[--q->nb_exts] = x;
	return 1;
}

/* QEMU's own feature table, first among the extensions (after the backing format). */
static int add_features(struct qcow2 *q)
{
	if (hide_features(q))
		free(q->exts[q->nb_exts].data);
	if (q->cluster_size <= QCOW2_FEATURE_TABLE_MIN_CLUSTER)
		return 0; /* QEMU writes none with small clusters */
	struct qcow2_ext *n = realloc(q->exts, sizeof(*n) * (size_t)(q->nb_exts + 1));
	if (!n)
		return kite_error("out of memory");
	q->exts = n;
	uint8_t *ft = malloc(QCOW2_FEATURE_TABLE_BYTES);
	if (!ft)
		return kite_error("out of memory");
	qcow2_feature_table(ft);
	memmove(&q->exts[1], &q->exts[0], sizeof(*n) * (size_t)q->nb_exts);
	q->exts[0] = (struct qcow2_ext){QCOW2_EXT_FEATURES, QCOW2_FEATURE_TABLE_BYTES, ft};
	q->nb_exts++;
	return 0;
}

/* A snapshot's extra data as QEMU writes it: 64-bit VM state size, disk size, icount, then
 * whatever followed them. */
static int v3_extra(struct qcow2_snapshot *s)
{
	uint32_t size = s->extra_size > 24 ? s->extra_size : 24;
	uint8_t *e = calloc(1, size);
	if (!e)
		return kite_error("out of memory");
	if (s->extra_size > 24)
		memcpy(e + 24, s->extra + 24, s->extra_size - 24);
	put_be64(e, s->vm_state_size);
	put_be64(e + 8, s->disk_size);
	put_be64(e + 16, s->icount);
	free(s->extra);
	s->extra = e;
	s->extra_size = size;
	return 0;
}

static int upgrade_snapshots(struct blk *b)
{
	struct qcow2 *q = Q(b);
	bool needed = false;
	for (uint32_t i = 0; i < q->nb_snapshots; i++)
		needed |= q->snaps[i].extra_size < 16;
	if (!needed)
		return 0;
	for (uint32_t i = 0; i < q->nb_snapshots; i++)
		if (v3_extra(&q->snaps[i]) < 0)
			return -1;
	uint64_t old, old_size;
	if (qcow2_write_snapshot_table(b, q->snaps, q->nb_snapshots, &old, &old_size) < 0)
		return -1;
	if (old_size && qcow2_update_refcount(b, old, old_size, -1) < 0)
		return -1;
	return qcow2_flush_all(b);
}

int qcow2_upgrade(struct blk *b, struct qcow2_amend_status *st)
{
	struct qcow2 *q = Q(b);
	qcow2_amend_report(st, 0, 2);
	if (upgrade_snapshots(b) < 0)
		return -1;
	qcow2_amend_report(st, 1, 2);
	if (add_features(q) < 0)
		return -1;
	q->version = 3;
	q->header_length = 112;
	if (qcow2_update_header_sync(b) < 0) {
		q->version = 2;
		q->header_length = 72;
		return -1;
	}
	qcow2_amend_report(st, 2, 2);
	return 0;
}

int qcow2_downgrade(struct blk *b, struct qcow2_amend_status *st)
{
	struct qcow2 *q = Q(b);
	if (qcow2_mark_clean(b) < 0 || qcow2_expand_zero_clusters(b, st) < 0)
		return -1;
	struct qcow2 old = *q;
	int hidden = hide_features(q);
	q->version = 2;
	q->header_length = 72;
	q->incompat = q->compat = q->autoclear = 0;
	q->compression_type = 0; /* zstd only without compressed clusters (checked) */
	if (qcow2_update_header_sync(b) < 0) {
		q->version = old.version;
		q->header_length = old.header_length;
		q->incompat = old.incompat;
		q->compat = old.compat;
		q->autoclear = old.autoclear;
		q->compression_type = old.compression_type;
		q->nb_exts += hidden;
		return -1;
	}
	if (hidden)
		free(q->exts[q->nb_exts].data);
	free(q->hdr_tail);
	q->hdr_tail = NULL;
	return 0;
}
