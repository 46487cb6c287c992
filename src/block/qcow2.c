/* qcow2: opening (header, extensions, validation of every table location), the header
 * rewrite, overlap checks against metadata, info and the driver table. */
#include "block/qcow2.h"
#include "block/qcow2_int.h"
#include "util/err.h"

#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int qcow2_probe(const uint8_t *buf, size_t len, const char *filename)
{
	/* any version: open names the unsupported ones rather than reading them as raw */
	if (len >= 4 && get_be32(buf) == QCOW2_MAGIC)
		return 100;
	return 0;
}

/* Name of incompatible feature bit `bit` from the image's feature name table, if any. */
/* qemu-img's report of incompatible features it cannot handle: the names the image's own
 * feature table gives them (in table order, up to its first unnamed entry), then the bits
 * left without a name. */
static int report_unsupported(struct qcow2 *q, const char *fn, uint64_t mask)
{
	char list[1024] = "";
	size_t n = 0;
	for (uint32_t i = 0; i + 48 <= q->feature_names_len && n < sizeof(list); i += 48) {
		const uint8_t *e = (const uint8_t *)q->feature_names + i;
		if (e[2] == '\0')
			break;
		if (e[0] != 0 || e[1] > 63 || !(mask & (1ull << e[1])))
			continue;
		n += (size_t)snprintf(list + n, sizeof(list) - n, "%s%.46s", n ? ", " : "",
				      (const char *)e + 2);
		mask &= ~(1ull << e[1]);
	}
	if (mask && n < sizeof(list))
		snprintf(list + n, sizeof(list) - n, "%sUnknown incompatible feature: %" PRIx64,
			 n ? ", " : "", mask);
	return kite_error("Could not open '%s': Unsupported qcow2 feature(s): %s", fn, list);
}

static int set_data_file_name(struct qcow2 *q, const uint8_t *data, uint32_t len)
{
	free(q->data_file_name);
	q->data_file_name = malloc(len + 1);
	if (!q->data_file_name)
		return kite_error("out of memory");
	memcpy(q->data_file_name, data, len);
	q->data_file_name[len] = 0;
	return 0;
}

/* QEMU's rules, met where it opens the data file (a metadata-only open does not): the
 * incompatible bit needs a name, then the file; without the bit a name is ignored (info
 * shows it) and the raw bit refused. */
static int open_data_file(struct blk *b, struct blk_open_ctx *ctx)
{
	struct qcow2 *q = Q(b);
	const char *fn = b->filename;
	if (b->flags & BLK_O_NO_IO)
		return 0;
	if (!qcow2_has_data_file(q)) {
		if (q->autoclear & QCOW2_AUTOCLEAR_DATA_RAW)
			return kite_error("Could not open '%s': data-file-raw requires a data file",
					  fn);
		return 0;
	}
	if (!q->data_file_name)
		return kite_error("Could not open '%s': 'data-file' is required for this image",
				  fn);
	if (!q->data_file_name[0])
		return kite_error("Could not open '%s': The 'file' block driver requires a file "
				  "name",
				  fn);
	return blk_open_data_file(b, ctx, q->data_file_name);
}

static int parse_extensions(struct blk *b, const uint8_t *hdr, uint64_t end)
{
	struct qcow2 *q = Q(b);
	uint64_t off = q->header_length;
	while (off + 8 <= end) {
		uint32_t type = get_be32(hdr + off);
		uint32_t len = get_be32(hdr + off + 4);
		off += 8;
		if (type == QCOW2_EXT_END)
			return 0;
		if (len > end - off) /* QEMU's words */
			return kite_error("Could not open '%s': Header extension too large",
					  b->filename);
		const uint8_t *data = hdr + off;
		if (type == QCOW2_EXT_BACKING_FMT) {
			if (len >= sizeof(q->backing_fmt))
				return kite_error("%s: backing format name too long", b->filename);
			memcpy(q->backing_fmt, data, len);
			q->backing_fmt[len] = 0;
		} else {
			/* kept as an extension too, so that header rewrites keep it */
			if (type == QCOW2_EXT_DATA_FILE && set_data_file_name(q, data, len) < 0)
				return -1;
			if (type == QCOW2_EXT_CRYPTO && qcow2_crypto_ext(b, data, len) < 0)
				return -1;
			if (type == QCOW2_EXT_FEATURES) {
				free(q->feature_names);
				q->feature_names = malloc(len + 1);
				if (!q->feature_names)
					return kite_error("out of memory");
				memcpy(q->feature_names, data, len);
				q->feature_names_len = len;
			}
			struct qcow2_ext *n =
			    realloc(q->exts, sizeof(*q->exts) * (size_t)(q->nb_exts + 1));
			if (!n)
				return kite_error("out of memory");
			q->exts = n;
			struct qcow2_ext *x = &q->exts[q->nb_exts++];
			x->type = type;
			x->len = len;
			x->data = malloc(len ? len : 1);
			if (!x->data)
				return kite_error("out of memory");
			memcpy(x->data, data, len);
		}
		off += (len + 7u) & ~7u;
	}
	return 0;
}

static int parse_header(struct blk *b, const uint8_t *h, uint64_t fsize)
{
	struct qcow2 *q = Q(b);
	const char *fn = b->filename;
	bool check = b->flags & BLK_O_CHECK; /* tables past the end of the file read as zeros */
	if (fsize < 72)
		return kite_error("%s: file too short for a qcow2 header", fn);
	if (get_be32(h) != QCOW2_MAGIC)
		return kite_error("%s: not a qcow2 image (bad magic)", fn);
	q->version = get_be32(h + 4);
	if (q->version != 2 && q->version != 3)
		return kite_error("%s: unsupported qcow2 version %u", fn, q->version);
	q->cluster_bits = get_be32(h + 20);
	if (q->cluster_bits < QCOW2_MIN_CLUSTER || q->cluster_bits > QCOW2_MAX_CLUSTER)
		return kite_error("%s: unsupported cluster size: 2^%u bytes", fn, q->cluster_bits);
	q->cluster_size = 1ull << q->cluster_bits;
	q->size = get_be64(h + 24);
	if (qcow2_crypto_method(b, get_be32(h + 32)) < 0)
		return -1;
	q->l1_size = get_be32(h + 36);
	q->l1_offset = get_be64(h + 40);
	q->rt_offset = get_be64(h + 48);
	q->rt_clusters = get_be32(h + 56);
	q->nb_snapshots = get_be32(h + 60);
	q->snapshots_offset = get_be64(h + 64);
	q->refcount_order = 4;
	q->header_length = 72;
	if (q->version == 3) {
		if (fsize < 104)
			return kite_error("%s: file too short for a qcow2 v3 header", fn);
		q->incompat = get_be64(h + 72);
		q->compat = get_be64(h + 80);
		q->autoclear = get_be64(h + 88);
		q->refcount_order = get_be32(h + 96);
		q->header_length = get_be32(h + 100);
		if (q->header_length < 104 || q->header_length > q->cluster_size ||
		    q->header_length % 8)
			return kite_error("%s: invalid header length %u", fn, q->header_length);
		if (q->header_length > 104)
			q->compression_type = h[104];
		if (q->header_length > 105) {
			q->hdr_tail = malloc(q->header_length - 105);
			if (!q->hdr_tail)
				return kite_error("out of memory");
			memcpy(q->hdr_tail, h + 105, q->header_length - 105);
		}
	}
	if (q->refcount_order > 6)
		return kite_error("%s: invalid refcount order %u", fn, q->refcount_order);
	q->refcount_bits = 1u << q->refcount_order;
	q->extended_l2 = (q->incompat & QCOW2_INCOMPAT_EXTL2) != 0;
	q->l2_entry_bytes = q->extended_l2 ? 16 : 8;
	q->l2_entries = q->cluster_size / q->l2_entry_bytes;
	q->subcluster_bits = q->extended_l2 ? q->cluster_bits - 5 : q->cluster_bits;
	q->rb_entries = q->cluster_size * 8 / q->refcount_bits;

	if (parse_extensions(b, h, q->cluster_size) < 0)
		return -1;
	uint64_t unknown = q->incompat & ~QCOW2_INCOMPAT_KNOWN;
	if (unknown)
		return report_unsupported(q, fn, unknown);
	/* QEMU's words: scripts match them */
	if (q->compression_type > 1)
		return kite_error("Could not open '%s': qcow2: unknown compression type: %u", fn,
				  q->compression_type);
	bool comp_bit = q->incompat & QCOW2_INCOMPAT_COMPRESSION;
	if (comp_bit != (q->compression_type != 0))
		return kite_error("Could not open '%s': qcow2: Compression type incompatible "
				  "feature bit must %sbe set",
				  fn, comp_bit ? "not " : "");
	if (q->extended_l2 && q->cluster_bits < 14)
		return kite_error("%s: extended L2 entries need clusters of 16 KiB or more", fn);

	/* Table locations: aligned, inside the file, sizes within QEMU's limits. */
	uint64_t cmask = q->cluster_size - 1;
	if ((uint64_t)q->l1_size * 8 > QCOW2_MAX_L1_BYTES)
		return kite_error("%s: active L1 table too large (%u entries)", fn, q->l1_size);
	uint64_t per_l1 = q->l2_entries * q->cluster_size; /* bytes one L1 entry maps */
	if (q->size > (uint64_t)q->l1_size * per_l1)
		return kite_error("%s: L1 table too small (%u entries) for the image size %llu", fn,
				  q->l1_size, (unsigned long long)q->size);
	if (q->size > (1ull << 62))
		return kite_error("%s: image size too large", fn);
	if (q->l1_size &&
	    ((q->l1_offset & cmask) ||
	     (!check && (q->l1_offset > fsize || (uint64_t)q->l1_size * 8 > fsize - q->l1_offset))))
		return kite_error("%s: active L1 table offset 0x%llx invalid or beyond the end of "
				  "the file",
				  fn, (unsigned long long)q->l1_offset);
	if ((uint64_t)q->rt_clusters * q->cluster_size > QCOW2_MAX_RT_BYTES)
		return kite_error("%s: refcount table too large", fn);
	if ((q->rt_offset & cmask) ||
	    (!check && (!q->rt_clusters || q->rt_offset > fsize ||
			(uint64_t)q->rt_clusters * q->cluster_size > fsize - q->rt_offset)))
		return kite_error("%s: refcount table offset 0x%llx invalid or beyond the end of "
				  "the file",
				  fn, (unsigned long long)q->rt_offset);
	if (check) {
		/* the check reads the snapshot table itself */
		q->nb_snapshots = 0;
		q->snapshots_offset = 0;
	}
	if (q->nb_snapshots > QCOW2_MAX_SNAPSHOTS)
		return kite_error("%s: too many snapshots (%u)", fn, q->nb_snapshots);
	if (q->nb_snapshots && ((q->snapshots_offset & cmask) || q->snapshots_offset >= fsize))
		return kite_error("%s: snapshot table offset invalid or beyond the end of the file",
				  fn);

	uint64_t bf_off = get_be64(h + 8);
	uint32_t bf_len = get_be32(h + 16);
	if (bf_off) {
		if (bf_len > QCOW2_MAX_BACKING || bf_off > q->cluster_size ||
		    bf_len > q->cluster_size - bf_off)
			return kite_error("%s: backing file name invalid or too long", fn);
		q->backing_file = malloc(bf_len + 1);
		if (!q->backing_file)
			return kite_error("out of memory");
		memcpy(q->backing_file, h + bf_off, bf_len);
		q->backing_file[bf_len] = 0;
	}
	return 0;
}

static int load_tables(struct blk *b)
{
	struct qcow2 *q = Q(b);
	q->l1 = calloc(q->l1_size ? q->l1_size : 1, 8);
	q->rt_entries = (uint64_t)q->rt_clusters * q->cluster_size / 8;
	q->rt = calloc(q->rt_entries ? q->rt_entries : 1, 8);
	if (!q->l1 || !q->rt)
		return kite_error("out of memory");
	if (q->l1_size) {
		if (blk_file_pread(b->fd, q->l1, (size_t)q->l1_size * 8, q->l1_offset,
				   b->filename) < 0)
			return -1;
		for (uint32_t i = 0; i < q->l1_size; i++)
			q->l1[i] = get_be64((uint8_t *)&q->l1[i]);
	}
	if (blk_file_pread(b->fd, q->rt, q->rt_entries * 8, q->rt_offset, b->filename) < 0)
		return -1;
	for (uint64_t i = 0; i < q->rt_entries; i++) {
		q->rt[i] = get_be64((uint8_t *)&q->rt[i]);
		if (q->rt[i] & (q->cluster_size - 1) & RTE_OFFSET_MASK)
			return kite_error("%s: refcount block %llu offset 0x%llx is not cluster "
					  "aligned",
					  b->filename, (unsigned long long)i,
					  (unsigned long long)q->rt[i]);
	}
	return 0;
}

static void qcow2_close(struct blk *b)
{
	struct qcow2 *q = Q(b);
	if (!q)
		return;
	qcow2_bitmaps_close(b);
	qcow2_crypto_close(q);
	if ((b->flags & BLK_O_RDWR) && q->header_dirty_set && qcow2_flush_all(b) == 0 &&
	    q->nb_pending == 0) {
		/* Lazy refcounts: the refcounts are whole again, clear the dirty bit. */
		if (qcow2_set_incompat(b, q->incompat & ~QCOW2_INCOMPAT_DIRTY) == 0)
			blk_sync(b);
	}
	mcache_free(&q->l2c);
	mcache_free(&q->rbc);
	qcow2_compress_free(q);
	qcow2_free_snapshots(q);
	for (int i = 0; i < q->nb_exts; i++)
		free(q->exts[i].data);
	free(q->exts);
	free(q->feature_names);
	free(q->hdr_tail);
	free(q->backing_file);
	free(q->data_file_name);
	free(q->pending_free);
	free(q->l1);
	free(q->rt);
	free(q->meta_map);
	free(q);
	b->opaque = NULL;
}

/* Autoclear features kite does not maintain become invalid once it writes: their bits are
 * cleared. Bitmaps kite maintains (qcow2_bitmap_track.c) and keeps; a bitmaps extension
 * whose autoclear bit a writer cleared already is stale and dropped (its clusters stay
 * leaked, as QEMU leaves them). */
int qcow2_drop_autoclear(struct blk *b)
{
	struct qcow2 *q = Q(b);
	int bm = -1;
	for (int i = 0; i < q->nb_exts; i++)
		if (q->exts[i].type == QCOW2_EXT_BITMAPS)
			bm = i;
	uint64_t keep = q->version == 3 ? q->autoclear & QCOW2_AUTOCLEAR_BITMAPS : 0;
	if (qcow2_has_data_file(q)) /* kite keeps the data file raw: guest offset == host */
		keep |= q->autoclear & QCOW2_AUTOCLEAR_DATA_RAW;
	bool stale = bm >= 0 && !(keep & QCOW2_AUTOCLEAR_BITMAPS);
	if (q->autoclear == keep && !stale)
		return 0;
	if (stale) {
		free(q->exts[bm].data);
		memmove(&q->exts[bm], &q->exts[bm + 1],
			sizeof(*q->exts) * (size_t)(q->nb_exts - bm - 1));
		q->nb_exts--;
	}
	q->autoclear = keep;
	return qcow2_write_header(b);
}

static int qcow2_open(struct blk *b, struct blk_open_ctx *ctx)
{
	struct qcow2 *q = calloc(1, sizeof(*q));
	if (!q)
		return kite_error("out of memory");
	b->opaque = q;
	/* Metadata I/O is unaligned: cache=none is not honoured for qcow2 (flushes are). */
	int fl = fcntl(b->fd, F_GETFL);
	if (fl >= 0 && (fl & O_DIRECT))
		fcntl(b->fd, F_SETFL, fl & ~O_DIRECT);
	uint64_t fsize;
	uint8_t *hdr = calloc(1, 1u << QCOW2_MAX_CLUSTER);
	int r = -1;
	if (!hdr) {
		kite_error("out of memory");
		goto out;
	}
	/* The header cluster: its size is in the first bytes (invalid sizes fail later). */
	if (blk_file_size(b->fd, &fsize, b->filename) < 0 ||
	    blk_file_pread(b->fd, hdr, 512, 0, b->filename) < 0)
		goto out;
	uint32_t bits = get_be32(hdr + 20);
	if (bits > QCOW2_MIN_CLUSTER && bits <= QCOW2_MAX_CLUSTER &&
	    blk_file_pread(b->fd, hdr, 1u << bits, 0, b->filename) < 0)
		goto out;
	if (parse_header(b, hdr, fsize) < 0 || load_tables(b) < 0 || qcow2_crypto_open(b) < 0)
		goto out;
	q->file_end = fsize;
	q->meta_prealloc = -1;
	mcache_init(&q->l2c, true, q->cluster_size);
	mcache_init(&q->rbc, false, q->cluster_size);
	if (qcow2_read_snapshots(b) < 0)
		goto out;
	if (open_data_file(b, ctx) < 0) /* before anything is written */
		goto out;
	if ((b->flags & BLK_O_RDWR) && !(b->flags & BLK_O_CHECK)) {
		if (q->incompat & QCOW2_INCOMPAT_CORRUPT) {
			kite_error("%s: the image is marked corrupt; open it read-only or repair "
				   "it with 'kite img check -r all'",
				   b->filename);
			goto out;
		}
		if (q->incompat & QCOW2_INCOMPAT_DIRTY) {
			/* Lazy refcounts were not written back: rebuild them first. */
			struct blk_check_result res;
			unsigned quiet = (b->flags & BLK_O_REPAIR_VERBOSE) ? 0 : QCOW2_CHECK_QUIET;
			if (qcow2_check(b, BLK_CHECK_FIX_LEAKS | BLK_CHECK_FIX_ERRORS | quiet,
					&res) < 0 ||
			    res.check_errors || res.corruptions) {
				kite_error("%s: the image is dirty and its refcounts could not be "
					   "rebuilt",
					   b->filename);
				goto out;
			}
			if (qcow2_set_incompat(b, q->incompat & ~QCOW2_INCOMPAT_DIRTY) < 0)
				goto out;
		}
		if (qcow2_drop_autoclear(b) < 0)
			goto out;
	}
	b->size = q->size;
	if (q->backing_file && blk_open_backing(b, ctx, q->backing_file, q->backing_fmt) < 0)
		goto out;
	r = 0;
out:
	free(hdr);
	if (r < 0) {
		blk_close(b->backing);
		b->backing = NULL;
		qcow2_close(b);
	}
	return r;
}

/* Rewrites the header cluster: fixed fields, extensions, backing file name. */
int qcow2_write_header(struct blk *b)
{
	struct qcow2 *q = Q(b);
	size_t cs = q->cluster_size;
	uint8_t *h = calloc(1, cs);
	if (!h)
		return kite_error("out of memory");
	put_be32(h, QCOW2_MAGIC);
	put_be32(h + 4, q->version);
	put_be32(h + 20, q->cluster_bits);
	put_be32(h + 32, q->crypt_method);
	put_be64(h + 24, q->size);
	put_be32(h + 36, q->l1_size);
	put_be64(h + 40, q->l1_offset);
	put_be64(h + 48, q->rt_offset);
	put_be32(h + 56, q->rt_clusters);
	put_be32(h + 60, q->nb_snapshots);
	put_be64(h + 64, q->snapshots_offset);
	size_t off = 72;
	if (q->version == 3) {
		put_be64(h + 72, q->incompat);
		put_be64(h + 80, q->compat);
		put_be64(h + 88, q->autoclear);
		put_be32(h + 96, q->refcount_order);
		uint32_t hl = q->header_length < 112 ? 112 : q->header_length;
		put_be32(h + 100, hl);
		h[104] = q->compression_type;
		if (q->hdr_tail && q->header_length > 105)
			memcpy(h + 105, q->hdr_tail, q->header_length - 105);
		off = hl;
	}
	int r = -1;
	size_t need = off;
	if (q->backing_fmt[0])
		need += 8 + ((strlen(q->backing_fmt) + 7) & ~7u);
	for (int i = 0; i < q->nb_exts; i++)
		need += 8 + ((q->exts[i].len + 7u) & ~7u);
	need += 8 + (q->backing_file ? strlen(q->backing_file) : 0);
	if (need > cs) {
		kite_error("%s: header extensions and backing file name do not fit in one "
			   "cluster",
			   b->filename);
		goto out;
	}
	if (q->backing_fmt[0]) {
		uint32_t l = (uint32_t)strlen(q->backing_fmt);
		put_be32(h + off, QCOW2_EXT_BACKING_FMT);
		put_be32(h + off + 4, l);
		memcpy(h + off + 8, q->backing_fmt, l);
		off += 8 + ((l + 7u) & ~7u);
	}
	for (int i = 0; i < q->nb_exts; i++) {
		put_be32(h + off, q->exts[i].type);
		put_be32(h + off + 4, q->exts[i].len);
		memcpy(h + off + 8, q->exts[i].data, q->exts[i].len);
		off += 8 + ((q->exts[i].len + 7u) & ~7u);
	}
	off += 8; /* end-of-extensions marker (zeros) */
	if (q->backing_file) {
		size_t l = strlen(q->backing_file);
		put_be64(h + 8, off);
		put_be32(h + 16, (uint32_t)l);
		memcpy(h + off, q->backing_file, l);
	}
	r = blk_file_pwrite(b->fd, h, cs, 0, b->filename);
out:
	free(h);
	return r;
}

int qcow2_set_incompat(struct blk *b, uint64_t incompat)
{
	struct qcow2 *q = Q(b);
	if (q->version < 3)
		return 0;
	uint8_t v[8];
	put_be64(v, incompat);
	if (blk_file_pwrite(b->fd, v, 8, 72, b->filename) < 0)
		return -1;
	q->incompat = incompat;
	return 0;
}

/* Lazy refcounts: before the first write, mark the image dirty so that a crash makes the
 * next writer rebuild the refcounts. */
int qcow2_mark_dirty(struct blk *b)
{
	struct qcow2 *q = Q(b);
	if (q->header_dirty_set || !(q->compat & QCOW2_COMPAT_LAZY) || q->version < 3)
		return 0;
	if (qcow2_set_incompat(b, q->incompat | QCOW2_INCOMPAT_DIRTY) < 0)
		return -1;
	if (blk_sync(b) < 0)
		return -1;
	q->header_dirty_set = true;
	return 0;
}

static int qcow2_flush(struct blk *b)
{
	return qcow2_flush_all(b);
}

static uint32_t qcow2_cluster_size(const struct blk *b)
{
	return (uint32_t)((struct qcow2 *)b->opaque)->cluster_size;
}

static int qcow2_info(struct blk *b, struct blk_info *info)
{
	struct qcow2 *q = Q(b);
	info->cluster_size = (uint32_t)q->cluster_size;
	info->dirty = (q->incompat & QCOW2_INCOMPAT_DIRTY) != 0;
	if (q->backing_file)
		snprintf(info->backing_file, sizeof(info->backing_file), "%s", q->backing_file);
	snprintf(info->backing_format, sizeof(info->backing_format), "%s", q->backing_fmt);
	snprintf(info->compat, sizeof(info->compat), "%s", q->version == 2 ? "0.10" : "1.1");
	info->lazy_refcounts = (q->compat & QCOW2_COMPAT_LAZY) != 0;
	info->corrupt = (q->incompat & QCOW2_INCOMPAT_CORRUPT) != 0;
	info->extended_l2 = q->extended_l2;
	info->refcount_bits = (int)q->refcount_bits;
	snprintf(info->compression_type, sizeof(info->compression_type), "%s",
		 q->compression_type ? "zstd" : "zlib");
	info->nb_snapshots = (int)q->nb_snapshots;
	info->has_data_file = qcow2_has_data_file(q);
	info->has_data_file_name = q->data_file_name != NULL;
	if (q->data_file_name)
		snprintf(info->data_file, sizeof(info->data_file), "%s", q->data_file_name);
	info->data_file_raw = (q->autoclear & QCOW2_AUTOCLEAR_DATA_RAW) != 0;
	qcow2_crypto_info(b, info);
	return 0;
}

static int qcow2_change_backing(struct blk *b, const char *file, const char *fmt)
{
	struct qcow2 *q = Q(b);
	if (file && strlen(file) > QCOW2_MAX_BACKING)
		return kite_error("%s: backing file name too long", b->filename);
	if (fmt && strlen(fmt) >= sizeof(q->backing_fmt))
		return kite_error("%s: backing format name too long", b->filename);
	char *old = q->backing_file;
	char oldfmt[sizeof(q->backing_fmt)];
	memcpy(oldfmt, q->backing_fmt, sizeof(oldfmt));
	q->backing_file = file ? strdup(file) : NULL;
	if (file && !q->backing_file)
		return kite_error("out of memory");
	snprintf(q->backing_fmt, sizeof(q->backing_fmt), "%s", (file && fmt) ? fmt : "");
	if (qcow2_flush_all(b) < 0 || qcow2_write_header(b) < 0) {
		free(q->backing_file);
		q->backing_file = old;
		memcpy(q->backing_fmt, oldfmt, sizeof(oldfmt));
		return -1;
	}
	free(old);
	if (blk_sync(b) < 0)
		return -1;
	return 0;
}

static int qcow2_preallocate_grown(struct blk *b, uint64_t from, uint64_t to,
				   enum blk_prealloc mode)
{
	/* a preallocated cluster without subclusters would hide the backing file's data */
	if (b->backing && !Q(b)->extended_l2)
		return kite_error("Backing file and preallocation can only be used at the same "
				  "time if extended_l2 is on");
	return qcow2_preallocate(b, from, to, mode);
}

static const struct blk_driver qcow2_driver = {
    .name = "qcow2",
    .has_backing = true,
    .size_align = 512,
    .list_rank = 1,
    .probe = qcow2_probe,
    .open = qcow2_open,
    .create = qcow2_create,
    .create_desc = &qcow2_create_desc,
    .read = qcow2_read,
    .write = qcow2_write_tracked,
    .write_compressed = qcow2_write_compressed_tracked,
    .compress = qcow2_compress,
    .write_precompressed = qcow2_write_precompressed_tracked,
    .flush = qcow2_flush,
    .discard = qcow2_discard_tracked,
    .zero = qcow2_zero_tracked,
    .block_status = qcow2_block_status,
    .resize = qcow2_resize_tracked,
    .preallocate = qcow2_preallocate_grown,
    .load_snapshot = qcow2_load_snapshot,
    .snapshot_list = qcow2_snapshot_list_blk,
    .snapshot_create = qcow2_snapshot_create,
    .snapshot_apply = qcow2_snapshot_apply,
    .snapshot_create_vmstate = qcow2_snapshot_create_vmstate,
    .snapshot_read_vmstate = qcow2_snapshot_read_vmstate,
    .snapshot_delete = qcow2_snapshot_delete,
    .check = qcow2_check_blk,
    .close = qcow2_close,
    .info = qcow2_info,
    .info_json = qcow2_info_json,
    .measure = qcow2_measure,
    .amend_opts = qcow2_amend_opts,
    .amend = qcow2_amend_blk,
    .make_empty = qcow2_make_empty,
    .change_backing = qcow2_change_backing,
    .cluster_size = qcow2_cluster_size,
    .bitmap_change = qcow2_bitmap_change,
};

BLK_DRIVER(qcow2_driver)
