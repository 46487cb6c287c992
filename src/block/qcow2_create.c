/* qcow2 image creation: header, refcount table and blocks describing the initial
 * clusters, the L1 table, then optional preallocation through the normal write path. */
#include "block/qcow2_int.h"
#include "util/err.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int check_opts(const char *path, const struct blk_create_opts *o, int *version,
		      unsigned *cbits, unsigned *rorder)
{
	uint64_t cs = o->cluster_size ? o->cluster_size : 65536;
	if (cs < 512 || cs > (2u << 20) || (cs & (cs - 1)))
		return kite_error("%s: cluster size must be a power of two between 512 and 2M",
				  path);
	*cbits = (unsigned)__builtin_ctzll(cs);
	*version = o->compat ? o->compat : 3;
	if (*version != 2 && *version != 3)
		return kite_error("%s: invalid compat level", path);
	int rb = o->refcount_bits ? o->refcount_bits : 16;
	if (rb > 64 || (rb & (rb - 1)))
		return kite_error("%s: refcount width must be a power of two and may not exceed 64 "
				  "bits",
				  path);
	*rorder = (unsigned)__builtin_ctz((unsigned)rb);
	if (*version == 2) {
		if (rb != 16)
			return kite_error("%s: different refcount widths than 16 bits require "
					  "compatibility level 1.1 or above (use compat=1.1 or "
					  "greater)",
					  path);
		if (o->lazy_refcounts)
			return kite_error("%s: lazy refcounts only supported with compatibility "
					  "level 1.1 and above (use compat=1.1 or greater)",
					  path);
		if (o->extended_l2)
			return kite_error("%s: extended L2 entries are only supported with "
					  "compatibility level 1.1 and above (use compat=1.1 or "
					  "greater)",
					  path);
		if (o->compression_type != BLK_COMP_ZLIB)
			return kite_error("%s: non-zlib compression type is only supported with "
					  "compatibility level 1.1 and above (use compat=1.1 or "
					  "greater)",
					  path);
	}
	if (o->data_file_raw && !o->data_file)
		return kite_error("%s: data-file-raw requires data-file", path);
	if (o->data_file && *version == 2)
		return kite_error("%s: External data files are only supported with compatibility "
				  "level 1.1 and above (use version=v3 or greater)",
				  path);
	if (o->extended_l2 && cs < 16384)
		return kite_error("%s: extended L2 entries are only supported with cluster sizes "
				  "of at least 16384 bytes",
				  path);
	if (o->size > (1ull << 62))
		return kite_error("%s: image size too large", path);
	if (o->backing_file && strlen(o->backing_file) > QCOW2_MAX_BACKING)
		return kite_error("%s: backing file name too long", path);
	if (o->backing_fmt && strlen(o->backing_fmt) >= 64)
		return kite_error("%s: backing format name too long", path);
	if (o->backing_fmt && !o->backing_file)
		return kite_error("%s: backing format given without a backing file", path);
	/* a preallocated cluster without subclusters would hide the backing file's data */
	if (o->backing_file && o->prealloc != BLK_PREALLOC_OFF && !o->extended_l2)
		return kite_error("%s: Backing file and preallocation can only be used at the same "
				  "time if extended_l2 is on",
				  path);
	return 0;
}

/* The feature name table QEMU writes, so its error messages (and ours) name features. */
static const struct {
	uint8_t type, bit;
	const char *name;
} feature_table[] = {
    {0, 0, "dirty bit"},	{0, 1, "corrupt bit"},	       {0, 2, "external data file"},
    {0, 3, "compression type"}, {0, 4, "extended L2 entries"}, {1, 0, "lazy refcounts"},
    {2, 0, "bitmaps"},		{2, 1, "raw external data"},
};

void qcow2_feature_table(uint8_t *ft)
{
	_Static_assert(sizeof(feature_table) / sizeof(feature_table[0]) * 48 ==
			   QCOW2_FEATURE_TABLE_BYTES,
		       "feature table size");
	memset(ft, 0, QCOW2_FEATURE_TABLE_BYTES);
	for (size_t i = 0; i < sizeof(feature_table) / sizeof(feature_table[0]); i++) {
		ft[i * 48] = feature_table[i].type;
		ft[i * 48 + 1] = feature_table[i].bit;
		strncpy((char *)ft + i * 48 + 2, feature_table[i].name, 46);
	}
}

/* As QEMU: the data file is made (emptied) as a raw image of the virtual size, its
 * preallocation the one asked for. */
static int create_data_file(const struct blk_create_opts *o)
{
	struct blk_create_opts r = {.size = o->size, .size_set = true, .prealloc = o->prealloc};
	if (r.prealloc == BLK_PREALLOC_METADATA)
		r.prealloc = BLK_PREALLOC_OFF;
	return blk_create(o->data_file, "raw", &r);
}

static int preallocate(const char *path, const struct blk_create_opts *o)
{
	struct blk *b = blk_open(path, "qcow2", BLK_O_RDWR | BLK_O_NO_BACKING);
	if (!b)
		return -1;
	/* a data file has its space already: its L2 entries map it (a raw one always) */
	enum blk_prealloc mode = o->data_file ? BLK_PREALLOC_METADATA : o->prealloc;
	int r = qcow2_preallocate(b, 0, o->size, mode);
	blk_close(b);
	return r;
}

int qcow2_create(const char *path, const struct blk_create_opts *o)
{
	int version = 3;
	unsigned cbits = 16, rorder = 4;
	if (check_opts(path, o, &version, &cbits, &rorder) < 0)
		return -1;
	if (qcow2_crypto_requested(&o->encrypt) && qcow2_crypto_create_check(path, &o->encrypt) < 0)
		return -1;
	if (o->data_file && create_data_file(o) < 0)
		return -1;
	uint64_t cs = 1ull << cbits;
	uint64_t l2_entries = cs / (o->extended_l2 ? 16 : 8);
	uint64_t l1_size = (o->size + l2_entries * cs - 1) / (l2_entries * cs);
	if (l1_size * 8 > QCOW2_MAX_L1_BYTES)
		return kite_error("%s: image size too large for this cluster size", path);
	uint64_t l1_clusters = (l1_size * 8 + cs - 1) / cs; /* none for an empty image */
	uint64_t rb_entries = cs * 8 / (1u << rorder);
	/* header + refcount table + refcount blocks + L1, all counted by the blocks */
	uint64_t rt_clusters = 1, rb_clusters = 1, total;
	for (;;) {
		total = 1 + rt_clusters + rb_clusters + l1_clusters;
		uint64_t need_rb = (total + rb_entries - 1) / rb_entries;
		uint64_t need_rt = (need_rb * 8 + cs - 1) / cs;
		if (need_rb == rb_clusters && need_rt == rt_clusters)
			break;
		rb_clusters = need_rb;
		rt_clusters = need_rt;
	}
	uint64_t rt_off = cs, rb_off = cs * (1 + rt_clusters);
	uint64_t l1_off = l1_clusters ? rb_off + rb_clusters * cs : 0;

	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return kite_error_errno(errno, "could not create '%s'", path);
	uint8_t *buf = calloc(1, cs > rt_clusters * cs ? cs : rt_clusters * cs);
	int r = buf ? 0 : kite_error("out of memory");
	/* refcount table */
	for (uint64_t i = 0; r == 0 && i < rb_clusters; i++)
		put_be64(buf + i * 8, rb_off + i * cs);
	if (r == 0)
		r = blk_file_pwrite(fd, buf, rt_clusters * cs, rt_off, path);
	/* refcount blocks: 1 for each initial cluster */
	struct qcow2 tmp = {.refcount_order = rorder, .refcount_bits = 1u << rorder};
	for (uint64_t i = 0; r == 0 && i < rb_clusters; i++) {
		memset(buf, 0, cs);
		for (uint64_t c = i * rb_entries; c < total && c < (i + 1) * rb_entries; c++)
			qcow2_rb_set(&tmp, buf, c - i * rb_entries, 1);
		r = blk_file_pwrite(fd, buf, cs, rb_off + i * cs, path);
	}
	/* as QEMU, the file ends where the L1 table's bytes end (not its cluster) */
	uint64_t end = l1_clusters ? l1_off + l1_size * 8 : total * cs;
	if (r == 0 && ftruncate(fd, (off_t)end) < 0)
		r = kite_error_errno(errno, "%s: set size", path);
	/* header (with extensions) */
	if (r == 0) {
		memset(buf, 0, cs);
		struct qcow2 q = {0};
		q.version = (uint32_t)version;
		q.cluster_bits = cbits;
		q.cluster_size = cs;
		q.size = o->size;
		q.l1_size = (uint32_t)l1_size;
		q.l1_offset = l1_off;
		q.rt_offset = rt_off;
		q.rt_clusters = (uint32_t)rt_clusters;
		q.refcount_order = rorder;
		q.header_length = 112;
		q.compression_type = o->compression_type == BLK_COMP_ZSTD ? 1 : 0;
		if (q.compression_type)
			q.incompat |= QCOW2_INCOMPAT_COMPRESSION;
		if (o->extended_l2)
			q.incompat |= QCOW2_INCOMPAT_EXTL2;
		if (o->lazy_refcounts)
			q.compat |= QCOW2_COMPAT_LAZY;
		q.backing_file = (char *)o->backing_file;
		if (o->backing_fmt)
			memcpy(q.backing_fmt, o->backing_fmt, strlen(o->backing_fmt) + 1);
		uint8_t ft[QCOW2_FEATURE_TABLE_BYTES];
		/* QEMU's order: the data file name, then the feature table */
		struct qcow2_ext ext[2];
		if (o->data_file) {
			q.incompat |= QCOW2_INCOMPAT_DATA_FILE;
			if (o->data_file_raw)
				q.autoclear |= QCOW2_AUTOCLEAR_DATA_RAW;
			ext[q.nb_exts++] =
			    (struct qcow2_ext){QCOW2_EXT_DATA_FILE, (uint32_t)strlen(o->data_file),
					       (uint8_t *)o->data_file};
		}
		if (version == 3 && cs > QCOW2_FEATURE_TABLE_MIN_CLUSTER) {
			qcow2_feature_table(ft);
			ext[q.nb_exts++] = (struct qcow2_ext){QCOW2_EXT_FEATURES, sizeof(ft), ft};
		}
		q.exts = q.nb_exts ? ext : NULL;
		struct blk fake = {.fd = fd, .filename = (char *)path, .opaque = &q};
		r = qcow2_write_header(&fake);
	}
	free(buf);
	if (r == 0 && fsync(fd) < 0)
		r = kite_error_errno(errno, "%s: flush", path);
	if (close(fd) < 0 && r == 0)
		r = kite_error_errno(errno, "%s: close", path);
	if (r == 0 && (o->prealloc != BLK_PREALLOC_OFF || o->data_file_raw))
		r = preallocate(path, o);
	/* as QEMU: encryption last, its header after the clusters preallocation took */
	if (r == 0 && o->encrypt.format)
		r = qcow2_crypto_create(path, &o->encrypt);
	if (r < 0 && o->encrypt.format)
		unlink(path); /* as qemu-img: a failed create leaves no file */
	return r;
}

/* The same options and backing file (commit: only for images without internal snapshots,
 * which would reference the dropped clusters). */
int qcow2_make_empty(const char *path, const struct blk_info *in)
{
	struct blk_create_opts c = {
	    .size = in->virtual_size,
	    .size_set = true,
	    .cluster_size = in->cluster_size,
	    .compat = !strcmp(in->compat, "0.10") ? 2 : 3,
	    .lazy_refcounts = in->lazy_refcounts,
	    .refcount_bits = in->refcount_bits,
	    .compression_type =
		!strcmp(in->compression_type, "zstd") ? BLK_COMP_ZSTD : BLK_COMP_ZLIB,
	    .extended_l2 = in->extended_l2,
	    .backing_file = in->backing_file,
	    .backing_fmt = in->backing_format[0] ? in->backing_format : NULL,
	};
	return blk_create(path, "qcow2", &c);
}
