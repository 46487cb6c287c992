/* qcow2 guest I/O: L1/L2 lookup (standard and extended entries), reads, allocating
 * writes with copy-on-write, block status, flush ordering. */
#include "block/qcow2_int.h"
#include "util/err.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PENDING_FLUSH_LIMIT 16384

uint64_t qcow2_l2_get(const struct qcow2 *q, const uint8_t *l2, uint64_t i, uint64_t *bitmap)
{
	const uint8_t *p = l2 + i * q->l2_entry_bytes;
	if (bitmap)
		*bitmap = q->extended_l2 ? get_be64(p + 8) : 0;
	return get_be64(p);
}

void qcow2_l2_set(const struct qcow2 *q, uint8_t *l2, uint64_t i, uint64_t e, uint64_t bitmap)
{
	uint8_t *p = l2 + i * q->l2_entry_bytes;
	put_be64(p, e);
	if (q->extended_l2)
		put_be64(p + 8, bitmap);
}

enum qcow2_ctype qcow2_entry_type(const struct qcow2 *q, uint64_t e)
{
	if (e & OFLAG_COMPRESSED)
		return QC_COMPRESSED;
	uint64_t off = e & L2E_OFFSET_MASK;
	if ((e & OFLAG_ZERO) && q->version >= 3 && !q->extended_l2)
		return off ? QC_ZERO_ALLOC : QC_ZERO_PLAIN;
	return qcow2_entry_has_host(q, e) ? QC_NORMAL : QC_UNALLOC;
}

/* Type of subcluster `sc` of an entry (the whole cluster without extended L2). */
static int sub_type(struct blk *b, uint64_t e, uint64_t bitmap, unsigned sc, enum qcow2_ctype *t)
{
	struct qcow2 *q = Q(b);
	if (!q->extended_l2 || (e & OFLAG_COMPRESSED)) {
		*t = qcow2_entry_type(q, e);
		return 0;
	}
	bool alloc = (bitmap >> sc) & 1, zero = (bitmap >> (32 + sc)) & 1;
	bool off = qcow2_entry_has_host(q, e);
	if (alloc && zero)
		return kite_error("%s: corrupt image: subcluster both allocated and zero",
				  b->filename);
	if (zero)
		*t = off ? QC_ZERO_ALLOC : QC_ZERO_PLAIN;
	else if (alloc && !off)
		return kite_error("%s: corrupt image: allocated subcluster without an offset",
				  b->filename);
	else
		*t = alloc ? QC_NORMAL : off ? QC_UNALLOC_ALLOC : QC_UNALLOC;
	return 0;
}

struct extent {
	enum qcow2_ctype t;
	uint64_t host;	/* host offset of the guest offset (NORMAL, ZERO_ALLOC) */
	uint64_t len;	/* bytes from the guest offset sharing t (and contiguous host) */
	uint64_t entry; /* the L2 entry (COMPRESSED) */
};

static int get_l2_ro(struct blk *b, uint64_t l1i, uint8_t **l2)
{
	struct qcow2 *q = Q(b);
	*l2 = NULL;
	if (l1i >= q->l1_size)
		return 0;
	uint64_t off = q->l1[l1i] & L1E_OFFSET_MASK;
	if (!off)
		return 0;
	if (off & (q->cluster_size - 1))
		return kite_error(
		    "%s: corrupt image: L2 table offset 0x%llx is not cluster aligned", b->filename,
		    (unsigned long long)off);
	if (off < q->cluster_size)
		return kite_error("%s: corrupt image: L2 table overlaps the header", b->filename);
	*l2 = mcache_get(b, &q->l2c, off, true);
	return *l2 ? 0 : -1;
}

/* The extent at guest offset `off`, no longer than `max` bytes. */
static int lookup(struct blk *b, uint64_t off, uint64_t max, struct extent *x)
{
	struct qcow2 *q = Q(b);
	uint64_t cs = q->cluster_size, per_l1 = q->l2_entries * cs;
	uint64_t l1i = off / per_l1;
	uint8_t *l2;
	if (get_l2_ro(b, l1i, &l2) < 0)
		return -1;
	uint64_t to_l1_end = per_l1 - off % per_l1;
	if (max > to_l1_end)
		max = to_l1_end;
	memset(x, 0, sizeof(*x));
	if (!l2) {
		x->t = QC_UNALLOC;
		x->len = max;
		return 0;
	}
	uint64_t sub = 1ull << q->subcluster_bits;
	uint64_t i = (off % per_l1) / cs;
	uint64_t bitmap, e = qcow2_l2_get(q, l2, i, &bitmap);
	unsigned sc = (unsigned)((off % cs) >> q->subcluster_bits);
	if (sub_type(b, e, bitmap, sc, &x->t) < 0)
		return -1;
	uint64_t hoff = e & L2E_OFFSET_MASK;
	bool has_host = x->t == QC_NORMAL || x->t == QC_ZERO_ALLOC || x->t == QC_UNALLOC_ALLOC;
	if (has_host && (hoff & (cs - 1)))
		return kite_error("%s: corrupt image: L2 entry 0x%llx has a misaligned cluster "
				  "offset",
				  b->filename, (unsigned long long)e);
	x->entry = e;
	x->host = hoff + off % cs;
	if (x->t == QC_COMPRESSED) {
		x->len = cs - off % cs;
		if (x->len > max)
			x->len = max;
		return 0;
	}
	/* Extend over following subclusters and clusters of the same kind. */
	uint64_t len = sub - off % sub;
	uint64_t pos = off + len;
	while (len < max) {
		uint64_t ci = (pos % per_l1) / cs;
		uint64_t bm2, e2 = ci == i ? e : qcow2_l2_get(q, l2, ci, &bm2);
		if (ci == i)
			bm2 = bitmap;
		enum qcow2_ctype t2;
		if (sub_type(b, e2, bm2, (unsigned)((pos % cs) >> q->subcluster_bits), &t2) < 0)
			return -1;
		if (t2 != x->t)
			break;
		if (has_host && (e2 & L2E_OFFSET_MASK) + pos % cs != x->host + len)
			break;
		len += sub;
		pos += sub;
	}
	x->len = len < max ? len : max;
	return 0;
}

int qcow2_read(struct blk *b, void *buf, size_t len, uint64_t off)
{
	struct qcow2 *q = Q(b);
	uint8_t *p = buf;
	if (qcow2_crypto_unaligned(q, off, len)) /* ciphers work on whole sectors */
		return qcow2_crypto_read_unaligned(b, buf, len, off);
	while (len) {
		struct extent x;
		if (lookup(b, off, len, &x) < 0)
			return -1;
		size_t n = (size_t)x.len;
		switch (x.t) {
		case QC_NORMAL:
			if (qcow2_data_pread(b, p, n, x.host, off) < 0)
				return -1;
			break;
		case QC_UNALLOC:
		case QC_UNALLOC_ALLOC:
			if (blk_read_backing(b, p, n, off) < 0)
				return -1;
			break;
		case QC_ZERO_PLAIN:
		case QC_ZERO_ALLOC:
			memset(p, 0, n);
			break;
		case QC_COMPRESSED:
			if (b->data_file)
				return kite_error(
				    "%s: corrupt image: compressed cluster entry in an "
				    "image with an external data file",
				    b->filename);
			if (qcow2_read_compressed(b, x.entry, q->cz_buf ? q->cz_buf : NULL) < 0)
				return -1;
			memcpy(p, q->cz_buf + off % q->cluster_size, n);
			break;
		}
		p += n;
		off += n;
		len -= n;
	}
	return 0;
}

int qcow2_flush_all(struct blk *b)
{
	struct qcow2 *q = Q(b);
	if (!(b->flags & BLK_O_RDWR))
		return 0;
	/* data clusters on disk before the L2 entries that point at them */
	if (b->data_file && blk_sync(b->data_file) < 0)
		return -1;
	if (qcow2_sync_refcounts(b) < 0 || mcache_flush(b, &q->l2c) < 0)
		return -1;
	if (blk_sync(b) < 0)
		return -1;
	if (q->nb_pending) {
		if (qcow2_apply_pending_frees(b) < 0 || qcow2_sync_refcounts(b) < 0)
			return -1;
	}
	return 0;
}

static int write_l1_entry(struct blk *b, uint64_t l1i)
{
	struct qcow2 *q = Q(b);
	uint8_t v[8];
	put_be64(v, q->l1[l1i]);
	return blk_file_pwrite(b->fd, v, 8, q->l1_offset + l1i * 8, b->filename);
}

/* A writable L2 table for L1 entry `l1i`: allocated when missing, copied when shared
 * with a snapshot (L1 entry without COPIED). With alloc false, *l2 may be NULL. */
int qcow2_get_l2(struct blk *b, uint64_t l1i, bool alloc, uint8_t **l2)
{
	struct qcow2 *q = Q(b);
	uint64_t cs = q->cluster_size;
	if (l1i >= q->l1_size)
		return kite_error("%s: offset beyond the L1 table", b->filename);
	uint64_t l1e = q->l1[l1i];
	uint64_t old = l1e & L1E_OFFSET_MASK;
	if (!alloc || (old && (l1e & OFLAG_COPIED)))
		return get_l2_ro(b, l1i, l2);
	uint8_t *copy = NULL;
	if (old) {
		uint8_t *src;
		if (get_l2_ro(b, l1i, &src) < 0)
			return -1;
		copy = malloc(cs);
		if (!copy)
			return kite_error("out of memory");
		memcpy(copy, src, cs);
		/* Data clusters stay shared with the snapshot's table: not COPIED. */
		for (uint64_t i = 0; i < q->l2_entries; i++) {
			uint64_t bm, e = qcow2_l2_get(q, copy, i, &bm);
			qcow2_l2_set(q, copy, i, e & ~OFLAG_COPIED, bm);
		}
	}
	int64_t n = qcow2_alloc_clusters(b, 1);
	if (n < 0 || qcow2_check_overlap(b, (uint64_t)n, cs, "new L2 table") < 0) {
		free(copy);
		return -1;
	}
	qcow2_meta_mark(q, (uint64_t)n, true);
	uint8_t *t = mcache_get(b, &q->l2c, (uint64_t)n, false);
	if (!t) {
		free(copy);
		return -1;
	}
	if (copy)
		memcpy(t, copy, cs);
	free(copy);
	/* refcount, then table, then L1 entry: each on disk before the next. */
	if (qcow2_sync_refcounts(b) < 0 ||
	    blk_file_pwrite(b->fd, t, cs, (uint64_t)n, b->filename) < 0)
		return -1;
	if (blk_sync(b) < 0)
		return -1;
	q->l1[l1i] = (uint64_t)n | OFLAG_COPIED;
	if (write_l1_entry(b, l1i) < 0)
		return -1;
	if (old && qcow2_free_later(b, old, cs) < 0)
		return -1;
	*l2 = t;
	return 0;
}

/* Drops what an L2 entry referenced (after the next flush). */
static int release_entry(struct blk *b, uint64_t e)
{
	struct qcow2 *q = Q(b);
	if (qcow2_has_data_file(q))
		return 0; /* data file clusters are outside the refcounts */
	if (e & OFLAG_COMPRESSED) {
		uint64_t coff, clen;
		if (qcow2_compressed_range(q, e, &coff, &clen) < 0)
			return 0; /* a bad descriptor referenced nothing we counted */
		return qcow2_free_later(b, coff, clen);
	}
	uint64_t off = e & L2E_OFFSET_MASK;
	return off ? qcow2_free_later(b, off, q->cluster_size) : 0;
}

/* Old content of guest range [off, off+len) clipped to the image size, for filling the
 * part of a newly allocated cluster that a write does not cover. */
static int read_old(struct blk *b, uint8_t *buf, uint64_t len, uint64_t off)
{
	struct qcow2 *q = Q(b);
	uint64_t n = 0;
	if (off < q->size)
		n = q->size - off < len ? q->size - off : len;
	memset(buf + n, 0, len - n);
	return n ? qcow2_read(b, buf, n, off) : 0;
}

/* Writes guest range [off, off+len) of one L2 table's span. */
static int write_slice(struct blk *b, const uint8_t *buf, uint64_t len, uint64_t off)
{
	struct qcow2 *q = Q(b);
	uint64_t cs = q->cluster_size, per_l1 = q->l2_entries * cs;
	uint8_t *l2;
	if (qcow2_get_l2(b, off / per_l1, true, &l2) < 0)
		return -1;
	uint64_t l2off = q->l1[off / per_l1] & L1E_OFFSET_MASK;
	uint64_t end = off + len;
	while (off < end) {
		uint64_t i = (off % per_l1) / cs;
		uint64_t bm, e = qcow2_l2_get(q, l2, i, &bm);
		bool inplace = qcow2_entry_type(q, e) == QC_NORMAL && (e & OFLAG_COPIED) &&
			       (!q->extended_l2 || (bm & 0xffffffffu) == 0xffffffffu);
		/* The run of clusters treated alike (contiguous host for in-place). */
		uint64_t n = 1;
		while (off - off % cs + n * cs < end && i + n < q->l2_entries) {
			uint64_t bm2, e2 = qcow2_l2_get(q, l2, i + n, &bm2);
			bool ip2 = qcow2_entry_type(q, e2) == QC_NORMAL && (e2 & OFLAG_COPIED) &&
				   (!q->extended_l2 || (bm2 & 0xffffffffu) == 0xffffffffu);
			if (ip2 != inplace)
				break;
			if (inplace && (e2 & L2E_OFFSET_MASK) != (e & L2E_OFFSET_MASK) + n * cs)
				break;
			n++;
		}
		uint64_t cstart = off - off % cs;
		uint64_t rend = cstart + n * cs < end ? cstart + n * cs : end;
		uint64_t wlen = rend - off;
		if (inplace) {
			uint64_t host = (e & L2E_OFFSET_MASK) + off % cs;
			if ((e & L2E_OFFSET_MASK) & (cs - 1))
				return kite_error("%s: corrupt image: misaligned L2 entry 0x%llx",
						  b->filename, (unsigned long long)e);
			if ((!b->data_file &&
			     qcow2_check_overlap(b, host, wlen, "data write") < 0) ||
			    qcow2_data_pwrite(b, buf, wlen, host, off) < 0)
				return -1;
		} else {
			/* as QEMU: a data file cluster sits at its guest offset */
			int64_t h = b->data_file ? (int64_t)cstart : qcow2_alloc_clusters(b, n);
			if (h < 0)
				return -1;
			uint64_t host = (uint64_t)h;
			if (!b->data_file &&
			    qcow2_check_overlap(b, host, n * cs, "new data cluster") < 0)
				return -1;
			/* The L2 table may have been evicted by metadata allocation. */
			l2 = mcache_get(b, &q->l2c, l2off, true);
			if (!l2)
				return -1;
			uint8_t *tmp = NULL;
			uint64_t head = off - cstart, tail = cstart + n * cs - rend;
			if (head || tail) {
				tmp = malloc(cs);
				if (!tmp)
					return kite_error("out of memory");
			}
			int r = 0;
			uint64_t mid_start = off, mid_end = rend;
			if (head) { /* first cluster: old bytes around the new ones */
				r = read_old(b, tmp, cs, cstart);
				uint64_t upto = cstart + cs < rend ? cstart + cs : rend;
				if (r == 0) {
					memcpy(tmp + head, buf, upto - off);
					r = qcow2_data_pwrite(b, tmp, cs, host, cstart);
				}
				mid_start = upto;
			}
			uint64_t lastc = cstart + (n - 1) * cs;
			if (r == 0 && tail && (!head || n > 1)) {
				r = read_old(b, tmp, cs, lastc);
				if (r == 0) {
					memcpy(tmp, buf + (lastc - off), rend - lastc);
					r = qcow2_data_pwrite(b, tmp, cs, host + (n - 1) * cs,
							      lastc);
				}
				mid_end = lastc;
			} else if (tail) {
				mid_end = mid_start; /* one cluster, done above */
			}
			if (r == 0 && mid_end > mid_start)
				r = qcow2_data_pwrite(b, buf + (mid_start - off),
						      mid_end - mid_start,
						      host + (mid_start - cstart), mid_start);
			free(tmp);
			if (r < 0)
				return -1;
			l2 = mcache_get(b, &q->l2c, l2off, true);
			if (!l2)
				return -1;
			for (uint64_t k = 0; k < n; k++) {
				uint64_t old = qcow2_l2_get(q, l2, i + k, NULL);
				if (release_entry(b, old) < 0)
					return -1;
				qcow2_l2_set(q, l2, i + k, (host + k * cs) | OFLAG_COPIED,
					     q->extended_l2 ? 0xffffffffu : 0);
			}
			mcache_dirty(&q->l2c, l2);
		}
		buf += wlen;
		off += wlen;
	}
	return 0;
}

int qcow2_write(struct blk *b, const void *buf, size_t len, uint64_t off)
{
	struct qcow2 *q = Q(b);
	uint64_t per_l1 = q->l2_entries * q->cluster_size;
	const uint8_t *p = buf;
	if (qcow2_crypto_unaligned(q, off, len))
		return qcow2_crypto_write_unaligned(b, buf, len, off);
	if (qcow2_mark_dirty(b) < 0)
		return -1;
	q->cz_off = 0; /* the cached decompressed cluster may be replaced */
	while (len) {
		uint64_t n = per_l1 - off % per_l1;
		if (n > len)
			n = len;
		if (write_slice(b, p, n, off) < 0)
			return -1;
		p += n;
		off += n;
		len -= n;
	}
	if (q->nb_pending > PENDING_FLUSH_LIMIT)
		return qcow2_flush_all(b);
	return 0;
}

/* QEMU's heuristic: when more clusters are in use (nonzero refcount) than the file has
 * blocks for, by a ninth or two clusters, the image was preallocated with metadata. */
static int looks_metadata_preallocated(struct blk *b)
{
	struct qcow2 *q = Q(b);
	if (q->meta_prealloc >= 0)
		return q->meta_prealloc;
	struct stat st;
	if (fstat(b->fd, &st) < 0)
		return kite_error_errno(errno, "%s: stat", b->filename);
	uint64_t real = (uint64_t)st.st_blocks * 512 / q->cluster_size;
	uint64_t threshold = real * 10 / 9 > real + 2 ? real * 10 / 9 : real + 2;
	uint64_t used = 0, end = ((uint64_t)st.st_size + q->cluster_size - 1) / q->cluster_size;
	for (uint64_t c = 0; c < end && used < threshold; c++) {
		uint64_t rc;
		if (qcow2_get_refcount(b, c, &rc) < 0)
			return -1;
		used += rc != 0;
	}
	q->meta_prealloc = used >= threshold;
	return q->meta_prealloc;
}

/* Adds BLK_STATUS_ZERO when the file has a hole at host offset `host`, shortening *pnum
 * to the run of the same file status. */
static int file_zero_status(struct blk *b, uint64_t host, uint64_t *pnum, unsigned *flags)
{
	struct qcow2 *q = Q(b);
	uint64_t end = q->file_end;
	if (b->data_file && blk_file_size(b->data_file->fd, &end, b->data_file->filename) < 0)
		return -1;
	int fd = qcow2_data_fd(b);
	if (host >= end) {
		*flags |= BLK_STATUS_ZERO;
		return 0;
	}
	off_t data = lseek(fd, (off_t)host, SEEK_DATA);
	if (data < 0 && errno != ENXIO)
		return 0; /* no SEEK_DATA: all data */
	if (data < 0 || (uint64_t)data > host) {
		uint64_t hole_end = data < 0 ? UINT64_MAX : (uint64_t)data;
		*flags |= BLK_STATUS_ZERO;
		if (hole_end - host < *pnum)
			*pnum = hole_end - host;
		return 0;
	}
	off_t hole = lseek(fd, (off_t)host, SEEK_HOLE);
	if (hole > (off_t)host && (uint64_t)hole - host < *pnum)
		*pnum = (uint64_t)hole - host;
	return 0;
}

int qcow2_block_status(struct blk *b, uint64_t off, uint64_t len, uint64_t *pnum, unsigned *flags,
		       uint64_t *host_off)
{
	struct extent x;
	if (lookup(b, off, len, &x) < 0)
		return -1;
	*pnum = x.len;
	*host_off = 0;
	switch (x.t) {
	case QC_UNALLOC:
		*flags = b->backing ? 0 : BLK_STATUS_ZERO;
		break;
	case QC_UNALLOC_ALLOC:
		*flags = (b->backing ? 0 : BLK_STATUS_ZERO) | BLK_STATUS_OFFSET_VALID;
		*host_off = x.host;
		break;
	case QC_ZERO_PLAIN:
		*flags = BLK_STATUS_ZERO | BLK_STATUS_ALLOCATED;
		break;
	case QC_ZERO_ALLOC:
		*flags = BLK_STATUS_ZERO | BLK_STATUS_ALLOCATED | BLK_STATUS_OFFSET_VALID;
		*host_off = x.host;
		break;
	case QC_NORMAL:
		*flags = BLK_STATUS_DATA | BLK_STATUS_ALLOCATED | BLK_STATUS_OFFSET_VALID;
		*host_off = x.host;
		if (qcow2_encrypted(Q(b)))
			break; /* file holes read as noise, not zeros */
		/* As QEMU: in an image that looks metadata-preallocated, holes of the file
		 * under allocated clusters read as zeros. */
		if (looks_metadata_preallocated(b) > 0)
			return file_zero_status(b, x.host, pnum, flags);
		break;
	case QC_COMPRESSED:
		*flags = BLK_STATUS_DATA | BLK_STATUS_ALLOCATED | BLK_STATUS_COMPRESSED;
		break;
	}
	if (qcow2_encrypted(Q(b))) { /* as QEMU: no offset of ciphertext is given out */
		*flags &= ~BLK_STATUS_OFFSET_VALID;
		*host_off = 0;
	}
	return 0;
}

/* A raw external data file must keep reading as the guest disk: the bytes of a cluster
 * made zero become zeros there too, as QEMU does. */
static int zero_raw_data(struct blk *b, uint64_t e)
{
	struct qcow2 *q = Q(b);
	uint64_t host = e & L2E_OFFSET_MASK, cs = q->cluster_size;
	if (!b->data_file || !(q->autoclear & QCOW2_AUTOCLEAR_DATA_RAW) ||
	    !qcow2_entry_has_host(q, e) || (e & OFLAG_COMPRESSED))
		return 0;
	uint64_t dsize = blk_size(b->data_file);
	if (host < dsize) {
		uint64_t n = dsize - host < cs ? dsize - host : cs;
		if (blk_write_zeroes(b->data_file, host, n, 0) < 0)
			return -1;
	}
	return 0;
}

/* Makes whole clusters [off, off+len) read as zeros (v3: zero flag) or unallocated
 * (`unalloc`, or v2 without backing file), releasing their host clusters. Without an L2
 * table a cluster already reads as zeros unless a backing file shows through; `tables`
 * makes the tables anyway, as QEMU's write-zeroes does, so the map shows zero clusters. */
static int clear_clusters(struct blk *b, uint64_t off, uint64_t len, bool unalloc, bool tables)
{
	struct qcow2 *q = Q(b);
	uint64_t cs = q->cluster_size, per_l1 = q->l2_entries * cs;
	while (len) {
		uint64_t l1i = off / per_l1;
		uint64_t n = per_l1 - off % per_l1;
		if (n > len)
			n = len;
		uint8_t *l2;
		if (get_l2_ro(b, l1i, &l2) < 0)
			return -1;
		bool need = l2 != NULL || (!unalloc && (q->backing_file || tables));
		if (need && qcow2_get_l2(b, l1i, true, &l2) < 0)
			return -1;
		for (uint64_t c = off; need && c < off + n; c += cs) {
			uint64_t i = (c % per_l1) / cs;
			uint64_t e = qcow2_l2_get(q, l2, i, NULL);
			if (release_entry(b, e) < 0)
				return -1;
			if (!unalloc && zero_raw_data(b, e) < 0)
				return -1;
			if (unalloc)
				qcow2_l2_set(q, l2, i, 0, 0);
			else if (q->extended_l2)
				qcow2_l2_set(q, l2, i, 0, 0xffffffffull << 32);
			else
				qcow2_l2_set(q, l2, i, OFLAG_ZERO, 0);
		}
		if (need)
			mcache_dirty(&q->l2c, l2);
		off += n;
		len -= n;
	}
	q->cz_off = 0;
	return 0;
}

static int write_zero_bytes(struct blk *b, uint64_t off, uint64_t end, const uint8_t *zero)
{
	uint64_t cs = Q(b)->cluster_size;
	for (uint64_t o = off; o < end; o += cs) {
		uint64_t n = end - o < cs ? end - o : cs;
		if (qcow2_write(b, zero, n, o) < 0)
			return -1;
	}
	return 0;
}

int qcow2_zero(struct blk *b, uint64_t off, uint64_t len, unsigned flags)
{
	struct qcow2 *q = Q(b);
	uint64_t cs = q->cluster_size;
	if (qcow2_mark_dirty(b) < 0)
		return -1;
	uint64_t end = off + len;
	uint64_t a = (off + cs - 1) / cs * cs;
	/* The tail cluster beyond the virtual size belongs to the last guest bytes. */
	uint64_t z = end == q->size ? (end + cs - 1) / cs * cs : end / cs * cs;
	/* v2 cannot say "zero" over a backing file: write real zeros there. */
	bool can_flag = q->version >= 3 || !q->backing_file;
	uint8_t *zero = calloc(1, cs);
	if (!zero)
		return kite_error("out of memory");
	int r;
	if (!can_flag || a >= z)
		r = write_zero_bytes(b, off, end, zero);
	else {
		r = write_zero_bytes(b, off, a, zero);
		if (r == 0)
			r = clear_clusters(b, a, z - a, q->version < 3, true);
		if (r == 0 && z < end)
			r = write_zero_bytes(b, z, end, zero);
	}
	free(zero);
	return r;
}

int qcow2_discard(struct blk *b, uint64_t off, uint64_t len)
{
	struct qcow2 *q = Q(b);
	uint64_t cs = q->cluster_size;
	uint64_t a = (off + cs - 1) / cs * cs;
	uint64_t end = off + len == q->size ? (off + len + cs - 1) / cs * cs : off + len;
	uint64_t z = end / cs * cs;
	if (z <= a)
		return 0;
	if (qcow2_mark_dirty(b) < 0)
		return -1;
	/* v3 keeps discarded clusters reading as zeros (not the backing file's data). */
	return clear_clusters(b, a, z - a, q->version < 3, false);
}

int qcow2_grow_l1(struct blk *b, uint64_t min_size)
{
	struct qcow2 *q = Q(b);
	uint64_t cs = q->cluster_size;
	if (min_size <= q->l1_size)
		return 0;
	if (min_size * 8 > QCOW2_MAX_L1_BYTES)
		return kite_error("%s: image too large: the L1 table would exceed %u bytes",
				  b->filename, QCOW2_MAX_L1_BYTES);
	uint64_t bytes = (min_size * 8 + cs - 1) / cs * cs;
	uint64_t *nl1 = calloc(1, bytes);
	uint8_t *disk = calloc(1, bytes);
	if (!nl1 || !disk) {
		free(nl1);
		free(disk);
		return kite_error("out of memory");
	}
	memcpy(nl1, q->l1, (size_t)q->l1_size * 8);
	for (uint64_t i = 0; i < min_size; i++)
		put_be64(disk + i * 8, nl1[i]);
	int64_t n = qcow2_alloc_clusters(b, bytes / cs);
	int r = n < 0 ? -1 : 0;
	if (r == 0)
		r = qcow2_sync_refcounts(b);
	if (r == 0)
		r = blk_file_pwrite(b->fd, disk, bytes, (uint64_t)n, b->filename);
	if (r == 0 && blk_sync(b) < 0)
		r = -1;
	if (r == 0) {
		uint8_t h[12];
		put_be32(h, (uint32_t)min_size);
		put_be64(h + 4, (uint64_t)n);
		r = blk_file_pwrite(b->fd, h, 12, 36, b->filename);
	}
	if (r == 0 && blk_sync(b) < 0)
		r = -1;
	free(disk);
	if (r < 0) {
		free(nl1);
		return -1;
	}
	uint64_t old_off = q->l1_offset, old_bytes = (uint64_t)q->l1_size * 8;
	free(q->l1);
	q->l1 = nl1;
	q->l1_offset = (uint64_t)n;
	q->l1_size = (uint32_t)min_size;
	return qcow2_update_refcount(b, old_off, old_bytes, -1);
}

static int write_size(struct blk *b, uint64_t size)
{
	uint8_t v[8];
	put_be64(v, size);
	if (blk_file_pwrite(b->fd, v, 8, 24, b->filename) < 0)
		return -1;
	if (blk_sync(b) < 0)
		return -1;
	return 0;
}

/* After a shrink the file ends after its last cluster in use, as QEMU cuts it: the space of
 * the data past the new end goes back to the host. */
static int cut_unused_tail(struct blk *b)
{
	struct qcow2 *q = Q(b);
	uint64_t cs = q->cluster_size, fsize;
	if (blk_file_size(b->fd, &fsize, b->filename) < 0)
		return -1;
	uint64_t n = (fsize + cs - 1) / cs;
	for (; n > 0; n--) {
		uint64_t rc;
		if (qcow2_get_refcount(b, n - 1, &rc) < 0)
			return -1;
		if (rc)
			break;
	}
	if (n * cs >= fsize)
		return 0;
	if (ftruncate(b->fd, (off_t)(n * cs)) < 0)
		return kite_error_errno(errno, "%s: truncate", b->filename);
	if (q->file_end > n * cs)
		q->file_end = n * cs;
	return 0;
}

/* As QEMU: a data file shorter than the new size is grown to it; a shrink cuts it there. */
static int resize_data_file(struct blk *b, uint64_t size, bool shrink)
{
	uint64_t have;
	if (!b->data_file)
		return 0;
	int fd = b->data_file->fd;
	if (blk_file_size(fd, &have, b->data_file->filename) < 0)
		return -1;
	if (have == size || (have > size && !shrink))
		return 0;
	if (ftruncate(fd, (off_t)size) < 0)
		return kite_error_errno(errno, "%s: truncate", b->data_file->filename);
	b->data_file->size = size;
	return 0;
}

int qcow2_resize(struct blk *b, uint64_t size, bool shrink)
{
	struct qcow2 *q = Q(b);
	uint64_t cs = q->cluster_size, per_l1 = q->l2_entries * cs;
	/* v3 snapshots record their own size; v2 ones do not */
	if (q->nb_snapshots && q->version < 3)
		return kite_error("Can't resize a v2 image which has snapshots");
	if (size > (1ull << 62))
		return kite_error("%s: size too large", b->filename);
	if (qcow2_mark_dirty(b) < 0)
		return -1;
	if (size > q->size) {
		if (qcow2_grow_l1(b, (size + per_l1 - 1) / per_l1) < 0)
			return -1;
	} else if (size < q->size) {
		uint64_t from = (size + cs - 1) / cs * cs;
		uint64_t to = (q->size + cs - 1) / cs * cs;
		/* Free the clusters past the new end, then whole L2 tables past it. */
		if (to > from && clear_clusters(b, from, to - from, true, false) < 0)
			return -1;
		if (qcow2_flush_all(b) < 0)
			return -1;
		for (uint64_t i = (size + per_l1 - 1) / per_l1; i < q->l1_size; i++) {
			uint64_t l2off = q->l1[i] & L1E_OFFSET_MASK;
			if (!l2off)
				continue;
			q->l1[i] = 0;
			if (write_l1_entry(b, i) < 0)
				return -1;
			mcache_forget(&q->l2c, l2off);
			if (qcow2_free_later(b, l2off, cs) < 0)
				return -1;
		}
	}
	if (qcow2_flush_all(b) < 0 || write_size(b, size) < 0)
		return -1;
	if (resize_data_file(b, size, size < q->size) < 0)
		return -1;
	uint64_t old = q->size;
	q->size = size;
	b->size = size;
	if (size > old) {
		/* The grown area reads as zeros: not stale bytes of the old last cluster, not
		 * the data of a longer backing file. */
		uint64_t to = (old + cs - 1) / cs * cs;
		if (q->backing_file && b->backing && blk_size(b->backing) > to)
			to = blk_size(b->backing);
		if (to > size)
			to = size;
		if (to > old && qcow2_zero(b, old, to - old, BLK_ZERO_MAY_UNMAP) < 0)
			return -1;
		return qcow2_flush_all(b);
	}
	if (size < old)
		return cut_unused_tail(b);
	return 0;
}

/* Whether guest cluster `k` of the L2 table has no host cluster (zero-flagged ones neither). */
static bool unallocated(const struct qcow2 *q, const uint8_t *l2, uint64_t k)
{
	uint64_t e = qcow2_l2_get(q, l2, k, NULL);
	return qcow2_entry_type(q, e) != QC_COMPRESSED && !qcow2_entry_has_host(q, e);
}

/* Gives every cluster of [from, to) that has no host cluster one, in runs of contiguous
 * clusters (falloc: reserved, full: written with zeros). With subclusters none is marked
 * allocated (as QEMU does): reads still come from the backing file, or are zeros. */
int qcow2_preallocate(struct blk *b, uint64_t from, uint64_t to, enum blk_prealloc mode)
{
	struct qcow2 *q = Q(b);
	uint64_t cs = q->cluster_size;
	uint64_t end = (to + cs - 1) / cs;
	for (uint64_t c = from / cs; c < end;) {
		uint64_t l1i = c / q->l2_entries, k = c % q->l2_entries;
		uint64_t stop = (l1i + 1) * q->l2_entries < end ? (l1i + 1) * q->l2_entries : end;
		uint8_t *l2;
		if (qcow2_get_l2(b, l1i, true, &l2) < 0)
			return -1;
		uint64_t run = 0;
		while (c + run < stop && unallocated(q, l2, k + run))
			run++;
		if (!run) {
			c++;
			continue;
		}
		uint64_t l2off = q->l1[l1i] & L1E_OFFSET_MASK;
		/* a data file cluster sits at its guest offset */
		int64_t h = b->data_file ? (int64_t)(c * cs) : qcow2_alloc_clusters(b, run);
		if (h < 0)
			return -1;
		if (raw_preallocate(qcow2_data_fd(b), (uint64_t)h, (uint64_t)h + run * cs, mode,
				    qcow2_data_name(b)) < 0)
			return -1;
		l2 = mcache_get(b, &q->l2c, l2off, true); /* the allocation may have evicted it */
		if (!l2)
			return -1;
		for (uint64_t i = 0; i < run; i++)
			qcow2_l2_set(q, l2, k + i, ((uint64_t)h + i * cs) | OFLAG_COPIED, 0);
		mcache_dirty(&q->l2c, l2);
		c += run;
	}
	if (qcow2_flush_all(b) < 0)
		return -1;
	/* metadata: the file still covers every cluster it maps */
	uint64_t fsize;
	if (blk_file_size(b->fd, &fsize, b->filename) < 0)
		return -1;
	if (q->file_end > fsize && ftruncate(b->fd, (off_t)q->file_end) < 0)
		return kite_error_errno(errno, "%s: set size", b->filename);
	return 0;
}
