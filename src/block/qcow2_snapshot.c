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

static int need_qcow2(struct blk *b, bool write)
{
	if (strcmp(blk_format_name(b), "qcow2"))
		return kite_error("%s: snapshots need a qcow2 image", blk_filename(b));
	if (write && !blk_is_writable(b))
		return kite_error("%s: the image is open read-only", blk_filename(b));
	return 0;
}

/* Adds `delta` to the refcount of every L2 table and cluster reachable from an L1 table. */
int qcow2_l1_refcounts(struct blk *b, const uint64_t *l1, uint32_t l1_size, int delta)
{
	struct qcow2 *q = Q(b);
	uint64_t cs = q->cluster_size;
	for (uint32_t i = 0; i < l1_size; i++) {
		uint64_t l2off = l1[i] & L1E_OFFSET_MASK;
		if (!l2off)
			continue;
		if ((l2off & (cs - 1)) || l2off >= q->file_end)
			return kite_error("%s: corrupt image: L2 table offset 0x%llx misaligned or "
					  "beyond the end of the file",
					  b->filename, (unsigned long long)l2off);
		for (uint64_t j = 0; j < q->l2_entries; j++) {
			uint8_t *l2 = mcache_get(b, &q->l2c, l2off, true);
			if (!l2)
				return -1;
			uint64_t e = qcow2_l2_get(q, l2, j, NULL);
			int r = 0;
			uint64_t co = e & L2E_OFFSET_MASK, cl = cs;
			if ((e & OFLAG_COMPRESSED) && qcow2_compressed_range(q, e, &co, &cl) < 0)
				co = 0;
			if (co && co >= q->file_end)
				return kite_error(
				    "%s: corrupt image: cluster at 0x%llx is beyond the "
				    "end of the file",
				    b->filename, (unsigned long long)co);
			if (co)
				r = qcow2_update_refcount(b, co, cl, delta);
			if (r < 0)
				return -1;
		}
		if (qcow2_update_refcount(b, l2off, cs, delta) < 0)
			return -1;
	}
	return 0;
}

/* Sets the COPIED flag on active L1 and L2 entries exactly where the refcount is 1. */
int qcow2_update_copied(struct blk *b)
{
	struct qcow2 *q = Q(b);
	uint64_t cs = q->cluster_size;
	for (uint32_t i = 0; i < q->l1_size; i++) {
		uint64_t l2off = q->l1[i] & L1E_OFFSET_MASK;
		if (!l2off)
			continue;
		for (uint64_t j = 0; j < q->l2_entries; j++) {
			uint8_t *l2 = mcache_get(b, &q->l2c, l2off, true);
			if (!l2)
				return -1;
			uint64_t bm, e = qcow2_l2_get(q, l2, j, &bm), rc = 0;
			if (!(e & OFLAG_COMPRESSED) && (e & L2E_OFFSET_MASK) &&
			    qcow2_get_refcount(b, (e & L2E_OFFSET_MASK) >> q->cluster_bits, &rc) <
				0)
				return -1;
			uint64_t ne = rc == 1 ? e | OFLAG_COPIED : e & ~OFLAG_COPIED;
			if (ne != e) {
				l2 = mcache_get(b, &q->l2c, l2off, true);
				if (!l2)
					return -1;
				qcow2_l2_set(q, l2, j, ne, bm);
				mcache_dirty(&q->l2c, l2);
			}
		}
		uint64_t rc;
		if (qcow2_get_refcount(b, l2off >> q->cluster_bits, &rc) < 0)
			return -1;
		uint64_t ne = rc == 1 ? q->l1[i] | OFLAG_COPIED : q->l1[i] & ~OFLAG_COPIED;
		if (ne != q->l1[i]) {
			q->l1[i] = ne;
			uint8_t v[8];
			put_be64(v, ne);
			if (blk_file_pwrite(b->fd, v, 8, q->l1_offset + (uint64_t)i * 8,
					    b->filename) < 0)
				return -1;
		}
		(void)cs;
	}
	return qcow2_flush_all(b);
}

int qcow2_write_snapshot_table(struct blk *b, struct qcow2_snapshot *snaps, uint32_t n,
			       uint64_t *old_off, uint64_t *old_size)
{
	struct qcow2 *q = Q(b);
	uint64_t cs = q->cluster_size, size = 0;
	for (uint32_t i = 0; i < n; i++)
		size +=
		    (40 + snaps[i].extra_size + strlen(snaps[i].id) + strlen(snaps[i].name) + 7) &
		    ~7ull;
	uint8_t *t = calloc(1, size ? size : 1);
	if (!t)
		return kite_error("out of memory");
	uint64_t p = 0;
	for (uint32_t i = 0; i < n; i++) {
		struct qcow2_snapshot *s = &snaps[i];
		size_t il = strlen(s->id), nl = strlen(s->name);
		put_be64(t + p, s->l1_offset);
		put_be32(t + p + 8, s->l1_size);
		put_be16(t + p + 12, (uint16_t)il);
		put_be16(t + p + 14, (uint16_t)nl);
		put_be32(t + p + 16, s->date_sec);
		put_be32(t + p + 20, s->date_nsec);
		put_be64(t + p + 24, s->vm_clock_nsec);
		put_be32(t + p + 32,
			 s->vm_state_size > UINT32_MAX ? 0 : (uint32_t)s->vm_state_size);
		put_be32(t + p + 36, s->extra_size);
		memcpy(t + p + 40, s->extra, s->extra_size);
		memcpy(t + p + 40 + s->extra_size, s->id, il);
		memcpy(t + p + 40 + s->extra_size + il, s->name, nl);
		p += (40 + s->extra_size + il + nl + 7) & ~7ull;
	}
	int64_t off = 0;
	int r = 0;
	if (size) {
		off = qcow2_alloc_clusters(b, (size + cs - 1) / cs);
		r = off < 0 ? -1 : 0;
		if (r == 0)
			r = qcow2_sync_refcounts(b);
		/* metadata the allocation did not know of stays (the new clusters leak) */
		if (r == 0)
			r = qcow2_check_overlap(b, (uint64_t)off, size, "snapshot table");
		if (r == 0)
			r = blk_file_pwrite(b->fd, t, size, (uint64_t)off, b->filename);
		if (r == 0 && blk_sync(b) < 0)
			r = -1;
	}
	free(t);
	if (r < 0)
		return -1;
	uint8_t h[12];
	put_be32(h, n);
	put_be64(h + 4, (uint64_t)off);
	if (blk_file_pwrite(b->fd, h, 12, 60, b->filename) < 0)
		return -1;
	if (blk_sync(b) < 0)
		return -1;
	*old_off = q->snapshots_offset;
	*old_size = q->snapshots_size;
	q->snapshots_offset = (uint64_t)off;
	q->snapshots_size = size;
	return 0;
}

/* Writes the snapshot table for `snaps` into new clusters and points the header at it;
 * the old table's clusters are freed. */
static int write_table(struct blk *b, struct qcow2_snapshot *snaps, uint32_t n)
{
	uint64_t old, oldsize;
	if (qcow2_write_snapshot_table(b, snaps, n, &old, &oldsize) < 0)
		return -1;
	if (oldsize && qcow2_update_refcount(b, old, oldsize, -1) < 0)
		return -1;
	return 0;
}

int qcow2_find_snapshot(struct blk *b, const char *name_or_id)
{
	struct qcow2 *q = Q(b);
	for (uint32_t i = 0; i < q->nb_snapshots; i++)
		if (!strcmp(q->snaps[i].name, name_or_id))
			return (int)i;
	for (uint32_t i = 0; i < q->nb_snapshots; i++)
		if (!strcmp(q->snaps[i].id, name_or_id))
			return (int)i;
	return kite_error("%s: snapshot '%s' not found", b->filename, name_or_id);
}

int qcow2_snapshot_list_blk(struct blk *b, struct blk_snapshot **list, int *count)
{
	const struct qcow2_snapshot *sn;
	int n;
	if (qcow2_snapshot_list(b, &sn, &n) < 0)
		return -1;
	if (n == 0)
		return 0;
	struct blk_snapshot *out = calloc((size_t)n, sizeof(*out));
	if (!out)
		return kite_error("out of memory");
	for (int i = 0; i < n; i++)
		out[i] = (struct blk_snapshot){.id = sn[i].id,
					       .name = sn[i].name,
					       .date_sec = sn[i].date_sec,
					       .date_nsec = sn[i].date_nsec,
					       .vm_clock_nsec = sn[i].vm_clock_nsec,
					       .vm_state_size = sn[i].vm_state_size,
					       .icount = sn[i].icount};
	*list = out;
	*count = n;
	return 0;
}

int qcow2_snapshot_create(struct blk *b, const char *name)
{
	return qcow2_snapshot_create_vm(b, name, 0, 0);
}

int qcow2_snapshot_create_vm(struct blk *b, const char *name, uint64_t vm_state_size,
			     uint64_t vm_clock_nsec)
{
	if (need_qcow2(b, true) < 0)
		return -1;
	struct qcow2 *q = Q(b);
	uint64_t cs = q->cluster_size;
	if (q->refcount_bits < 2)
		return kite_error("%s: snapshots need refcounts of 2 bits or more (the image has "
				  "refcount_bits=1)",
				  b->filename);
	if (qcow2_has_data_file(q)) /* QEMU's -ENOTSUP, as qemu-img words it */
		return kite_error("Could not create snapshot '%s': -95 (Operation not supported)",
				  name);
	if (strlen(name) > 65535 || q->nb_snapshots >= QCOW2_MAX_SNAPSHOTS)
		return kite_error("%s: cannot add snapshot '%s'", b->filename, name);
	if (qcow2_mark_dirty(b) < 0 || qcow2_flush_all(b) < 0)
		return -1;
	/* The snapshot's L1: a copy of the active one without COPIED flags. */
	uint64_t l1bytes = (uint64_t)q->l1_size * 8;
	uint8_t *l1 = calloc(1, l1bytes ? l1bytes : 8);
	if (!l1)
		return kite_error("out of memory");
	for (uint32_t i = 0; i < q->l1_size; i++)
		put_be64(l1 + i * 8, q->l1[i] & ~OFLAG_COPIED);
	int64_t l1off = 0;
	int r = 0;
	if (l1bytes) {
		l1off = qcow2_alloc_clusters(b, (l1bytes + cs - 1) / cs);
		r = l1off < 0 ? -1 : 0;
	}
	/* References first, then the tables that make them real. */
	if (r == 0)
		r = qcow2_l1_refcounts(b, q->l1, q->l1_size, 1);
	if (r == 0)
		r = qcow2_sync_refcounts(b);
	if (r == 0)
		r = qcow2_update_copied(b);
	if (r == 0 && l1bytes)
		r = blk_file_pwrite(b->fd, l1, l1bytes, (uint64_t)l1off, b->filename);
	free(l1);
	if (r < 0)
		return -1;

	uint64_t maxid = 0;
	for (uint32_t i = 0; i < q->nb_snapshots; i++) {
		uint64_t v = strtoull(q->snaps[i].id, NULL, 10);
		if (v > maxid)
			maxid = v;
	}
	struct qcow2_snapshot *ns = calloc(q->nb_snapshots + 1, sizeof(*ns));
	if (!ns)
		return kite_error("out of memory");
	if (q->nb_snapshots)
		memcpy(ns, q->snaps, sizeof(*ns) * q->nb_snapshots);
	struct qcow2_snapshot *s = &ns[q->nb_snapshots];
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	char id[24];
	snprintf(id, sizeof(id), "%llu", (unsigned long long)maxid + 1);
	s->id = strdup(id);
	s->name = strdup(name);
	s->l1_offset = (uint64_t)l1off;
	s->l1_size = q->l1_size;
	s->date_sec = (uint32_t)now.tv_sec;
	s->date_nsec = (uint32_t)(now.tv_nsec / 1000 * 1000); /* QEMU's clock: microseconds */
	s->vm_state_size = vm_state_size;
	s->vm_clock_nsec = vm_clock_nsec;
	s->disk_size = q->size;
	s->icount = 0; /* qemu-img snapshot -c records no instruction count: 0, not "none" */
	s->extra_size = 24;
	s->extra = calloc(1, 24);
	if (!s->id || !s->name || !s->extra) {
		free(s->id);
		free(s->name);
		free(s->extra);
		free(ns);
		return kite_error("out of memory");
	}
	put_be64(s->extra, vm_state_size);
	put_be64(s->extra + 8, q->size);
	put_be64(s->extra + 16, s->icount);
	if (write_table(b, ns, q->nb_snapshots + 1) < 0) {
		free(s->id);
		free(s->name);
		free(s->extra);
		free(ns);
		return -1;
	}
	free(q->snaps);
	q->snaps = ns;
	q->nb_snapshots++;
	return qcow2_flush_all(b);
}

int qcow2_snapshot_read_l1(struct blk *b, const struct qcow2_snapshot *s, uint64_t **out)
{
	uint64_t *l1 = calloc(s->l1_size ? s->l1_size : 1, 8);
	if (!l1)
		return kite_error("out of memory");
	if (blk_file_pread(b->fd, l1, (size_t)s->l1_size * 8, s->l1_offset, b->filename) < 0) {
		free(l1);
		return -1;
	}
	for (uint32_t i = 0; i < s->l1_size; i++)
		l1[i] = get_be64((uint8_t *)&l1[i]) & ~OFLAG_COPIED;
	*out = l1;
	return 0;
}

/* The snapshot that `id` and `name` both name (either may be NULL), as qemu-img convert -l
 * finds it; -1 if none. */
static int match_snapshot(const struct qcow2 *q, const char *id, const char *name)
{
	for (uint32_t i = 0; (id || name) && i < q->nb_snapshots; i++)
		if ((!id || !strcmp(q->snaps[i].id, id)) &&
		    (!name || !strcmp(q->snaps[i].name, name)))
			return (int)i;
	return -1;
}

int qcow2_load_snapshot(struct blk *b, const char *id, const char *name)
{
	struct qcow2 *q = Q(b);
	if (b->flags & BLK_O_RDWR)
		return kite_error("%s: a snapshot is loaded read-only", b->filename);
	int idx = match_snapshot(q, id, name);
	if (idx < 0)
		return 1;
	uint64_t *sl1;
	if (qcow2_snapshot_read_l1(b, &q->snaps[idx], &sl1) < 0)
		return -1;
	for (int i = 0; i < q->l2c.slots; i++)
		mcache_forget(&q->l2c, q->l2c.e[i].off);
	free(q->l1);
	q->l1 = sl1;
	q->l1_size = q->snaps[idx].l1_size;
	q->cz_off = 0;
	return 0;
}

int qcow2_snapshot_apply(struct blk *b, const char *name_or_id)
{
	if (need_qcow2(b, true) < 0 || qcow2_bitmaps_forbid_revert(b) < 0)
		return -1;
	struct qcow2 *q = Q(b);
	int idx = qcow2_find_snapshot(b, name_or_id);
	if (idx < 0)
		return -1;
	struct qcow2_snapshot *s = &q->snaps[idx];
	uint64_t *sl1;
	if (qcow2_mark_dirty(b) < 0 || qcow2_flush_all(b) < 0 ||
	    qcow2_snapshot_read_l1(b, s, &sl1) < 0)
		return -1;
	int r = 0;
	if (s->l1_size > q->l1_size)
		r = qcow2_grow_l1(b, s->l1_size);
	/* The snapshot's tree gains the active reference before the old tree loses it. */
	if (r == 0)
		r = qcow2_l1_refcounts(b, sl1, s->l1_size, 1);
	if (r == 0)
		r = qcow2_sync_refcounts(b);
	uint64_t *old = NULL;
	uint32_t old_size = q->l1_size;
	if (r == 0) {
		old = malloc((size_t)old_size * 8 + 8);
		uint8_t *disk = calloc(1, (size_t)old_size * 8 + 8);
		if (!old || !disk)
			r = kite_error("out of memory");
		for (uint32_t i = 0; r == 0 && i < old_size; i++) {
			old[i] = q->l1[i];
			q->l1[i] = i < s->l1_size ? sl1[i] : 0;
			put_be64(disk + i * 8, q->l1[i]);
		}
		for (int i = 0; r == 0 && i < q->l2c.slots; i++)
			mcache_forget(&q->l2c, q->l2c.e[i].off);
		if (r == 0)
			r = blk_file_pwrite(b->fd, disk, (size_t)old_size * 8, q->l1_offset,
					    b->filename);
		if (r == 0 && blk_sync(b) < 0)
			r = -1;
		free(disk);
	}
	if (r == 0)
		r = qcow2_l1_refcounts(b, old, old_size, -1);
	if (r == 0 && s->disk_size != q->size) {
		uint8_t v[8];
		put_be64(v, s->disk_size);
		r = blk_file_pwrite(b->fd, v, 8, 24, b->filename);
		if (r == 0) {
			q->size = s->disk_size;
			b->size = s->disk_size;
		}
	}
	free(old);
	free(sl1);
	q->cz_off = 0;
	qcow2_meta_invalidate(q);
	if (r == 0)
		r = qcow2_update_copied(b);
	return r;
}

int qcow2_snapshot_delete(struct blk *b, const char *name_or_id)
{
	if (need_qcow2(b, true) < 0)
		return -1;
	struct qcow2 *q = Q(b);
	int idx = qcow2_find_snapshot(b, name_or_id);
	if (idx < 0)
		return -1;
	if (qcow2_mark_dirty(b) < 0 || qcow2_flush_all(b) < 0)
		return -1;
	struct qcow2_snapshot gone = q->snaps[idx];
	uint64_t *sl1;
	if (qcow2_snapshot_read_l1(b, &gone, &sl1) < 0)
		return -1;
	memmove(&q->snaps[idx], &q->snaps[idx + 1],
		sizeof(*q->snaps) * (q->nb_snapshots - (uint32_t)idx - 1));
	q->nb_snapshots--;
	/* Unlink the snapshot first: a crash after this leaks its clusters, no worse. */
	int r = write_table(b, q->snaps, q->nb_snapshots);
	if (r == 0)
		r = qcow2_l1_refcounts(b, sl1, gone.l1_size, -1);
	if (r == 0)
		r = qcow2_update_refcount(b, gone.l1_offset, (uint64_t)gone.l1_size * 8, -1);
	free(sl1);
	free(gone.id);
	free(gone.name);
	free(gone.extra);
	qcow2_meta_invalidate(q);
	if (r == 0)
		r = qcow2_update_copied(b);
	return r;
}
