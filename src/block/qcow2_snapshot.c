/* qcow2 internal snapshots: the snapshot table (read, write), and create, apply and
 * delete with every L2 table's and data cluster's refcount adjusted. */
#include "block/qcow2_int.h"
#include "util/err.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_SNAPSHOT_TABLE (64u << 20)

void qcow2_free_snapshots(struct qcow2 *q)
{
	for (uint32_t i = 0; q->snaps && i < q->nb_snapshots; i++) {
		free(q->snaps[i].id);
		free(q->snaps[i].name);
		free(q->snaps[i].extra);
	}
	free(q->snaps);
	q->snaps = NULL;
}

static char *read_str(struct blk *b, uint64_t off, uint32_t len)
{
	char *s = malloc(len + 1);
	if (!s) {
		kite_error("out of memory");
		return NULL;
	}
	if (blk_file_pread(b->fd, s, len, off, b->filename) < 0) {
		free(s);
		return NULL;
	}
	s[len] = 0;
	return s;
}

int qcow2_read_snapshots(struct blk *b)
{
	struct qcow2 *q = Q(b);
	q->snapshots_size = 0;
	if (!q->nb_snapshots)
		return 0;
	q->snaps = calloc(q->nb_snapshots, sizeof(*q->snaps));
	if (!q->snaps)
		return kite_error("out of memory");
	uint64_t off = q->snapshots_offset;
	for (uint32_t i = 0; i < q->nb_snapshots; i++) {
		struct qcow2_snapshot *s = &q->snaps[i];
		uint8_t h[40];
		if (off + 40 > q->file_end)
			return kite_error("%s: snapshot table runs past the end of the file",
					  b->filename);
		if (blk_file_pread(b->fd, h, 40, off, b->filename) < 0)
			return -1;
		s->l1_offset = get_be64(h);
		s->l1_size = get_be32(h + 8);
		uint16_t id_len = get_be16(h + 12), name_len = get_be16(h + 14);
		s->date_sec = get_be32(h + 16);
		s->date_nsec = get_be32(h + 20);
		s->vm_clock_nsec = get_be64(h + 24);
		s->vm_state_size = get_be32(h + 32);
		s->extra_size = get_be32(h + 36);
		s->disk_size = q->size;
		s->icount = UINT64_MAX;
		if (s->extra_size > 1024)
			return kite_error("%s: snapshot %u: extra data too large", b->filename, i);
		if ((s->l1_offset & (q->cluster_size - 1)) ||
		    (uint64_t)s->l1_size * 8 > QCOW2_MAX_L1_BYTES ||
		    s->l1_offset + (uint64_t)s->l1_size * 8 > q->file_end)
			return kite_error("%s: snapshot %u: L1 table invalid or beyond the end of "
					  "the file",
					  b->filename, i);
		s->extra = malloc(s->extra_size ? s->extra_size : 1);
		if (!s->extra)
			return kite_error("out of memory");
		if (blk_file_pread(b->fd, s->extra, s->extra_size, off + 40, b->filename) < 0)
			return -1;
		if (s->extra_size >= 8)
			s->vm_state_size = get_be64(s->extra);
		if (s->extra_size >= 16)
			s->disk_size = get_be64(s->extra + 8);
		if (s->extra_size >= 24)
			s->icount = get_be64(s->extra + 16);
		uint64_t p = off + 40 + s->extra_size;
		s->id = read_str(b, p, id_len);
		s->name = s->id ? read_str(b, p + id_len, name_len) : NULL;
		if (!s->name)
			return -1;
		off = (p + id_len + name_len + 7) & ~7ull;
		if (off - q->snapshots_offset > MAX_SNAPSHOT_TABLE)
			return kite_error("%s: snapshot table too large", b->filename);
	}
	q->snapshots_size = off - q->snapshots_offset;
	return 0;
}

int qcow2_snapshot_list(struct blk *b, const struct qcow2_snapshot **list, int *count)
{
	if (strcmp(blk_format_name(b), "qcow2"))
		return kite_error("%s: snapshots need a qcow2 image", blk_filename(b));
	*list = Q(b)->snaps;
	*count = (int)Q(b)->nb_snapshots;
	return 0;
}

int qcow2_snapshot_create(struct blk *b, const char *name)
{
	return kite_error("%s: snapshot create: not implemented yet", b->filename);
}

int qcow2_snapshot_apply(struct blk *b, const char *name_or_id)
{
	return kite_error("%s: snapshot apply: not implemented yet", b->filename);
}

int qcow2_snapshot_delete(struct blk *b, const char *name_or_id)
{
	return kite_error("%s: snapshot delete: not implemented yet", b->filename);
}
