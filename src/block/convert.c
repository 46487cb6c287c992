/* The copy engine of kite img convert (convert.h), below the CLI so that other importers
 * (kite guest v2v) write images exactly as kite img convert writes them. */
#include "block/convert.h"
#include "util/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK (2u << 20) /* the copy buffer; bytes read and written per step with a backing */
/* Bytes read and written per step of a plain copy: a step's data is copied out of the page
 * cache, scanned for zeros and copied into the output while it is still in the CPU's
 * caches. Measured on a 1G convert (page-cached source): 1 MiB steps were 5-15% faster
 * than 2 MiB ones, 8 MiB steps 40% slower. */
#define STEP (1u << 20)

bool blk_is_zero(const void *buf, size_t len)
{
	const unsigned char *p = buf;
	if (len == 0)
		return true;
	/* check the first 16 bytes directly, then compare the buffer with itself shifted */
	size_t head = len < 16 ? len : 16;
	for (size_t i = 0; i < head; i++)
		if (p[i])
			return false;
	return len <= 16 || memcmp(p, p + 16, len - 16) == 0;
}

int blk_convert_init(struct blk_convert *cv)
{
	cv->buf = malloc(CHUNK);
	if (!cv->buf)
		return kite_error("out of memory");
	return 0;
}

void blk_convert_free(struct blk_convert *cv)
{
	free(cv->buf);
	free(cv->zeros);
	cv->buf = cv->zeros = NULL;
}

/* Which source holds output offset `off`, and where in it. */
static int locate(const struct blk_convert *cv, uint64_t off, uint64_t *src_off, uint64_t *avail)
{
	int i = cv->nsrc - 1;
	while (i > 0 && cv->src_start[i] > off)
		i--;
	*src_off = off - cv->src_start[i];
	*avail = blk_size(cv->src[i]) - *src_off;
	return i;
}

int blk_convert_read(struct blk_convert *cv, void *buf, uint64_t len, uint64_t off)
{
	uint8_t *p = buf;
	while (len > 0) {
		uint64_t so, avail;
		int i = locate(cv, off, &so, &avail);
		uint64_t n = len < avail ? len : avail;
		if (blk_pread(cv->src[i], p, (size_t)n, so) < 0)
			return -1;
		p += n;
		off += n;
		len -= n;
	}
	return 0;
}

int blk_convert_status(struct blk_convert *cv, uint64_t off, uint64_t len, bool *zero,
		       uint64_t *pnum)
{
	uint64_t so, avail;
	int i = locate(cv, off, &so, &avail);
	if (avail == 0) { /* a zero-sized source */
		*zero = true;
		*pnum = len;
		return 0;
	}
	if (off < cv->st_off || off >= cv->st_end) {
		struct blk_map m;
		if (blk_map_status(cv->src[i], so, avail, &m) < 0)
			return -1;
		cv->st_off = off;
		cv->st_end = off + m.pnum;
		cv->st_zero = (m.flags & BLK_STATUS_ZERO) || !(m.flags & BLK_STATUS_ALLOCATED);
	}
	*zero = cv->st_zero;
	*pnum = cv->st_end - off < len ? cv->st_end - off : len;
	return 0;
}

static int write_zero_run(struct blk_convert *cv, uint64_t off, uint64_t len)
{
	if (cv->sparse == 0) {
		/* -S 0: the output is fully allocated, zeros are written as data */
		if (!cv->zeros && !(cv->zeros = calloc(1, CHUNK)))
			return kite_error("out of memory");
		while (len > 0) {
			uint64_t n = len < CHUNK ? len : CHUNK;
			if (blk_pwrite(cv->dst, cv->zeros, (size_t)n, off) < 0)
				return -1;
			off += n;
			len -= n;
		}
		return 0;
	}
	/* a new image reads as zeros, unless it is encrypted raw (luks) */
	if (cv->dst_has_data || !blk_has_zero_init(cv->dst))
		return blk_write_zeroes(cv->dst, off, len, BLK_ZERO_MAY_UNMAP);
	return 0;
}

/* Zeros are gathered across block-status and piece boundaries and written as one run, as
 * qemu-img does: small zero writes at cluster edges would allocate clusters of zeros. */
static int flush_zeros(struct blk_convert *cv)
{
	if (!cv->zlen)
		return 0;
	int r = write_zero_run(cv, cv->zoff, cv->zlen);
	cv->zlen = 0;
	return r;
}

static int add_zeros(struct blk_convert *cv, uint64_t off, uint64_t len)
{
	if (cv->zlen && cv->zoff + cv->zlen == off) {
		cv->zlen += len;
		return 0;
	}
	if (flush_zeros(cv) < 0)
		return -1;
	cv->zoff = off;
	cv->zlen = len;
	return 0;
}

static int write_out(struct blk_convert *cv, const uint8_t *buf, uint64_t off, uint64_t len)
{
	if (flush_zeros(cv) < 0)
		return -1;
	return blk_pwrite(cv->dst, buf, (size_t)len, off);
}

/* Writes buf (data for [off, off+len)) skipping all-zero pieces of cv->sparse bytes. */
static int write_data(struct blk_convert *cv, const uint8_t *buf, uint64_t off, uint64_t len)
{
	if (cv->sparse == 0 || cv->no_zero_scan)
		return write_out(cv, buf, off, len);
	uint64_t g = cv->sparse;
	uint64_t pos = 0;
	while (pos < len) {
		/* pieces are aligned to g in output offsets */
		uint64_t piece = g - (off + pos) % g;
		if (piece > len - pos)
			piece = len - pos;
		bool zero = blk_is_zero(buf + pos, (size_t)piece);
		uint64_t run = piece;
		while (pos + run < len) {
			uint64_t p2 = g < len - pos - run ? g : len - pos - run;
			if (blk_is_zero(buf + pos + run, (size_t)p2) != zero)
				break;
			run += p2;
		}
		int r =
		    zero ? add_zeros(cv, off + pos, run) : write_out(cv, buf + pos, off + pos, run);
		if (r < 0)
			return -1;
		pos += run;
	}
	return 0;
}

int blk_convert_plain(struct blk_convert *cv)
{
	uint64_t off = 0;
	while (off < cv->total) {
		bool zero;
		uint64_t n;
		/* a run of zeros in one step, data STEP bytes at a time */
		if (blk_convert_status(cv, off, cv->total - off, &zero, &n) < 0)
			return -1;
		if (!zero && n > STEP)
			n = STEP;
		if (zero) {
			if (add_zeros(cv, off, n) < 0)
				return -1;
		} else {
			if (blk_convert_read(cv, cv->buf, n, off) < 0 ||
			    write_data(cv, cv->buf, off, n) < 0)
				return -1;
		}
		off += n;
		progress_update(&cv->prog, off, cv->total);
	}
	return flush_zeros(cv);
}

int blk_convert_over_backing(struct blk_convert *cv)
{
	struct blk *bk = blk_backing(cv->dst);
	uint64_t g = cv->dst_cluster ? cv->dst_cluster : 4096;
	uint8_t *old = malloc(CHUNK);
	int rc = -1;
	if (!old)
		return kite_error("out of memory");
	for (uint64_t off = 0; off < cv->total;) {
		uint64_t n = cv->total - off < CHUNK ? cv->total - off : CHUNK;
		uint64_t have = 0;
		if (bk && off < blk_size(bk))
			have = blk_size(bk) - off < n ? blk_size(bk) - off : n;
		if (blk_convert_read(cv, cv->buf, n, off) < 0 ||
		    (have && blk_pread(bk, old, (size_t)have, off) < 0))
			goto out;
		memset(old + have, 0, (size_t)(n - have));
		for (uint64_t pos = 0; pos < n;) {
			uint64_t piece = g - (off + pos) % g;
			if (piece > n - pos)
				piece = n - pos;
			if (memcmp(cv->buf + pos, old + pos, (size_t)piece)) {
				const uint8_t *p = cv->buf + pos;
				int r = blk_is_zero(p, (size_t)piece)
					    ? blk_write_zeroes(cv->dst, off + pos, piece, 0)
					: cv->compress
					    ? blk_pwrite_compressed(cv->dst, p, (size_t)piece,
								    off + pos)
					    : blk_pwrite(cv->dst, p, (size_t)piece, off + pos);
				if (r < 0)
					goto out;
			}
			pos += piece;
		}
		off += n;
		progress_update(&cv->prog, off, cv->total);
	}
	rc = 0;
out:
	free(old);
	return rc;
}

int blk_convert_image(struct blk *src, const char *out, const char *fmt, bool progress)
{
	if (strcmp(fmt, "raw") && strcmp(fmt, "qcow2"))
		return kite_error("cannot write format '%s' (use raw or qcow2)", fmt);
	struct blk_create_opts c = {.size = blk_size(src), .size_set = true};
	if (!strcmp(fmt, "qcow2")) /* qcow2 sizes are whole sectors, as in QEMU */
		c.size = (c.size + 511) & ~511ULL;
	if (blk_create(out, fmt, &c) < 0)
		return -1;
	uint64_t start = 0;
	struct blk_convert cv = {
	    .src = &src, .src_start = &start, .nsrc = 1, .total = blk_size(src), .sparse = 4096};
	/* kite img convert's default for its target: no syncs until the end */
	cv.dst = blk_open(out, fmt, BLK_O_RDWR | BLK_O_UNSAFE);
	if (!cv.dst)
		return -1;
	cv.dst_cluster = blk_cluster_size(cv.dst);
	progress_init(&cv.prog, progress);
	int r = blk_convert_init(&cv);
	if (r == 0)
		r = blk_convert_plain(&cv);
	if (r == 0)
		r = blk_flush(cv.dst);
	if (r == 0)
		progress_finish(&cv.prog);
	blk_convert_free(&cv);
	blk_close(cv.dst);
	return r;
}
