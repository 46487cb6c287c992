/* Driver side of the block layer: what a format driver implements and may use.
 * The generic layer (block.c) checks ranges, takes the lock and handles optional hooks,
 * so drivers see only in-range requests. */
#ifndef KITE_BLOCK_BLOCK_INT_H
#define KITE_BLOCK_BLOCK_INT_H

#include "block/block.h"

#include <pthread.h>
#include <sys/types.h>

struct blk_open_ctx; /* backing chain being opened (loop detection, depth) */

struct blk_driver {
	const char *name;
	bool thread_safe;    /* read/write may run in parallel without the blk lock */
	bool no_zero_init;   /* a new image does not read as zeros (see blk_has_zero_init) */
	bool has_backing;    /* a new image may have a backing file (BLK_CAP_BACKING) */
	uint32_t size_align; /* virtual sizes are multiples of this (blk_size_align); 0: any */
	int list_rank;	     /* place in lists of formats shown to users: lowest first */
	/* Score 0..100 that `buf` (the first `len` bytes of the file) is this format. */
	int (*probe)(const uint8_t *buf, size_t len, const char *filename);
	/* b->fd, b->filename, b->flags are set; fill b->size and b->opaque. */
	int (*open)(struct blk *b, struct blk_open_ctx *ctx);
	int (*create)(const char *path, const struct blk_create_opts *opts);
	const struct blk_create_desc *create_desc; /* its -o options; NULL: raw's */
	int (*read)(struct blk *b, void *buf, size_t len, uint64_t off);
	int (*write)(struct blk *b, const void *buf, size_t len, uint64_t off);
	/* optional, thread-safe drivers only: blk_preadv's / blk_pwritev's buffers in one go */
	int (*readv)(struct blk *b, const struct iovec *iov, int iovcnt, uint64_t off);
	int (*writev)(struct blk *b, const struct iovec *iov, int iovcnt, uint64_t off);
	int (*write_compressed)(struct blk *b, const void *buf, size_t len, uint64_t off);
	/* thread-safe: compresses one cluster into out (cluster-sized); 0 length: no gain */
	int (*compress)(const struct blk *b, const void *buf, size_t len, void *out,
			size_t *outlen);
	/* stores data compressed by ->compress for the cluster at off */
	int (*write_precompressed)(struct blk *b, const void *cdata, size_t clen, uint64_t off);
	int (*flush)(struct blk *b);
	int (*discard)(struct blk *b, uint64_t off, uint64_t len);
	int (*zero)(struct blk *b, uint64_t off, uint64_t len, unsigned flags);
	int (*block_status)(struct blk *b, uint64_t off, uint64_t len, uint64_t *pnum,
			    unsigned *flags, uint64_t *host_off);
	int (*resize)(struct blk *b, uint64_t size, bool shrink);
	/* optional: allocates [from, to) of a grown image ahead of writes (resize --preallocation)
	 */
	int (*preallocate)(struct blk *b, uint64_t from, uint64_t to, enum blk_prealloc mode);
	/* optional: a read-only image reads as its internal snapshot id/name left it; returns 1
	 * (nothing printed) when there is no such snapshot */
	int (*load_snapshot)(struct blk *b, const char *id, const char *name);
	/* optional: internal snapshots (BLK_CAP_SNAPSHOTS); list fills a malloc'd array */
	int (*snapshot_list)(struct blk *b, struct blk_snapshot **list, int *count);
	int (*snapshot_create)(struct blk *b, const char *name);
	int (*snapshot_apply)(struct blk *b, const char *name_or_id);
	int (*snapshot_delete)(struct blk *b, const char *name_or_id);
	/* optional: snapshots holding a VM state (blk_snapshot_create_vmstate) */
	int (*snapshot_create_vmstate)(struct blk *b, const char *name, int fd, uint64_t size,
				       uint64_t vm_clock_nsec);
	int (*snapshot_read_vmstate)(struct blk *b, const char *name_or_id, int fd, uint64_t *size);
	/* optional: blk_measure for this format as the target (size in whole sectors) */
	int (*measure)(const struct blk_create_opts *c, struct blk *src, uint64_t size,
		       struct blk_measure *m);
	/* optional: blk_amend (BLK_CAP_AMEND), with its options' list (ends at a NULL name) */
	const struct blk_opt_desc *amend_opts;
	int (*amend)(struct blk *b, const struct blk_amend_opt *opts, size_t n, blk_progress_fn cb,
		     void *ctx);
	/* optional: blk_check (BLK_CAP_CHECK) */
	int (*check)(struct blk *b, unsigned fix, struct blk_check_result *r);
	void (*close)(struct blk *b);
	int (*info)(struct blk *b, struct blk_info *info);
	/* optional: the "data" of qemu-img info's format-specific object; NULL: none */
	json_t *(*info_json)(struct blk *b, const struct blk_info *in);
	/* optional: recreates the image at path empty with the settings of `in` (blk_make_empty) */
	int (*make_empty)(const char *path, const struct blk_info *in);
	int (*change_backing)(struct blk *b, const char *file, const char *fmt);
	uint32_t (*cluster_size)(const struct blk *b);
	/* optional: persistent dirty bitmaps; the name and granularity are checked already */
	int (*bitmap_change)(struct blk *b, const char *name, const struct blk_bitmap_change *c);
};

struct blk {
	const struct blk_driver *drv;
	void *opaque;	/* driver state */
	char *filename; /* as given to blk_open */
	int fd;		/* the image file */
	unsigned flags; /* BLK_O_* */
	uint64_t size;	/* virtual size */
	bool probed_raw;
	struct imglock *lock_held; /* QEMU-compatible image lock, held until blk_close */
	/* From a json:/--image-opts name: the secret unlocking an encrypted image and qcow2's
	 * encrypt.format (NULL: not given); the name as given, for QEMU's error messages. */
	char *key_secret, *encrypt_format;
	const char *open_name; /* valid during the driver's open only */
	struct blk *backing;
	/* The file holding the data clusters when it is not this one (a qcow2 external data
	 * file, opened raw through the same locks); closed by blk_close after the driver. */
	struct blk *data_file;
	pthread_mutex_t lock;
};

/* Drivers register themselves at startup: BLK_DRIVER(my_driver); */
void blk_register_driver(const struct blk_driver *drv);
#define BLK_DRIVER(d)                                                                              \
	__attribute__((constructor)) static void blk_register_##d(void)                            \
	{                                                                                          \
		blk_register_driver(&d);                                                           \
	}

const struct blk_driver *blk_find_driver(const char *name);

/* Opens the backing file `name` of image `b` (relative names resolve against the
 * directory of b's file), with format `fmt` or probed, read-only, checking the chain for
 * loops. Sets b->backing. Does nothing when b was opened with BLK_O_NO_BACKING. */
int blk_open_backing(struct blk *b, struct blk_open_ctx *ctx, const char *name, const char *fmt);

/* Opens the external data file `name` of image `b` (a relative name from the current
 * directory, as qemu-img 7.2 opens it and create makes it, not from b's directory) as raw,
 * read-write when b is, locked as b's own file is; sets b->data_file. A missing file fails with
 * qemu-img's message. */
int blk_open_data_file(struct blk *b, struct blk_open_ctx *ctx, const char *name);

/* Reports a failed blk_bitmap_change as qemu-img does ("Operation add on bitmap b0 failed:
 * <why>"); returns -1. */
int blk_bitmap_fail(const char *name, enum blk_bitmap_op op, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* An encrypted image's facts as qemu-img info prints them (QEMU's QCryptoBlockInfo);
 * `with_format` for qcow2's "encrypt" (luks's own data has no format key). info_json.c */
json_t *blk_crypto_info_json(const struct blk_crypto_info *c, bool with_format);

/* For a driver's blk_create_desc.print (create_opts.c): a preallocation mode's name, and
 * the encryption options given, in QEMU's order, named `pre` + blk_encrypt_keys[i]
 * (with_format: <pre>format= first). */
const char *blk_prealloc_name(enum blk_prealloc p);
/* raw's options (the default's, but -o help leaves preallocation to the file layer) */
extern const struct blk_create_desc blk_raw_create_desc;
void blk_print_encrypt(FILE *f, const struct blk_encrypt_opts *e, const char *pre,
		       bool with_format);

/* Resolves `name` relative to the directory of `image_path` into a malloc'd string. */
char *blk_resolve_relative(const char *image_path, const char *name);

/* Reads from the backing file, zero-filling what lies beyond its size (or all of it when
 * there is no backing file). */
int blk_read_backing(struct blk *b, void *buf, size_t len, uint64_t off);

/* File helpers: full-length pread/pwrite with EINTR and short-I/O loops. A read that hits
 * EOF zero-fills the rest. `what` names the file for error messages. */
int blk_file_pread(int fd, void *buf, size_t len, uint64_t off, const char *what);
int blk_file_pwrite(int fd, const void *buf, size_t len, uint64_t off, const char *what);
/* preadv / pwritev of all `iovcnt` (<= BLK_IOV_MAX) buffers, short transfers resumed; a
 * read that hits EOF zero-fills the rest. */
int blk_file_preadv(int fd, const struct iovec *iov, int iovcnt, uint64_t off, const char *what);
int blk_file_pwritev(int fd, const struct iovec *iov, int iovcnt, uint64_t off, const char *what);
int blk_file_size(int fd, uint64_t *size, const char *what);
/* Whether [off, off+len) of the file starts with a hole (or lies past EOF: *zero) or with
 * data, and for how long (*pnum > 0): SEEK_DATA/SEEK_HOLE, everything data without them. */
int blk_file_status(int fd, uint64_t off, uint64_t len, uint64_t *pnum, bool *zero,
		    const char *what);

/* fdatasync of the image file (a barrier between dependent metadata writes); nothing with
 * BLK_O_UNSAFE. */
int blk_sync(struct blk *b);

/* Fills [from, to) of fd with zeros: written (full) or reserved (falloc); off/metadata
 * do nothing. Used by raw and qcow2 create. */
int raw_preallocate(int fd, uint64_t from, uint64_t to, enum blk_prealloc mode, const char *path);

#endif
