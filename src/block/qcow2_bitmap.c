/* qcow2 persistent bitmaps, read only: their directory (for info) and the host clusters they
 * occupy (for check, and for the writer that drops them, see drop_autoclear in qcow2.c). kite
 * does not maintain bitmaps; they count only while the bitmaps autoclear bit is set. */
#include "block/qcow2.h"
#include "block/qcow2_int.h"
#include "util/err.h"

#include <stdlib.h>
#include <string.h>

#define BITMAP_DIR_MAX	 (64u << 20) /* QEMU's limit on the directory size */
#define BITMAP_TABLE_MAX (64u << 20) /* and on one bitmap table's */
#define BITMAPS_MAX	 65535

struct bitmaps_ext {
	uint32_t nb;
	uint64_t dsize, doff;
};

/* The bitmaps extension's fields. Returns 1 when the image has bitmaps that count (v3, the
 * autoclear bit set), 0 when it has none, -1 when the extension's fields are unusable. */
static int bitmaps_ext(struct qcow2 *q, struct bitmaps_ext *x)
{
	const struct qcow2_ext *e = NULL;
	for (int i = 0; i < q->nb_exts; i++)
		if (q->exts[i].type == QCOW2_EXT_BITMAPS)
			e = &q->exts[i];
	if (!e || q->version < 3 || !(q->autoclear & QCOW2_AUTOCLEAR_BITMAPS) || e->len < 24)
		return 0;
	x->nb = get_be32(e->data);
	x->dsize = get_be64(e->data + 8);
	x->doff = get_be64(e->data + 16);
	if (!x->nb || x->nb > BITMAPS_MAX || !x->dsize || x->dsize > BITMAP_DIR_MAX)
		return -1;
	return 1;
}

/* One directory entry's fixed part is 24 bytes, then `extra` bytes, then the name, padded
 * to 8. Returns the entry's size, or 0 when it does not fit in the `left` bytes. */
static uint64_t dir_entry_size(const uint8_t *ent, uint64_t left)
{
	if (left < 24)
		return 0;
	uint64_t name = get_be16(ent + 18), extra = get_be32(ent + 20);
	if (extra > left || 24 + extra + name > left)
		return 0;
	uint64_t size = (24 + extra + name + 7) & ~7ull;
	return size <= left ? size : 0; /* padding past the directory: not sound */
}

static uint8_t *read_dir(struct blk *b, const struct bitmaps_ext *x)
{
	uint8_t *dir = malloc(x->dsize);
	if (!dir) {
		kite_error("out of memory");
		return NULL;
	}
	if (blk_file_pread(b->fd, dir, x->dsize, x->doff, b->filename) < 0) {
		free(dir);
		return NULL;
	}
	return dir;
}

struct offsets {
	uint64_t *v;
	size_t n, cap;
};

static int offsets_add(struct offsets *o, uint64_t off)
{
	if (o->n == o->cap) {
		size_t cap = o->cap ? o->cap * 2 : 64;
		uint64_t *v = realloc(o->v, cap * sizeof(*v));
		if (!v)
			return kite_error("out of memory");
		o->v = v;
		o->cap = cap;
	}
	o->v[o->n++] = off;
	return 0;
}

static int offsets_add_range(struct offsets *o, uint64_t off, uint64_t len, uint64_t cs)
{
	for (uint64_t c = 0; c < (len + cs - 1) / cs; c++)
		if (offsets_add(o, off + c * cs) < 0)
			return -1;
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Adds one bitmap's table and data clusters. Returns 0, -1 on error, 1 when the table is not
 * sound (the caller then treats the whole directory as not sound). */
static int add_bitmap(struct blk *b, struct offsets *o, uint64_t toff, uint32_t tsize,
		      uint64_t fsize)
{
	struct qcow2 *q = Q(b);
	uint64_t cs = q->cluster_size, cmask = cs - 1, tbytes = (uint64_t)tsize * 8;
	if ((toff & cmask) || toff > fsize || tbytes > fsize - toff || tbytes > BITMAP_TABLE_MAX)
		return 1;
	if (!tsize)
		return 0;
	uint8_t *tbl = malloc(tbytes);
	if (!tbl)
		return kite_error("out of memory");
	int r = -1;
	if (blk_file_pread(b->fd, tbl, tbytes, toff, b->filename) < 0 ||
	    offsets_add_range(o, toff, tbytes, cs) < 0)
		goto out;
	r = 0;
	for (uint32_t j = 0; j < tsize && r == 0; j++) {
		uint64_t d = get_be64(tbl + (size_t)j * 8) & 0x00fffffffffffe00ull;
		if (!d)
			continue;
		if ((d & cmask) || d >= fsize)
			r = 1;
		else if (offsets_add(o, d) < 0)
			r = -1;
	}
out:
	free(tbl);
	return r;
}

int qcow2_bitmap_clusters(struct blk *b, uint64_t fsize, uint64_t **out, size_t *out_n)
{
	struct qcow2 *q = Q(b);
	*out = NULL;
	*out_n = 0;
	struct bitmaps_ext x;
	if (bitmaps_ext(q, &x) <= 0 || (x.doff & (q->cluster_size - 1)) || x.doff > fsize ||
	    x.dsize > fsize - x.doff)
		return 0;
	uint8_t *dir = read_dir(b, &x);
	if (!dir)
		return -1;
	struct offsets o = {0};
	int r = offsets_add_range(&o, x.doff, x.dsize, q->cluster_size);
	for (uint64_t i = 0, e = 0; i < x.nb && r == 0; i++) {
		uint64_t size = dir_entry_size(dir + e, x.dsize - e);
		r = size ? add_bitmap(b, &o, get_be64(dir + e), get_be32(dir + e + 8), fsize) : 1;
		e += size;
	}
	free(dir);
	if (r != 0) {
		free(o.v);
		return r < 0 ? -1 : 0; /* a directory that is not sound lists nothing */
	}
	qsort(o.v, o.n, sizeof(*o.v), cmp_u64);
	*out = o.v;
	*out_n = o.n;
	return 1;
}

int qcow2_bitmap_info(struct blk *b, struct qcow2_bitmap_info **list, int *count)
{
	*list = NULL;
	*count = 0;
	if (strcmp(blk_format_name(b), "qcow2"))
		return 0;
	struct bitmaps_ext x;
	int r = bitmaps_ext(Q(b), &x);
	if (r <= 0)
		return r ? kite_error("%s: invalid bitmaps extension", b->filename) : 0;
	uint8_t *dir = read_dir(b, &x);
	struct qcow2_bitmap_info *l = calloc(x.nb, sizeof(*l));
	if (!dir || !l) {
		if (dir && !l)
			kite_error("out of memory");
		free(dir);
		free(l);
		return -1;
	}
	uint64_t e = 0;
	for (uint32_t i = 0; i < x.nb; i++) {
		uint64_t size = dir_entry_size(dir + e, x.dsize - e);
		uint32_t flags = size ? get_be32(dir + e + 12) : 0, gbits = size ? dir[e + 17] : 0;
		uint32_t name = size ? get_be16(dir + e + 18) : 0;
		uint32_t extra = size ? get_be32(dir + e + 20) : 0;
		if (!size || gbits > 63 || name >= sizeof(l[i].name)) {
			kite_error("%s: invalid bitmap directory", b->filename);
			free(dir);
			free(l);
			return -1;
		}
		memcpy(l[i].name, dir + e + 24 + extra, name);
		l[i].granularity = 1ull << gbits;
		l[i].in_use = flags & 1;
		l[i].autoload = flags & 2;
		e += size;
	}
	free(dir);
	*list = l;
	*count = (int)x.nb;
	return 0;
}

/* What the bitmaps of `b` take in a qcow2 image of clusters of `cs` bytes, as qemu-img
 * measure reckons it: each bitmap whole (its table and data clusters), then the directory. */
int qcow2_bitmaps_size(struct blk *b, uint64_t cs, uint64_t *out)
{
	struct qcow2_bitmap_info *l;
	int n;
	*out = 0;
	if (qcow2_bitmap_info(b, &l, &n) < 0)
		return -1;
	uint64_t total = 0, dir = 0;
	for (int i = 0; i < n; i++) {
		uint64_t bits = (blk_size(b) + l[i].granularity - 1) / l[i].granularity;
		uint64_t clusters = ((bits + 7) / 8 + cs - 1) / cs;
		total += clusters * cs + (clusters * 8 + cs - 1) / cs * cs;
		dir += (24 + strlen(l[i].name) + 7) / 8 * 8;
	}
	free(l);
	*out = total + (dir + cs - 1) / cs * cs;
	return 0;
}
