/* qcow2 bitmap directory, writable side: loaded once and checked as QEMU checks it when it
 * opens an image, changed in memory, written back whole by qbm_commit (new clusters, then
 * the header, then the old clusters freed). */
#include "block/qcow2_bitmap_int.h"
#include "util/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DIR_ENTRY_FIXED 24

static uint64_t entry_size(uint64_t name_len)
{
	return (DIR_ENTRY_FIXED + name_len + 7) & ~7ull;
}

/* The bitmaps extension kept in q->exts, or NULL. */
static struct qcow2_ext *bitmaps_ext(struct qcow2 *q)
{
	for (int i = 0; i < q->nb_exts; i++)
		if (q->exts[i].type == QCOW2_EXT_BITMAPS)
			return &q->exts[i];
	return NULL;
}

bool qbm_present(struct qcow2 *q)
{
	return q->version >= 3 && (q->autoclear & QCOW2_AUTOCLEAR_BITMAPS) && bitmaps_ext(q);
}

struct ext_fields {
	uint32_t nb;
	uint64_t dsize, doff;
};

/* The extension's fields, checked as QEMU checks them; the reason in `why` if unusable. */
static int read_ext(struct qcow2 *q, struct ext_fields *x, char *why, size_t n)
{
	const struct qcow2_ext *e = bitmaps_ext(q);
	if (e->len != 24)
		return snprintf(why, n, "bitmaps_ext: Invalid extension length"), -1;
	x->nb = get_be32(e->data);
	x->dsize = get_be64(e->data + 8);
	x->doff = get_be64(e->data + 16);
	if (get_be32(e->data + 4))
		snprintf(why, n, "bitmaps_ext: Reserved field is not zero");
	else if (x->nb > BME_MAX_BITMAPS)
		snprintf(why, n,
			 "bitmaps_ext: Image has %u bitmaps, exceeding the QEMU supported maximum "
			 "of %u",
			 x->nb, BME_MAX_BITMAPS);
	else if (x->nb == 0)
		snprintf(why, n, "found bitmaps extension with zero bitmaps");
	else if (x->doff & (q->cluster_size - 1))
		snprintf(why, n, "bitmaps_ext: invalid bitmap directory offset");
	else if (x->dsize > BME_MAX_DIR_SIZE)
		snprintf(why, n,
			 "bitmaps_ext: bitmap directory size (%llu) exceeds the maximum supported "
			 "size (%u)",
			 (unsigned long long)x->dsize, BME_MAX_DIR_SIZE);
	else if (x->dsize == 0)
		snprintf(why, n, "Requested bitmap directory size is zero");
	else
		return 0;
	return -1;
}

/* QEMU's check_dir_entry(): what its loader refuses. */
static bool entry_sound(struct qcow2 *q, const uint8_t *e)
{
	uint64_t toff = get_be64(e), cs = q->cluster_size;
	uint32_t tsize = get_be32(e + 8), flags = get_be32(e + 12);
	unsigned type = e[16], gbits = e[17], name = get_be16(e + 18);
	if (!tsize || !toff || (toff & (cs - 1)) || tsize > BME_MAX_TABLE_SIZE ||
	    gbits > BME_MAX_GRANULARITY_BITS || gbits < BME_MIN_GRANULARITY_BITS ||
	    (flags & BME_RESERVED_FLAGS) || name > BME_MAX_NAME_SIZE || type != 1)
		return false;
	uint64_t phys = (uint64_t)tsize * cs;
	if (phys > BME_MAX_PHYS_SIZE)
		return false;
	return (flags & BME_FLAG_IN_USE) || q->size <= (phys * 8) << gbits;
}

static int add_entry(struct qbm_dir *d, const uint8_t *e, char *why, size_t n)
{
	char name[BME_MAX_NAME_SIZE + 1];
	unsigned len = get_be16(e + 18);
	memcpy(name, e + DIR_ENTRY_FIXED, len);
	name[len] = '\0';
	if (qbm_find(d, name))
		return snprintf(why, n, "Bitmap already exists: %s", name), -1;
	struct qbm *bm = qbm_append(d, name, e[17], get_be32(e + 12));
	if (!bm)
		return snprintf(why, n, "out of memory"), -1;
	bm->toff = get_be64(e);
	bm->tsize = get_be32(e + 8);
	return 0;
}

/* QEMU's bitmap_list_load(): every entry whole, sound, as many as the extension says. */
static int parse_dir(struct qcow2 *q, struct qbm_dir *d, const uint8_t *dir,
		     const struct ext_fields *x, char *why, size_t n)
{
	uint64_t e = 0;
	uint32_t count = 0;
	while (e < x->dsize) {
		if (x->dsize - e < DIR_ENTRY_FIXED)
			return snprintf(why, n, "Broken bitmap directory"), -1;
		if (++count > x->nb)
			return snprintf(why, n,
					"More bitmaps found than specified in header "
					"extension"),
			       -1;
		uint32_t extra = get_be32(dir + e + 20);
		uint64_t size =
		    (DIR_ENTRY_FIXED + (uint64_t)extra + get_be16(dir + e + 18) + 7) & ~7ull;
		if (size > x->dsize - e)
			return snprintf(why, n, "Broken bitmap directory"), -1;
		if (extra)
			return snprintf(why, n, "Bitmap extra data is not supported"), -1;
		if (!entry_sound(q, dir + e))
			return snprintf(why, n, "Bitmap '%.*s' doesn't satisfy the constraints",
					get_be16(dir + e + 18), (const char *)dir + e + 24),
			       -1;
		if (add_entry(d, dir + e, why, n) < 0)
			return -1;
		e += size;
	}
	if (count != x->nb)
		return snprintf(why, n, "Less bitmaps found than specified in header extension"),
		       -1;
	return 0;
}

static int load_dir(struct blk *b, struct qbm_dir *d, char *why, size_t n)
{
	struct qcow2 *q = Q(b);
	struct ext_fields x;
	if (!qbm_present(q))
		return 0;
	if (read_ext(q, &x, why, n) < 0)
		return -1;
	uint8_t *dir = malloc(x.dsize);
	if (!dir)
		return snprintf(why, n, "Failed to allocate space for bitmap directory"), -1;
	int r = blk_file_pread(b->fd, dir, x.dsize, x.doff, b->filename);
	if (r < 0)
		snprintf(why, n, "Failed to read bitmap directory");
	else
		r = parse_dir(q, d, dir, &x, why, n);
	free(dir);
	return r;
}

static struct qbm_dir *dir_load(struct blk *b, char *why, size_t n)
{
	struct qbm_dir *d = calloc(1, sizeof(*d));
	if (!d) {
		snprintf(why, n, "out of memory");
		return NULL;
	}
	if (load_dir(b, d, why, n) < 0) {
		qbm_dir_free(d);
		return NULL;
	}
	return d;
}

struct qbm_dir *qbm_dir_get(struct blk *b)
{
	struct qcow2 *q = Q(b);
	char why[1200];
	if (!q->bitmaps && !(q->bitmaps = dir_load(b, why, sizeof(why))))
		kite_error("Could not open '%s': %s", b->filename, why);
	return q->bitmaps;
}

struct qbm_dir *qbm_dir_get_quiet(struct blk *b, char *why, size_t n)
{
	struct qcow2 *q = Q(b);
	if (!q->bitmaps)
		q->bitmaps = dir_load(b, why, n);
	return q->bitmaps;
}

struct qbm *qbm_find(struct qbm_dir *d, const char *name)
{
	for (uint32_t i = 0; i < d->n; i++)
		if (!strcmp(d->v[i].name, name))
			return &d->v[i];
	return NULL;
}

struct qbm *qbm_append(struct qbm_dir *d, const char *name, uint32_t gbits, uint32_t flags)
{
	struct qbm *v = realloc(d->v, (d->n + 1) * sizeof(*v));
	if (!v)
		return NULL;
	d->v = v;
	struct qbm *bm = &v[d->n];
	memset(bm, 0, sizeof(*bm));
	if (!(bm->name = strdup(name)))
		return NULL;
	bm->gbits = gbits;
	bm->flags = flags;
	d->n++;
	return bm;
}

int qbm_drop_table(struct qbm_dir *d, uint64_t off, uint32_t size)
{
	struct qbm_table *t = realloc(d->drop, (d->ndrop + 1) * sizeof(*t));
	if (!t)
		return kite_error("out of memory");
	d->drop = t;
	d->drop[d->ndrop++] = (struct qbm_table){off, size};
	return 0;
}

int qbm_remove(struct qbm_dir *d, uint32_t i)
{
	struct qbm *bm = &d->v[i];
	if (bm->toff && qbm_drop_table(d, bm->toff, bm->tsize) < 0)
		return -1;
	free(bm->name);
	free(bm->bits);
	memmove(bm, bm + 1, (d->n - i - 1) * sizeof(*bm));
	d->n--;
	return 0;
}

/* Sets the extension to (nb, dsize, doff), adding it if missing; nb 0 removes it and
 * clears the autoclear bit (an image without bitmaps). */
static int set_ext(struct qcow2 *q, uint32_t nb, uint64_t dsize, uint64_t doff)
{
	struct qcow2_ext *e = bitmaps_ext(q);
	if (!nb) {
		if (e) {
			free(e->data);
			memmove(e, e + 1, (size_t)(q->exts + q->nb_exts - e - 1) * sizeof(*e));
			q->nb_exts--;
		}
		q->autoclear &= ~QCOW2_AUTOCLEAR_BITMAPS;
		return 0;
	}
	if (!e || e->len != 24) {
		uint8_t *data = malloc(24);
		if (!data)
			return kite_error("out of memory");
		if (!e) {
			struct qcow2_ext *v = realloc(q->exts, (q->nb_exts + 1) * sizeof(*v));
			if (!v) {
				free(data);
				return kite_error("out of memory");
			}
			q->exts = v;
			e = &v[q->nb_exts++];
			e->type = QCOW2_EXT_BITMAPS;
			e->data = NULL;
		}
		free(e->data);
		e->data = data;
		e->len = 24;
	}
	put_be32(e->data, nb);
	put_be32(e->data + 4, 0);
	put_be64(e->data + 8, dsize);
	put_be64(e->data + 16, doff);
	q->autoclear |= QCOW2_AUTOCLEAR_BITMAPS;
	return 0;
}

/* The directory's bytes, each entry as QEMU writes it (no extra data, type 1). */
static uint8_t *build_dir(struct qcow2 *q, const struct qbm_dir *d, uint64_t *size)
{
	uint64_t total = 0;
	for (uint32_t i = 0; i < d->n; i++)
		total += entry_size(strlen(d->v[i].name));
	uint8_t *dir = calloc(1, (total + q->cluster_size - 1) & ~(q->cluster_size - 1));
	if (!dir)
		return NULL;
	uint8_t *e = dir;
	for (uint32_t i = 0; i < d->n; i++) {
		const struct qbm *bm = &d->v[i];
		size_t len = strlen(bm->name);
		put_be64(e, bm->toff);
		put_be32(e + 8, bm->tsize);
		put_be32(e + 12, bm->flags);
		e[16] = 1;
		e[17] = (uint8_t)bm->gbits;
		put_be16(e + 18, (uint16_t)len);
		memcpy(e + DIR_ENTRY_FIXED, bm->name, len);
		e += entry_size(len);
	}
	*size = total;
	return dir;
}

static int write_dir(struct blk *b, const struct qbm_dir *d, uint64_t *doff, uint64_t *dsize)
{
	struct qcow2 *q = Q(b);
	uint8_t *dir = build_dir(q, d, dsize);
	if (!dir)
		return kite_error("out of memory");
	uint64_t clusters = (*dsize + q->cluster_size - 1) >> q->cluster_bits;
	int64_t off = *dsize > BME_MAX_DIR_SIZE ? kite_error("Bitmap directory is too large")
						: qcow2_alloc_clusters(b, clusters);
	int r = -1;
	if (off >= 0 &&
	    qcow2_check_overlap(b, (uint64_t)off, clusters * q->cluster_size, "bitmap directory") ==
		0 &&
	    blk_file_pwrite(b->fd, dir, clusters * q->cluster_size, (uint64_t)off, b->filename) ==
		0) {
		*doff = (uint64_t)off;
		r = 0;
	}
	free(dir);
	return r;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

int qbm_free_clusters(struct blk *b, uint64_t *offs, size_t n)
{
	struct qcow2 *q = Q(b);
	qsort(offs, n, sizeof(*offs), cmp_u64);
	for (size_t i = 0; i < n; i++) {
		bool dup = (i && offs[i - 1] == offs[i]) || (i + 1 < n && offs[i + 1] == offs[i]);
		uint64_t rc;
		if (dup || qcow2_get_refcount(b, offs[i] >> q->cluster_bits, &rc) < 0 || rc != 1)
			continue; /* shared or doubtful: leaked rather than freed twice */
		if (qcow2_free_later(b, offs[i], q->cluster_size) < 0)
			return -1;
	}
	return 0;
}

/* Frees the old directory and the dropped tables, once the header no longer points at
 * them. */
static int free_replaced(struct blk *b, struct qbm_dir *d, uint64_t old_off, uint64_t old_size)
{
	struct qcow2 *q = Q(b);
	uint64_t n = (old_size + q->cluster_size - 1) >> q->cluster_bits;
	uint64_t *offs = malloc((n ? n : 1) * sizeof(*offs));
	if (!offs)
		return kite_error("out of memory");
	for (uint64_t i = 0; i < n; i++)
		offs[i] = old_off + (i << q->cluster_bits);
	int r = old_off && old_off < q->file_end ? qbm_free_clusters(b, offs, n) : 0;
	free(offs);
	for (size_t i = 0; i < d->ndrop && r == 0; i++)
		r = qbm_free_table(b, &d->drop[i]);
	free(d->drop);
	d->drop = NULL;
	d->ndrop = 0;
	return r;
}

int qbm_commit(struct blk *b, struct qbm_dir *d)
{
	struct qcow2 *q = Q(b);
	for (uint32_t i = 0; i < d->n; i++)
		if (d->v[i].changed && qbm_store(b, d, &d->v[i]) < 0)
			return -1;
	uint64_t doff = 0, dsize = 0, old_off = 0, old_size = 0;
	if (d->n && write_dir(b, d, &doff, &dsize) < 0)
		return -1;
	/* the new clusters and their refcounts are on disk before the header points at them */
	if (qcow2_flush_all(b) < 0)
		return -1;
	struct ext_fields x;
	char why[256];
	if (qbm_present(q) && read_ext(q, &x, why, sizeof(why)) == 0) {
		old_off = x.doff;
		old_size = x.dsize;
	}
	if (set_ext(q, d->n, dsize, doff) < 0 || qcow2_write_header(b) < 0 || blk_sync(b) < 0)
		return -1;
	if (free_replaced(b, d, old_off, old_size) < 0)
		return -1;
	return qcow2_flush_all(b);
}

void qbm_dir_free(struct qbm_dir *d)
{
	if (!d)
		return;
	for (uint32_t i = 0; i < d->n; i++) {
		free(d->v[i].name);
		free(d->v[i].bits);
	}
	free(d->v);
	free(d->drop);
	free(d);
}

int qbm_dir_discard(struct blk *b)
{
	struct qcow2 *q = Q(b);
	qbm_dir_free(q->bitmaps);
	q->bitmaps = calloc(1, sizeof(*q->bitmaps));
	if (!q->bitmaps)
		return kite_error("out of memory");
	if (set_ext(q, 0, 0, 0) < 0 || qcow2_write_header(b) < 0)
		return -1;
	return blk_sync(b);
}
