/* qcow2 compressed clusters: descriptors, zlib (raw deflate, 4 KiB window, as QEMU) and
 * zstd decompression on read, compression and byte-granular packing on write. */
#include "block/qcow2_int.h"
#include "util/err.h"

#include <lz4.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

static unsigned csize_shift(const struct qcow2 *q)
{
	return 62 - (q->cluster_bits - 8);
}

int qcow2_compressed_range(const struct qcow2 *q, uint64_t e, uint64_t *off, uint64_t *len)
{
	unsigned x = csize_shift(q);
	uint64_t coff = e & ((1ull << x) - 1);
	uint64_t nb = ((e >> x) & ((1ull << (q->cluster_bits - 8)) - 1)) + 1;
	*off = coff;
	*len = nb * 512 - (coff & 511);
	return coff ? 0 : -1;
}

void qcow2_compress_free(struct qcow2 *q)
{
	free(q->cz_buf);
	free(q->cz_in);
	q->cz_buf = q->cz_in = NULL;
	ZSTD_freeDCtx(q->zstd_d);
	q->zstd_d = NULL;
}

static int inflate_cluster(const uint8_t *in, size_t inlen, uint8_t *out, size_t outlen)
{
	z_stream s;
	memset(&s, 0, sizeof(s));
	if (inflateInit2(&s, -12) != Z_OK)
		return -1;
	s.next_in = (Bytef *)in;
	s.avail_in = (uInt)inlen;
	s.next_out = out;
	s.avail_out = (uInt)outlen;
	int ret = inflate(&s, Z_FINISH);
	int ok = (ret == Z_STREAM_END || ret == Z_BUF_ERROR) && s.avail_out == 0;
	inflateEnd(&s);
	return ok ? 0 : -1;
}

static int zstd_cluster(struct qcow2 *q, const uint8_t *in, size_t inlen, uint8_t *out,
			size_t outlen)
{
	if (!q->zstd_d && !(q->zstd_d = ZSTD_createDCtx()))
		return -1;
	ZSTD_DCtx_reset(q->zstd_d, ZSTD_reset_session_only);
	ZSTD_inBuffer ib = {in, inlen, 0};
	ZSTD_outBuffer ob = {out, outlen, 0};
	while (ob.pos < ob.size) {
		size_t in0 = ib.pos, out0 = ob.pos;
		size_t r = ZSTD_decompressStream(q->zstd_d, &ob, &ib);
		if (ZSTD_isError(r))
			return -1;
		if (ib.pos == in0 && ob.pos == out0)
			return -1; /* truncated input */
	}
	return 0;
}

/* Decompresses the cluster of L2 entry `e` into q->cz_buf (cached by host offset). */
int qcow2_read_compressed(struct blk *b, uint64_t e, uint8_t *unused)
{
	struct qcow2 *q = Q(b);
	uint64_t coff, clen;
	if (qcow2_compressed_range(q, e, &coff, &clen) < 0)
		return kite_error("%s: corrupt image: compressed cluster at offset 0", b->filename);
	if (q->cz_buf && q->cz_off == coff)
		return 0;
	if (coff >= q->file_end)
		return kite_error("%s: corrupt image: compressed cluster at 0x%llx is past the end "
				  "of the file",
				  b->filename, (unsigned long long)coff);
	if (!q->cz_buf) {
		q->cz_buf = malloc(q->cluster_size);
		q->cz_in = malloc(q->cluster_size * 2 + 512);
		if (!q->cz_buf || !q->cz_in)
			return kite_error("out of memory");
	}
	if (clen > q->cluster_size * 2 + 512)
		return kite_error("%s: corrupt image: compressed cluster too large", b->filename);
	q->cz_off = 0;
	if (blk_file_pread(b->fd, q->cz_in, clen, coff, b->filename) < 0)
		return -1;
	int r = q->compression_type == 1
		    ? zstd_cluster(q, q->cz_in, clen, q->cz_buf, q->cluster_size)
		    : inflate_cluster(q->cz_in, clen, q->cz_buf, q->cluster_size);
	if (r < 0)
		return kite_error("%s: corrupt image: compressed cluster at 0x%llx does not "
				  "decompress (%s)",
				  b->filename, (unsigned long long)coff,
				  q->compression_type == 1 ? "zstd" : "zlib");
	q->cz_off = coff;
	return 0;
}

/* One zstd context per thread, freed when the thread exits. */
static pthread_key_t cctx_key;
static pthread_once_t cctx_once = PTHREAD_ONCE_INIT;

static void free_cctx(void *p)
{
	ZSTD_freeCCtx(p);
}

static void make_key(void)
{
	pthread_key_create(&cctx_key, free_cctx);
}

static ZSTD_CCtx *thread_cctx(void)
{
	pthread_once(&cctx_once, make_key);
	ZSTD_CCtx *c = pthread_getspecific(cctx_key);
	if (!c) {
		c = ZSTD_createCCtx();
		if (c && pthread_setspecific(cctx_key, c)) {
			ZSTD_freeCCtx(c);
			c = NULL;
		}
	}
	return c;
}

/* True when the cluster is certainly not worth compressing: LZ4 finds too few repeats to
 * save 1/256 of it, and its bytes are so evenly spread that an ideal order-0 code (what
 * deflate's Huffman stage and zstd's literal coding can reach at best) saves under 1/256
 * of it either. Random or already compressed/encrypted data then costs a fast LZ4 pass
 * and a histogram (about 20 us for 64 KiB) instead of a full zlib/zstd run (many times
 * slower on such data) that would end with the cluster stored plainly anyway; LZ4 goes
 * first as the cheaper test (about 4 us), which compressible data mostly passes.
 * Thread-safe. */
static bool incompressible(const uint8_t *in, size_t len, uint8_t *scratch, size_t room)
{
	size_t margin = len / 256;
	if (margin == 0 || len > INT32_MAX)
		return false;
	/* dstCapacity below the input: 0 means LZ4 could not get that small */
	if (LZ4_compress_default((const char *)in, (char *)scratch, (int)len,
				 (int)(room < len - margin ? room : len - margin)) != 0)
		return false;
	uint32_t h[4][256] = {{0}};
	size_t i = 0;
	for (; i + 4 <= len; i += 4) {
		h[0][in[i]]++;
		h[1][in[i + 1]]++;
		h[2][in[i + 2]]++;
		h[3][in[i + 3]]++;
	}
	for (; i < len; i++)
		h[0][in[i]]++;
	double bits = 0;
	for (int c = 0; c < 256; c++) {
		uint32_t n = h[0][c] + h[1][c] + h[2][c] + h[3][c];
		if (n)
			bits += n * log2((double)len / n);
	}
	return bits / 8 >= (double)(len - margin);
}

/* Compressed size, or 0 when compression does not shrink the cluster. Thread-safe. */
static size_t compress_cluster(int type, const uint8_t *in, size_t len, uint8_t *out, size_t outlen)
{
	/* `out` has room for the whole cluster: scratch space for the LZ4 probe */
	if (incompressible(in, len, out, outlen))
		return 0;
	if (type == 1) {
		ZSTD_CCtx *cctx = thread_cctx();
		if (!cctx)
			return 0;
		size_t r = ZSTD_compressCCtx(cctx, out, outlen, in, len, ZSTD_CLEVEL_DEFAULT);
		return ZSTD_isError(r) || r >= len ? 0 : r;
	}
	z_stream s;
	memset(&s, 0, sizeof(s));
	if (deflateInit2(&s, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -12, 9, Z_DEFAULT_STRATEGY) != Z_OK)
		return 0;
	s.next_in = (Bytef *)in;
	s.avail_in = (uInt)len;
	s.next_out = out;
	s.avail_out = (uInt)outlen;
	int ret = deflate(&s, Z_FINISH);
	size_t n = outlen - s.avail_out;
	deflateEnd(&s);
	return ret == Z_STREAM_END && n < len ? n : 0;
}

int qcow2_compress(const struct blk *b, const void *buf, size_t len, void *out, size_t *outlen)
{
	const struct qcow2 *q = b->opaque;
	size_t cs = q->cluster_size;
	*outlen = 0;
	if (len > cs)
		return kite_error("%s: compressed writes must cover one whole cluster",
				  b->filename);
	if (len == cs) {
		*outlen = compress_cluster(q->compression_type, buf, cs, out, cs);
		return 0;
	}
	uint8_t *in = calloc(1, cs); /* the tail cluster, padded with zeros */
	if (!in)
		return kite_error("out of memory");
	memcpy(in, buf, len);
	*outlen = compress_cluster(q->compression_type, in, cs, out, cs);
	free(in);
	return 0;
}

/* Host bytes for compressed data, packed after the previous compressed cluster. */
static int64_t alloc_bytes(struct blk *b, uint64_t len)
{
	struct qcow2 *q = Q(b);
	uint64_t cs = q->cluster_size;
	if (q->cbyte_off && q->cbyte_off % cs) {
		uint64_t room = cs - q->cbyte_off % cs;
		uint64_t cur = q->cbyte_off - q->cbyte_off % cs;
		int64_t r = 0;
		uint64_t rc;
		if (qcow2_get_refcount(b, cur >> q->cluster_bits, &rc) < 0)
			return -1;
		/* Narrow refcounts (refcount_bits=1..4) limit how many share a cluster. */
		if (q->refcount_bits < 64 && rc >= (1ull << q->refcount_bits) - 1)
			r = 1;
		else if (len > room)
			r = qcow2_alloc_clusters_at(b, cur + cs, (len - room + cs - 1) / cs);
		if (r < 0)
			return -1;
		if (r == 0) {
			if (qcow2_update_refcount(b, cur, cs, 1) < 0)
				return -1;
			int64_t off = (int64_t)q->cbyte_off;
			q->cbyte_off += len;
			return off;
		}
	}
	int64_t h = qcow2_alloc_clusters(b, (len + cs - 1) / cs);
	if (h < 0)
		return -1;
	q->cbyte_off = (uint64_t)h + len;
	return h;
}

int qcow2_write_precompressed(struct blk *b, const void *cdata, size_t clen, uint64_t off)
{
	struct qcow2 *q = Q(b);
	uint64_t cs = q->cluster_size;
	if (qcow2_encrypted(q))
		return kite_error("Compression and encryption not supported at the same time");
	if (qcow2_has_data_file(q)) /* qemu-img's words for QEMU's -ENOTSUP */
		return kite_error("error while writing at byte %llu: Operation not supported",
				  (unsigned long long)off);
	if (off % cs || clen == 0 || clen >= cs)
		return kite_error("%s: bad compressed cluster write", b->filename);
	if (qcow2_mark_dirty(b) < 0)
		return -1;
	uint64_t per_l1 = q->l2_entries * cs;
	uint8_t *l2;
	if (qcow2_get_l2(b, off / per_l1, true, &l2) < 0)
		return -1;
	uint64_t l2off = q->l1[off / per_l1] & L1E_OFFSET_MASK;
	int64_t h = alloc_bytes(b, clen);
	if (h < 0 || qcow2_check_overlap(b, (uint64_t)h, clen, "compressed cluster") < 0 ||
	    blk_file_pwrite(b->fd, cdata, clen, (uint64_t)h, b->filename) < 0)
		return -1;
	l2 = mcache_get(b, &q->l2c, l2off, true);
	if (!l2)
		return -1;
	uint64_t i = (off % per_l1) / cs;
	uint64_t old = qcow2_l2_get(q, l2, i, NULL);
	if (old & OFLAG_COMPRESSED) {
		uint64_t co, cl;
		if (qcow2_compressed_range(q, old, &co, &cl) == 0 &&
		    qcow2_free_later(b, co, cl) < 0)
			return -1;
	} else if ((old & L2E_OFFSET_MASK) && qcow2_free_later(b, old & L2E_OFFSET_MASK, cs) < 0) {
		return -1;
	}
	uint64_t nb = (((uint64_t)h + clen - 1) >> 9) - ((uint64_t)h >> 9);
	qcow2_l2_set(q, l2, i, OFLAG_COMPRESSED | (nb << csize_shift(q)) | (uint64_t)h, 0);
	mcache_dirty(&q->l2c, l2);
	q->cz_off = 0;
	return 0;
}

int qcow2_write_compressed(struct blk *b, const void *buf, size_t len, uint64_t off)
{
	struct qcow2 *q = Q(b);
	uint64_t cs = q->cluster_size;
	if (qcow2_encrypted(q))
		return kite_error("Compression and encryption not supported at the same time");
	if (qcow2_has_data_file(q)) /* qemu-img's words for QEMU's -ENOTSUP */
		return kite_error("error while writing at byte %llu: Operation not supported",
				  (unsigned long long)off);
	if (off % cs || (len != cs && off + len != q->size) || len > cs)
		return kite_error("%s: compressed writes must cover one whole cluster",
				  b->filename);
	uint8_t *out = malloc(cs);
	if (!out)
		return kite_error("out of memory");
	size_t clen;
	int r = qcow2_compress(b, buf, len, out, &clen);
	if (r == 0)
		r = clen ? qcow2_write_precompressed(b, out, clen, off)
			 : qcow2_write(b, buf, len, off); /* incompressible: store it plainly */
	free(out);
	return r;
}
