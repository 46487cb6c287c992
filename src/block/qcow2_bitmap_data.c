/* qcow2 bitmap bits: loaded from a bitmap table (one cluster of bits per entry; entry 0 reads
 * as zeros, entry 1 as ones), changed in memory, stored into new clusters (clusters of zeros
 * stay unallocated, as QEMU stores them). */
#include "block/qcow2_bitmap_int.h"
#include "util/err.h"

#include <stdlib.h>
#include <string.h>

uint64_t qbm_bytes(uint64_t nbits)
{
	return (nbits + 7) / 8;
}

static uint64_t granules(uint64_t size, uint32_t gbits)
{
	return (size >> gbits) + ((size & ((1ull << gbits) - 1)) != 0);
}

static uint64_t table_entries(const struct qcow2 *q, uint64_t nbits)
{
	return (qbm_bytes(nbits) + q->cluster_size - 1) >> q->cluster_bits;
}

/* Bits past nbits stay clear: they are no granule of the image. */
static void clear_tail(struct qbm *bm)
{
	if (bm->nbits % 8)
		bm->bits[bm->nbits / 8] &= (uint8_t)((1u << (bm->nbits % 8)) - 1);
}

/* Zeroed bits for an image of `size` bytes, whole clusters of them (stores copy clusters). */
static int alloc_bits(const struct qcow2 *q, struct qbm *bm, uint64_t size)
{
	uint64_t nbits = granules(size, bm->gbits);
	uint64_t bytes = table_entries(q, nbits) << q->cluster_bits;
	uint8_t *bits = calloc(1, bytes ? bytes : 1);
	if (!bits)
		return kite_error("out of memory");
	free(bm->bits);
	bm->bits = bits;
	bm->nbits = nbits;
	return 0;
}

int qbm_zero(struct blk *b, struct qbm *bm)
{
	if (alloc_bits(Q(b), bm, Q(b)->size) < 0)
		return -1;
	bm->changed = true;
	return 0;
}

static bool entry_sound(const struct qcow2 *q, uint64_t e)
{
	uint64_t off = e & BME_ENTRY_OFFSET;
	return !(e & BME_ENTRY_RESERVED) &&
	       (!off || (!(e & BME_ENTRY_ALL_ONES) && !(off & (q->cluster_size - 1))));
}

/* The table at `off` of `size` entries (host byte order); NULL if it cannot be read.
 * *sound tells whether every entry is one QEMU accepts. */
static uint64_t *read_table(struct blk *b, uint64_t off, uint32_t size, bool *sound)
{
	struct qcow2 *q = Q(b);
	uint64_t bytes = (uint64_t)size * 8;
	*sound = off <= q->file_end && bytes <= q->file_end - off;
	uint64_t *t = *sound ? malloc(bytes ? bytes : 1) : NULL;
	if (*sound && !t)
		kite_error("out of memory");
	if (!t || blk_file_pread(b->fd, t, bytes, off, b->filename) < 0) {
		free(t);
		return NULL;
	}
	for (uint32_t i = 0; i < size; i++) {
		t[i] = get_be64((uint8_t *)&t[i]);
		*sound = *sound && entry_sound(q, t[i]);
	}
	return t;
}

int qbm_load(struct blk *b, struct qbm *bm)
{
	struct qcow2 *q = Q(b);
	uint64_t cs = q->cluster_size, size = q->size;
	if (table_entries(q, granules(size, bm->gbits)) != bm->tsize)
		return kite_error("Could not read bitmap '%s' from image: Invalid argument",
				  bm->name);
	bool sound;
	uint64_t *t = read_table(b, bm->toff, bm->tsize, &sound);
	if (t && !sound)
		kite_error("Could not read bitmap_table table from image for bitmap '%s': "
			   "Invalid argument",
			   bm->name);
	if (!t || !sound || alloc_bits(q, bm, size) < 0) {
		free(t);
		return -1;
	}
	int r = 0;
	for (uint32_t i = 0; i < bm->tsize && r == 0; i++) {
		uint64_t off = t[i] & BME_ENTRY_OFFSET;
		if (off)
			r = blk_file_pread(b->fd, bm->bits + i * cs, cs, off, b->filename);
		else if (t[i] & BME_ENTRY_ALL_ONES)
			memset(bm->bits + i * cs, 0xff, cs);
	}
	free(t);
	if (r < 0) {
		free(bm->bits);
		bm->bits = NULL;
		return -1;
	}
	clear_tail(bm);
	bm->changed = false;
	return 0;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/* One new cluster holding `data`; its offset or -1. */
static int64_t write_cluster(struct blk *b, const uint8_t *data, size_t len, const char *what)
{
	int64_t off = qcow2_alloc_clusters(b, (len + Q(b)->cluster_size - 1) >> Q(b)->cluster_bits);
	if (off < 0 || qcow2_check_overlap(b, (uint64_t)off, len, what) < 0 ||
	    blk_file_pwrite(b->fd, data, len, (uint64_t)off, b->filename) < 0)
		return -1;
	return off;
}

/* On a failed store: the clusters written so far are referenced by nothing. */
static void unwind(struct blk *b, const uint64_t *t, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		if (t[i])
			qcow2_update_refcount(b, t[i], Q(b)->cluster_size, -1);
}

int qbm_store(struct blk *b, struct qbm_dir *d, struct qbm *bm)
{
	struct qcow2 *q = Q(b);
	uint64_t cs = q->cluster_size, n = table_entries(q, bm->nbits);
	if (!n || n > BME_MAX_TABLE_SIZE || n * cs > BME_MAX_PHYS_SIZE)
		return kite_error("Bitmap '%s' is too big", bm->name);
	uint64_t *t = calloc(n, 8);
	uint8_t *disk = calloc(1, (n * 8 + cs - 1) & ~(cs - 1));
	int64_t toff = -1;
	uint32_t done = 0;
	if (!t || !disk) {
		kite_error("out of memory");
		goto out;
	}
	for (; done < n; done++) {
		const uint8_t *chunk = bm->bits + done * cs;
		int64_t off = all_zero(chunk, cs) ? 0 : write_cluster(b, chunk, cs, "bitmap data");
		if (off < 0)
			goto out;
		t[done] = (uint64_t)off;
		put_be64(disk + done * 8, t[done]);
	}
	toff = write_cluster(b, disk, (n * 8 + cs - 1) & ~(cs - 1), "bitmap table");
	if (toff >= 0 && bm->toff && qbm_drop_table(d, bm->toff, bm->tsize) < 0)
		toff = -1;
out:
	if (toff < 0)
		unwind(b, t, done);
	else {
		bm->toff = (uint64_t)toff;
		bm->tsize = (uint32_t)n;
		bm->changed = false;
	}
	free(t);
	free(disk);
	return toff < 0 ? -1 : 0;
}

void qbm_set_range(struct qbm *bm, uint64_t off, uint64_t len)
{
	if (!len || !bm->bits)
		return;
	uint64_t first = off >> bm->gbits, last = (off + len - 1) >> bm->gbits;
	if (first >= bm->nbits)
		return;
	if (last >= bm->nbits)
		last = bm->nbits - 1;
	for (; first <= last && first % 8; first++)
		bm->bits[first / 8] |= (uint8_t)(1u << (first % 8));
	if (first + 8 <= last + 1) {
		memset(bm->bits + first / 8, 0xff, (last + 1 - first) / 8);
		first += (last + 1 - first) / 8 * 8;
	}
	for (; first <= last; first++)
		bm->bits[first / 8] |= (uint8_t)(1u << (first % 8));
	bm->changed = true;
}

static bool bit(const struct qbm *bm, uint64_t i)
{
	return bm->bits[i / 8] >> (i % 8) & 1;
}

void qbm_merge(struct qbm *dst, const struct qbm *src, uint64_t size)
{
	if (dst->gbits == src->gbits) {
		for (uint64_t i = 0; i < qbm_bytes(dst->nbits); i++)
			dst->bits[i] |= src->bits[i];
		dst->changed = true;
		return;
	}
	/* each run of dirty source granules dirties the target granules its bytes touch */
	for (uint64_t i = 0; i < src->nbits;) {
		if (!src->bits[i / 8] && i % 8 == 0) {
			i += 8;
			continue;
		}
		if (!bit(src, i)) {
			i++;
			continue;
		}
		uint64_t j = i;
		while (j < src->nbits && bit(src, j))
			j++;
		uint64_t end = j << src->gbits < size ? j << src->gbits : size;
		qbm_set_range(dst, i << src->gbits, end - (i << src->gbits));
		i = j;
	}
	dst->changed = true;
}

int qbm_resize(struct blk *b, struct qbm *bm)
{
	struct qbm old = *bm;
	bm->bits = NULL;
	if (alloc_bits(Q(b), bm, Q(b)->size) < 0) {
		bm->bits = old.bits;
		return -1;
	}
	uint64_t keep = old.nbits < bm->nbits ? old.nbits : bm->nbits;
	memcpy(bm->bits, old.bits, qbm_bytes(keep));
	free(old.bits);
	uint64_t nbits = bm->nbits;
	bm->nbits = keep;
	clear_tail(bm); /* a shrunk bitmap's last byte: the bits past the new end */
	bm->nbits = nbits;
	bm->changed = true;
	return 0;
}

int qbm_free_table(struct blk *b, const struct qbm_table *tb)
{
	struct qcow2 *q = Q(b);
	uint64_t tbytes = (uint64_t)tb->size * 8, cs = q->cluster_size;
	if ((tb->off & (cs - 1)) || tb->off >= q->file_end || tbytes > q->file_end - tb->off)
		return 0; /* not a table of this file: leave it */
	bool sound;
	uint64_t *t = read_table(b, tb->off, tb->size, &sound);
	if (!t || !sound) {
		free(t);
		return 0; /* unreadable or doubtful: its clusters stay leaked */
	}
	uint64_t tclusters = (tbytes + cs - 1) / cs, n = 0;
	uint64_t *offs = malloc((tb->size + tclusters) * sizeof(*offs));
	if (!offs) {
		free(t);
		return kite_error("out of memory");
	}
	for (uint32_t i = 0; i < tb->size; i++)
		if ((t[i] & BME_ENTRY_OFFSET) && (t[i] & BME_ENTRY_OFFSET) < q->file_end)
			offs[n++] = t[i] & BME_ENTRY_OFFSET;
	for (uint64_t i = 0; i < tclusters; i++)
		offs[n++] = tb->off + i * cs;
	int r = qbm_free_clusters(b, offs, n);
	free(offs);
	free(t);
	return r;
}
