/* qcow2 internals shared by the qcow2_*.c files (format: QEMU's docs/interop/qcow2.txt).
 *
 * In memory: the header fields, the active L1 table and the refcount table are kept whole
 * (host byte order); L2 tables and refcount blocks go through small write-back caches
 * holding on-disk (big-endian) bytes.
 *
 * Crash safety: a cluster's refcount increment reaches the disk (and is synced) before any
 * L2 table referencing it is written (the L2 cache flushes the refcount cache first); a new
 * or copied L2 table is written and synced before the L1 entry pointing to it; refcount
 * decrements of clusters that an L2/L1 entry stopped using are queued and applied only
 * after the tables no longer referencing them are on disk. A crash thus leaks clusters at
 * worst. */
#ifndef KITE_BLOCK_QCOW2_INT_H
#define KITE_BLOCK_QCOW2_INT_H

#include "block/block_int.h"
#include "block/qcow2.h"

#define QCOW2_MAGIC	    0x514649fbu /* "QFI\xfb" */
#define QCOW2_MIN_CLUSTER   9
#define QCOW2_MAX_CLUSTER   21
#define QCOW2_MAX_L1_BYTES  (32u << 20)
#define QCOW2_MAX_RT_BYTES  (8u << 20)
#define QCOW2_MAX_SNAPSHOTS 65536
#define QCOW2_MAX_BACKING   1023

#define QCOW2_INCOMPAT_DIRTY	   (1ull << 0)
#define QCOW2_INCOMPAT_CORRUPT	   (1ull << 1)
#define QCOW2_INCOMPAT_DATA_FILE   (1ull << 2)
#define QCOW2_INCOMPAT_COMPRESSION (1ull << 3)
#define QCOW2_INCOMPAT_EXTL2	   (1ull << 4)
#define QCOW2_INCOMPAT_KNOWN	   0x1full
#define QCOW2_COMPAT_LAZY	   (1ull << 0)
#define QCOW2_AUTOCLEAR_BITMAPS	   (1ull << 0)
#define QCOW2_AUTOCLEAR_DATA_RAW   (1ull << 1) /* the data file is a valid raw image */

#define QCOW2_EXT_END	      0x00000000u
#define QCOW2_EXT_BACKING_FMT 0xe2792acau
#define QCOW2_EXT_FEATURES    0x6803f857u
#define QCOW2_EXT_BITMAPS     0x23852875u
#define QCOW2_EXT_CRYPTO      0x0537be77u
#define QCOW2_EXT_DATA_FILE   0x44415441u

#define L1E_OFFSET_MASK	 0x00fffffffffffe00ull
#define L2E_OFFSET_MASK	 0x00fffffffffffe00ull
#define RTE_OFFSET_MASK	 0xfffffffffffffe00ull
#define OFLAG_COPIED	 (1ull << 63)
#define OFLAG_COMPRESSED (1ull << 62)
#define OFLAG_ZERO	 (1ull << 0)

/* What one L2 entry (or one subcluster of an extended entry) says. */
enum qcow2_ctype {
	QC_UNALLOC,	  /* read from the backing file (or zeros) */
	QC_UNALLOC_ALLOC, /* same, in a cluster that has a host offset (subclusters) */
	QC_ZERO_PLAIN,	  /* reads as zeros, no host cluster */
	QC_ZERO_ALLOC,	  /* reads as zeros, host cluster kept */
	QC_NORMAL,	  /* data at a host offset */
	QC_COMPRESSED,	  /* compressed data at a host byte offset */
};

struct qcow2_ext {
	uint32_t type;
	uint32_t len;
	uint8_t *data;
};

struct mcache_entry {
	uint64_t off; /* 0: free slot */
	uint8_t *buf;
	bool dirty;
	uint64_t used;
};

/* Up to 64 tables, about 2 MiB of them: 32 for 64 KiB clusters, 2 for 2 MiB ones. */
#define MCACHE_SLOTS 64
#define MCACHE_BYTES (2u << 20)
struct mcache {
	struct mcache_entry e[MCACHE_SLOTS];
	int slots;
	uint64_t tick;
	bool is_l2; /* L2 writes wait for the refcount cache */
};

struct qcow2 {
	uint32_t version;
	uint32_t cluster_bits;
	uint64_t cluster_size;
	uint64_t size;
	uint32_t header_length;
	uint64_t incompat, compat, autoclear;
	uint8_t compression_type; /* 0 zlib, 1 zstd */
	uint8_t *hdr_tail;	  /* header bytes 105..header_length we do not know, kept as read */
	/* External data file (incompatible bit 2): its name as the header extension gives it,
	 * NULL without one. Its data clusters sit at the host offsets of the L2 entries, in
	 * b->data_file (not opened by a metadata-only open), outside the refcounts. */
	char *data_file_name;
	bool extended_l2;
	uint32_t l2_entry_bytes; /* 8 or 16 */
	uint64_t l2_entries;	 /* entries per L2 table */
	uint32_t subcluster_bits;

	uint64_t l1_offset;
	uint32_t l1_size;
	uint64_t *l1;

	uint32_t refcount_order;
	uint32_t refcount_bits;
	uint64_t rb_entries; /* refcounts per refcount block */
	uint64_t rt_offset;
	uint32_t rt_clusters;
	uint64_t rt_entries;
	uint64_t *rt;

	uint32_t nb_snapshots;
	uint64_t snapshots_offset;
	uint64_t snapshots_size; /* bytes of the on-disk table */
	struct qcow2_snapshot *snaps;

	char *backing_file;
	char backing_fmt[64];
	struct qcow2_ext *exts; /* header extensions kept verbatim (not backing fmt) */
	int nb_exts;
	char *feature_names; /* feature name table, for error messages */
	uint32_t feature_names_len;

	struct mcache l2c;
	struct mcache rbc;
	bool rb_unsynced; /* refcount blocks written since the last fdatasync */

	uint64_t free_hint;	/* no free cluster below this index */
	uint64_t *pending_free; /* host cluster offsets to decrement after the next flush */
	size_t nb_pending, cap_pending;

	uint64_t cbyte_off; /* compressed-data byte allocator: next free byte, 0 = none */

	uint64_t cz_off; /* last decompressed cluster (host offset), 0: none */
	uint8_t *cz_buf;
	uint8_t *cz_in;
	void *zstd_d;

	uint8_t *meta_map;	    /* bit per host cluster: an L2 table or refcount block */
	uint64_t meta_map_clusters; /* 0: not built yet */
	int meta_prealloc;	    /* -1 unknown; 1: looks like preallocation=metadata */
	bool header_dirty_set;	    /* the dirty bit has been written (lazy refcounts) */
	uint64_t file_end;	    /* cached end of the image file, grows with allocations */
	struct qbm_dir *bitmaps;    /* persistent bitmaps, once loaded (qcow2_bitmap_*.c) */
	uint32_t crypt_method;	    /* 0 none, 1 AES (legacy qcow), 2 LUKS */
	uint64_t crypto_hdr_off;    /* LUKS: the crypto header extension's clusters */
	uint64_t crypto_hdr_len;
	struct qcow2_crypto *crypto; /* keys and ciphers (qcow2_crypto.c); NULL: none */
};

static inline struct qcow2 *Q(struct blk *b)
{
	return b->opaque;
}

/* qcow2_check() flag for the silent rebuild of a dirty image's refcounts at open */
#define QCOW2_CHECK_QUIET (1u << 8)

/* qcow2.c */
int qcow2_write_header(struct blk *b);
int qcow2_set_incompat(struct blk *b, uint64_t incompat);
int qcow2_mark_dirty(struct blk *b);

/* The file data clusters are read from and written to: the external data file if any. */
static inline int qcow2_data_fd(const struct blk *b)
{
	return b->data_file ? b->data_file->fd : b->fd;
}
static inline const char *qcow2_data_name(const struct blk *b)
{
	return b->data_file ? b->data_file->filename : b->filename;
}
/* Whether the image keeps its data in an external data file. */
static inline bool qcow2_has_data_file(const struct qcow2 *q)
{
	return (q->incompat & QCOW2_INCOMPAT_DATA_FILE) != 0;
}

/* Whether a (not compressed) L2 entry has a host cluster. Offset 0 means none, except in
 * a data file, where it is a valid offset told apart by COPIED (its clusters always have
 * one user), as QEMU reads it. */
static inline bool qcow2_entry_has_host(const struct qcow2 *q, uint64_t e)
{
	return (e & L2E_OFFSET_MASK) || (qcow2_has_data_file(q) && (e & OFLAG_COPIED));
}

/* qcow2_overlap.c */
int qcow2_check_overlap(struct blk *b, uint64_t off, uint64_t len, const char *what);
/* The same for a write into an L2 table (check's repairs): L2 tables may be hit, nothing
 * else may. */
int qcow2_check_overlap_l2(struct blk *b, uint64_t off, uint64_t len, const char *what);
void qcow2_meta_mark(struct qcow2 *q, uint64_t off, bool is_meta);
void qcow2_meta_invalidate(struct qcow2 *q);

/* qcow2_cache.c */
void mcache_init(struct mcache *c, bool is_l2, uint64_t cluster_size);
void mcache_free(struct mcache *c);
uint8_t *mcache_get(struct blk *b, struct mcache *c, uint64_t off, bool read);
void mcache_dirty(struct mcache *c, const uint8_t *buf);
int mcache_flush(struct blk *b, struct mcache *c);
void mcache_forget(struct mcache *c, uint64_t off);
void mcache_forget_all(struct mcache *c);
int qcow2_sync_refcounts(struct blk *b);

/* qcow2_refcount.c */
int qcow2_get_refcount(struct blk *b, uint64_t cluster, uint64_t *rc);
int qcow2_update_refcount(struct blk *b, uint64_t off, uint64_t len, int64_t delta);
int64_t qcow2_alloc_clusters(struct blk *b, uint64_t n);
int64_t qcow2_alloc_clusters_at(struct blk *b, uint64_t off, uint64_t n);
int qcow2_free_later(struct blk *b, uint64_t off, uint64_t len);
int qcow2_bitmap_clusters(struct blk *b, uint64_t fsize, uint64_t **out, size_t *out_n);
int qcow2_apply_pending_frees(struct blk *b);
int qcow2_set_refcount(struct blk *b, uint64_t cluster, uint64_t v);
uint64_t qcow2_rb_get(const struct qcow2 *q, const uint8_t *blk, uint64_t i);
void qcow2_rb_set(const struct qcow2 *q, uint8_t *blk, uint64_t i, uint64_t v);

/* qcow2_cluster.c */
int qcow2_flush_all(struct blk *b);
int qcow2_read(struct blk *b, void *buf, size_t len, uint64_t off);
int qcow2_write(struct blk *b, const void *buf, size_t len, uint64_t off);
int qcow2_block_status(struct blk *b, uint64_t off, uint64_t len, uint64_t *pnum, unsigned *flags,
		       uint64_t *host_off);
int qcow2_zero(struct blk *b, uint64_t off, uint64_t len, unsigned flags);
int qcow2_discard(struct blk *b, uint64_t off, uint64_t len);
int qcow2_get_l2(struct blk *b, uint64_t l1_index, bool alloc, uint8_t **l2);
uint64_t qcow2_l2_get(const struct qcow2 *q, const uint8_t *l2, uint64_t i, uint64_t *bitmap);
void qcow2_l2_set(const struct qcow2 *q, uint8_t *l2, uint64_t i, uint64_t e, uint64_t bitmap);
enum qcow2_ctype qcow2_entry_type(const struct qcow2 *q, uint64_t e);
int qcow2_grow_l1(struct blk *b, uint64_t min_size);
int qcow2_resize(struct blk *b, uint64_t size, bool shrink);
int qcow2_preallocate(struct blk *b, uint64_t from, uint64_t to, enum blk_prealloc mode);

/* qcow2_compress.c */
int qcow2_read_compressed(struct blk *b, uint64_t entry, uint8_t *out);
int qcow2_compressed_range(const struct qcow2 *q, uint64_t entry, uint64_t *off, uint64_t *len);
int qcow2_write_compressed(struct blk *b, const void *buf, size_t len, uint64_t off);
int qcow2_compress(const struct blk *b, const void *buf, size_t len, void *out, size_t *outlen);
int qcow2_write_precompressed(struct blk *b, const void *cdata, size_t clen, uint64_t off);
void qcow2_compress_free(struct qcow2 *q);

/* qcow2_snapshot.c */
int qcow2_read_snapshots(struct blk *b);
/* Clears the autoclear bits of features kite does not maintain and drops a stale bitmaps
 * extension (its bit cleared by an earlier writer), as a writer must on its first write. */
int qcow2_drop_autoclear(struct blk *b);
/* Reads (read-only) the disk as snapshot `id` and/or `name` left it; 1 if there is none. */
int qcow2_load_snapshot(struct blk *b, const char *id, const char *name);
void qcow2_free_snapshots(struct qcow2 *q);
/* Snapshot `name` whose VM state (vm_state_size bytes, already written past the disk's end
 * by qcow2_vmstate.c) and guest clock go into its table entry, as QEMU's savevm records. */
int qcow2_snapshot_create_vm(struct blk *b, const char *name, uint64_t vm_state_size,
			     uint64_t vm_clock_nsec);
/* qcow2_vmstate.c: a snapshot with QEMU's VM state area (the `size` bytes of file `fd`),
 * and reading one back into `fd` (zero pages as holes); both return 0 or -1 (printed). */
int qcow2_snapshot_create_vmstate(struct blk *b, const char *name, int fd, uint64_t size,
				  uint64_t vm_clock_nsec);
int qcow2_snapshot_read_vmstate(struct blk *b, const char *name_or_id, int fd, uint64_t *size);
int qcow2_find_snapshot(struct blk *b, const char *name_or_id); /* index, or -1 (printed) */
int qcow2_snapshot_read_l1(struct blk *b, const struct qcow2_snapshot *s, uint64_t **out);
/* Adds `delta` to the refcount of every L2 table and cluster an L1 table reaches. */
int qcow2_l1_refcounts(struct blk *b, const uint64_t *l1, uint32_t l1_size, int delta);
int qcow2_update_copied(struct blk *b);
/* Writes `snaps` as a new snapshot table in new clusters and points the header at it. The
 * old table's place is returned for the caller to free. */
int qcow2_write_snapshot_table(struct blk *b, struct qcow2_snapshot *snaps, uint32_t n,
			       uint64_t *old_off, uint64_t *old_size);

/* qcow2_bitmap_ops.c, qcow2_bitmap_track.c: persistent bitmaps changed (blk_bitmap_change)
 * and kept current while kite writes; the driver's write entry points mark them first */
int qcow2_bitmap_change(struct blk *b, const char *name, const struct blk_bitmap_change *c);
int qcow2_bitmaps_mark(struct blk *b, uint64_t off, uint64_t len);
int qcow2_bitmaps_forbid_revert(struct blk *b); /* -1 with QEMU's error if it has bitmaps */
void qcow2_bitmaps_close(struct blk *b);
int qcow2_write_tracked(struct blk *b, const void *buf, size_t len, uint64_t off);
int qcow2_zero_tracked(struct blk *b, uint64_t off, uint64_t len, unsigned flags);
int qcow2_discard_tracked(struct blk *b, uint64_t off, uint64_t len);
int qcow2_write_compressed_tracked(struct blk *b, const void *buf, size_t len, uint64_t off);
int qcow2_write_precompressed_tracked(struct blk *b, const void *cdata, size_t clen, uint64_t off);
int qcow2_resize_tracked(struct blk *b, uint64_t size, bool shrink);

/* qcow2_crypto.c: encrypted data clusters (LUKS, legacy AES) */
int qcow2_crypto_method(struct blk *b, uint32_t method);		/* the header's */
int qcow2_crypto_ext(struct blk *b, const uint8_t *data, uint32_t len); /* the extension */
int qcow2_crypto_open(struct blk *b); /* after the header: keys, QEMU's checks */
void qcow2_crypto_close(struct qcow2 *q);
bool qcow2_encrypted(const struct qcow2 *q);
void qcow2_crypto_info(struct blk *b, struct blk_info *info);
/* Data bytes at host offset `host` (guest offset `guest`), decrypted / encrypted on the way
 * when the image is encrypted: whole 512-byte sectors then. */
int qcow2_data_pread(struct blk *b, void *buf, size_t len, uint64_t host, uint64_t guest);
int qcow2_data_pwrite(struct blk *b, const void *buf, size_t len, uint64_t host, uint64_t guest);
/* Requests an encrypted image takes as whole sectors: read (and patched) around them. */
bool qcow2_crypto_unaligned(const struct qcow2 *q, uint64_t off, size_t len);
int qcow2_crypto_read_unaligned(struct blk *b, void *buf, size_t len, uint64_t off);
int qcow2_crypto_write_unaligned(struct blk *b, const void *buf, size_t len, uint64_t off);
/* qcow2_crypto_create.c: a new image's encryption (before anything is written, the check
 * that it can be done; after the plain image is made, the setup) */
bool qcow2_crypto_requested(const struct blk_encrypt_opts *e); /* any encrypt.* given */
/* path: prefixes the messages (NULL: none, as measure words them) */
int qcow2_crypto_create_check(const char *path, const struct blk_encrypt_opts *e);
int qcow2_crypto_create(const char *path, const struct blk_encrypt_opts *e);

/* blk_snapshot_list: qcow2_snapshot_list's table as the block layer's (qcow2_snapshot.c) */
int qcow2_snapshot_list_blk(struct blk *b, struct blk_snapshot **list, int *count);

/* blk_check: qcow2_check, a check that could not run reported as qemu-img does
 * (qcow2_check.c) */
int qcow2_check_blk(struct blk *b, unsigned fix, struct blk_check_result *res);

/* qemu-img info's format-specific data (qcow2_info_json.c) */
json_t *qcow2_info_json(struct blk *b, const struct blk_info *in);

/* blk_measure for a qcow2 target (qcow2_measure.c) */
int qcow2_measure(const struct blk_create_opts *c, struct blk *src, uint64_t size,
		  struct blk_measure *m);

/* blk_amend: the options (qcow2_amend_opts.c) */
extern const struct blk_opt_desc qcow2_amend_opts[];
int qcow2_amend_blk(struct blk *b, const struct blk_amend_opt *opts, size_t n, blk_progress_fn cb,
		    void *ctx);

/* its -o options (qcow2_create_opts.c) */
extern const struct blk_create_desc qcow2_create_desc;

/* qcow2_create.c */
int qcow2_create(const char *path, const struct blk_create_opts *opts);
/* blk_make_empty: a new empty image with the settings `in` describes. */
int qcow2_make_empty(const char *path, const struct blk_info *in);

/* The feature name table QEMU writes into a v3 header (qcow2_create.c). */
#define QCOW2_FEATURE_TABLE_BYTES (8 * 48)
/* QEMU writes the feature table only with clusters larger than this: with 512-byte clusters
 * it would leave no room for a backing file name */
#define QCOW2_FEATURE_TABLE_MIN_CLUSTER 4096u
void qcow2_feature_table(uint8_t *ft);

/* qemu-img amend's steps (qcow2_amend*.c, qcow2_refcount_order.c): each reports its
 * progress as a share of all the steps the amend takes. */
struct qcow2_amend_status {
	qcow2_amend_progress cb;
	void *ctx;
	unsigned steps, steps_done;
};
void qcow2_amend_report(struct qcow2_amend_status *st, uint64_t done, uint64_t total);
void qcow2_amend_step_done(struct qcow2_amend_status *st);
/* Rewrites the refcount structure at 2^order bits per entry (v3 only). */
int qcow2_change_refcount_order(struct blk *b, uint32_t order, struct qcow2_amend_status *st);
/* Whether every refcount fits in 2^order bits (else qemu-img's error). */
int qcow2_refcounts_fit(struct blk *b, uint32_t order);
/* Makes every zero cluster (active and in snapshots) something v2 reads as zeros:
 * unallocated without a backing file, else a cluster of zeros. */
int qcow2_expand_zero_clusters(struct blk *b, struct qcow2_amend_status *st);
int qcow2_upgrade(struct blk *b, struct qcow2_amend_status *st);
int qcow2_downgrade(struct blk *b, struct qcow2_amend_status *st);
/* Whether the active L1 maps a compressed cluster below guest offset `end`. */
int qcow2_has_compressed(struct blk *b, uint64_t end);
/* Rewrites the header from the fields in *q, then syncs it. */
int qcow2_update_header_sync(struct blk *b);
/* QEMU's qcow2_mark_clean(): writes back what lazy refcounts held, clears the dirty bit. */
int qcow2_mark_clean(struct blk *b);

/* big-endian helpers */
static inline uint16_t get_be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}
static inline uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint64_t get_be64(const uint8_t *p)
{
	return (uint64_t)get_be32(p) << 32 | get_be32(p + 4);
}
static inline void put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}
static inline void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}
static inline void put_be64(uint8_t *p, uint64_t v)
{
	put_be32(p, (uint32_t)(v >> 32));
	put_be32(p + 4, (uint32_t)v);
}

#endif
