/* The block layer: one interface over disk image formats (raw, qcow2, vmdk), shared by
 * `kite run` (virtio-blk), `kite img` and `kite guest`.
 *
 * Conventions: every function reports failures with kite_error() and returns -1 (or NULL).
 * Offsets and lengths are in bytes and need no alignment (drivers do read-modify-write).
 * I/O beyond blk_size() is an error; a raw file shorter than its size reads as zeros.
 *
 * Thread safety: a struct blk may be shared by several threads. Every call on it is
 * serialized by a mutex inside the struct blk, except for drivers that declare themselves
 * thread-safe (raw: its reads and writes are plain pread/pwrite and run in parallel).
 * Opening and closing are not concurrent with other calls on the same struct blk. */
#ifndef KITE_BLOCK_BLOCK_H
#define KITE_BLOCK_BLOCK_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/uio.h>

struct blk;

/* blk_open() flags. Read-only is the default. */
#define BLK_O_RDONLY	    0u
#define BLK_O_RDWR	    (1u << 0) /* writable (the backing chain stays read-only) */
#define BLK_O_NO_BACKING    (1u << 1) /* do not open backing files: unallocated reads as zeros */
#define BLK_O_NOCACHE	    (1u << 2) /* cache=none: O_DIRECT (raw; qcow2 keeps the page cache) */
#define BLK_O_NO_PROBE_WARN (1u << 3) /* do not print the raw-probing warning */
/* cache=unsafe (qemu-img convert's default for its target): never sync, not even between
 * dependent metadata writes. Much faster with small clusters; a crash (not a clean exit)
 * may leave a broken image. */
#define BLK_O_UNSAFE (1u << 4)
/* -U / --force-share: open a read-only image even while another process writes it (no
 * lock keeps writers out; what is read may be mid-update). */
#define BLK_O_SHARE (1u << 5)
/* The same for the backing chain only (qemu-img rebase -U: the image itself is written). */
#define BLK_O_SHARE_BACKING (1u << 6)
/* --image-opts: the name is "driver=FMT,file.filename=PATH" (json: and file: names are
 * understood always) */
#define BLK_O_IMAGE_OPTS (1u << 7)
/* qemu-img check's open (BDRV_O_CHECK): an image too damaged for normal use is opened so
 * that its check can report (and repair) the damage. qcow2 then skips the snapshot table
 * (the check reads it), the bounds of the L1 and refcount tables against the file, the
 * silent repair of a dirty image, and allows a corrupt image read-write. The handle is for
 * the check only: reads and writes through it are refused. */
#define BLK_O_CHECK (1u << 8)
/* The repair of a dirty qcow2 image (lazy refcounts) at a read-write open prints what it
 * finds and does, as QEMU's does (qemu-img amend shows it); without it the repair is silent. */
#define BLK_O_REPAIR_VERBOSE (1u << 9)
/* qemu-img info's open (BDRV_O_NO_IO): the metadata only. An encrypted image opens without
 * its key; reads and writes through the handle are refused. */
#define BLK_O_NO_IO (1u << 10)

/* Opens `path`. Every image of the chain is locked as QEMU locks it, so that no process
 * writes an image another one uses (see BLK_O_SHARE); a conflict fails the open with
 * QEMU's message. `fmt` is "raw", "qcow2", "vmdk" or NULL to probe the first bytes. When a raw
 * image was probed (not named), blk_open prints QEMU's warning unless BLK_O_NO_PROBE_WARN
 * is set, and blk_probed_raw() returns true so a caller can word its own. */
struct blk *blk_open(const char *path, const char *fmt, unsigned flags);
/* blk_open with the secret unlocking an encrypted image, as the -o key-secret= of a new
 * image names it (a json:/--image-opts name's own key-secret option wins); NULL: none. */
struct blk *blk_open_keyed(const char *path, const char *fmt, unsigned flags,
			   const char *key_secret);
void blk_close(struct blk *b); /* flushes if writable; NULL is fine */

uint64_t blk_size(const struct blk *b);		  /* virtual size in bytes */
const char *blk_format_name(const struct blk *b); /* "raw", "qcow2", ... */
const char *blk_filename(const struct blk *b);	  /* the path as opened */
bool blk_probed_raw(const struct blk *b);
bool blk_is_writable(const struct blk *b);
struct blk *blk_backing(const struct blk *b); /* the opened backing image, or NULL */
/* The depth (1: b's backing file) of the image `name` names in b's chain, a relative name
 * resolved against the directory of the image that refers to it (as QEMU finds -b BASE);
 * -1 with an error if it is not there. */
int blk_find_backing(struct blk *b, const char *name);
uint32_t blk_cluster_size(const struct blk *b); /* allocation granularity; 0 if none (raw) */

int blk_pread(struct blk *b, void *buf, size_t len, uint64_t off);
int blk_pwrite(struct blk *b, const void *buf, size_t len, uint64_t off);
/* Read / write the buffers one after another from `off` (at most BLK_IOV_MAX): one system
 * call for a raw file, one blk_pread / blk_pwrite per buffer otherwise. */
#define BLK_IOV_MAX 1024
int blk_preadv(struct blk *b, const struct iovec *iov, int iovcnt, uint64_t off);
int blk_pwritev(struct blk *b, const struct iovec *iov, int iovcnt, uint64_t off);
int blk_flush(struct blk *b);
/* Drops the range's data (reads may then return zeros or backing data; qcow2 v3 keeps
 * zeros). Unaligned edges are left alone. */
int blk_discard(struct blk *b, uint64_t off, uint64_t len);
/* Makes the range read as zeros. BLK_ZERO_MAY_UNMAP lets the driver free the space. */
#define BLK_ZERO_MAY_UNMAP (1u << 0)
int blk_write_zeroes(struct blk *b, uint64_t off, uint64_t len, unsigned flags);
/* Writes one whole cluster compressed (`off` cluster aligned, `len` == cluster size, or
 * the shorter tail cluster). Fails with a clear error if the format cannot compress. */
int blk_pwrite_compressed(struct blk *b, const void *buf, size_t len, uint64_t off);
bool blk_can_compress(const struct blk *b);
/* The same split in two for parallel converts: blk_compress_cluster() may run in any
 * thread at once (no lock, nothing written); it fills `out` (room for one cluster) and
 * *outlen, 0 meaning "does not shrink". blk_pwrite_precompressed() then stores the result
 * (`raw`/`len` as given to blk_compress_cluster, written plainly when *outlen was 0). */
int blk_compress_cluster(const struct blk *b, const void *raw, size_t len, void *out,
			 size_t *outlen);
int blk_pwrite_precompressed(struct blk *b, const void *cdata, size_t clen, const void *raw,
			     size_t len, uint64_t off);
/* Makes a read-only image read as its internal snapshot named by `id` and/or `name` (either
 * may be NULL; both must match when both are given; the same pointer for both: the id if a
 * snapshot has it, else the name) left it (qemu-img convert -l). */
int blk_load_snapshot(struct blk *b, const char *id, const char *name);
/* ---- internal snapshots (BLK_CAP_SNAPSHOTS: kite img snapshot, info) ---- */
struct blk_snapshot {
	const char *id;	  /* "1", "2", ... */
	const char *name; /* the tag */
	uint32_t date_sec, date_nsec;
	uint64_t vm_clock_nsec;
	uint64_t vm_state_size;
	uint64_t icount; /* UINT64_MAX: not recorded */
};
/* The image's snapshots into *list (malloc'd, to free(); NULL when there are none); the
 * strings belong to b and stay valid until its next snapshot call. */
int blk_snapshot_list(struct blk *b, struct blk_snapshot **list, int *count);
/* Creates snapshot `name` (the id is the next free number); applies / deletes one by tag
 * first, then by id (as qemu-img). The image is open read-write. A format without
 * snapshots fails with "snapshots are not supported by format '<fmt>'". */
int blk_snapshot_create(struct blk *b, const char *name);
int blk_snapshot_apply(struct blk *b, const char *name_or_id);
int blk_snapshot_delete(struct blk *b, const char *name_or_id);
/* A snapshot that also holds a VM state, as QEMU's savevm makes them (qcow2: the bytes past
 * the disk, vm_state_size and vm_clock_nsec in the table): the `size` bytes of file `fd`
 * (holes and zero clusters are not stored). Disk and state are taken as they are: the
 * caller keeps the disk still meanwhile. Reading one writes the state into `fd` from
 * offset 0, zero pages as holes, and sets *size. Return 0 or -1 (printed). */
int blk_snapshot_create_vmstate(struct blk *b, const char *name, int fd, uint64_t size,
				uint64_t vm_clock_nsec);
int blk_snapshot_read_vmstate(struct blk *b, const char *name_or_id, int fd, uint64_t *size);
bool blk_can_vmstate(const struct blk *b);
/* Grows (or, when `shrink` is set and the format allows it, shrinks) the virtual size. */
int blk_resize(struct blk *b, uint64_t size, bool shrink);

/* Block status flags (QEMU's map vocabulary). */
#define BLK_STATUS_DATA		(1u << 0) /* reads return data from the file ("data") */
#define BLK_STATUS_ZERO		(1u << 1) /* reads return zeros ("zero") */
#define BLK_STATUS_ALLOCATED	(1u << 2) /* allocated in this layer, not from backing ("present") */
#define BLK_STATUS_OFFSET_VALID (1u << 3) /* *host_off is the offset in the image file */
#define BLK_STATUS_COMPRESSED	(1u << 4) /* compressed cluster */

/* Status of [off, off+len) in this image only (not its backing files). Sets *pnum to the
 * length (> 0, <= len) of the run from `off` that shares *flags (and, with OFFSET_VALID,
 * contiguous host offsets starting at *host_off). host_off may be NULL. */
int blk_block_status(struct blk *b, uint64_t off, uint64_t len, uint64_t *pnum, unsigned *flags,
		     uint64_t *host_off);

/* Status across the backing chain, for `kite img map`: the first layer (depth 0 = b) that
 * has the range allocated. When no layer has it, flags lack ALLOCATED and depth is the
 * chain length (QEMU's convention). `layer` is the image holding the data (for its name). */
struct blk_map {
	uint64_t pnum;
	unsigned flags;
	uint64_t host_off;
	int depth;
	struct blk *layer;
	const char *file; /* the file holding the data: layer's, or its external data file */
};
int blk_map_status(struct blk *b, uint64_t off, uint64_t len, struct blk_map *m);

/* ---- creation ---- */
enum blk_prealloc {
	BLK_PREALLOC_OFF,
	BLK_PREALLOC_METADATA,
	BLK_PREALLOC_FALLOC,
	BLK_PREALLOC_FULL
};
enum blk_compression { BLK_COMP_ZLIB, BLK_COMP_ZSTD };

/* Encryption of a new image: qcow2's encrypt.* options, luks's options (QEMU's names and
 * defaults: aes-256, xts, plain64, sha256, 2000 ms of PBKDF2). */
struct blk_encrypt_opts {
	const char *format;	/* qcow2: "luks" or "aes"; NULL: not encrypted (luks: "luks") */
	const char *key_secret; /* the secret holding the passphrase; NULL: not given */
	const char *cipher_alg, *cipher_mode, *ivgen_alg, *ivgen_hash_alg, *hash_alg;
	uint64_t iter_time; /* milliseconds */
	bool iter_time_set;
};

struct blk_create_opts {
	uint64_t size;	       /* virtual size in bytes */
	bool size_set;	       /* false: take the backing file's size (qemu-img create -b) */
	uint32_t cluster_size; /* 0: format default (qcow2: 64 KiB) */
	int compat;	       /* qcow2: 2 (compat=0.10) or 3 (compat=1.1); 0: default (3) */
	bool lazy_refcounts;
	int refcount_bits; /* 0: default (16) */
	enum blk_compression compression_type;
	bool extended_l2;
	const char *backing_file; /* NULL: none; stored as given */
	const char *backing_fmt;  /* NULL: probed when opened (and at create, for the size) */
	enum blk_prealloc prealloc;
	/* extent_size_hint: the file system's extent size hint for the image file (XFS),
	 * tried and otherwise ignored, as QEMU does; set: given on the command line */
	uint64_t extent_size_hint;
	bool extent_size_hint_set;
	struct blk_encrypt_opts encrypt;
	/* qcow2: an external data file (created raw at this name, stored as given) that
	 * holds the data clusters; data_file_raw keeps it a valid raw image of the disk */
	const char *data_file;
	bool data_file_raw, data_file_raw_set; /* set: given on the command line */
};

/* A format's creation options (-o), as qemu-img create takes, lists and echoes them. */
struct blk_create_desc {
	const char *const *keys; /* the -o keys it takes besides its encryption's; NULL ends */
	const char *const *help; /* the lines `-o help` lists; NULL ends */
	/* the encryption options' names start with this ("encrypt." for qcow2's
	 * encrypt.key-secret..., the choice in encrypt.format); "": the format is the
	 * encryption (luks); NULL: it takes none */
	const char *encrypt_prefix;
	/* its options in qemu-img's "Formatting ..." line: " size=... ..." */
	void (*print)(FILE *f, const struct blk_create_opts *c, bool prealloc_given);
};
/* The creation options of `fmt`; a format without its own (or unknown) takes size,
 * preallocation and extent_size_hint, as raw. */
const struct blk_create_desc *blk_create_desc(const char *fmt);
/* The encryption options' names, after a format's encrypt_prefix, in the order of
 * struct blk_encrypt_opts: "key-secret", "cipher-alg", ..., "iter-time"; NULL ends. */
extern const char *const blk_encrypt_keys[];
/* Prints qemu-img's "Formatting '<path>', fmt=<fmt> <options>" line for a new image. */
void blk_create_print(FILE *f, const char *path, const char *fmt, const struct blk_create_opts *c,
		      bool prealloc_given);

/* Parses "off", "metadata", "falloc", "full". Returns -1 (printing nothing) if unknown. */
int blk_parse_prealloc(const char *s, enum blk_prealloc *out);
/* Allocates [from, to) ahead of writes (resize --preallocation): metadata maps it, falloc also
 * reserves the space, full writes zeros; OFF does nothing. An empty range only checks that
 * the image can do it (before a resize). */
int blk_preallocate(struct blk *b, uint64_t from, uint64_t to, enum blk_prealloc mode);

/* Whether a new image reads as zeros where nothing was written (qemu-img convert then skips
 * writing zeros); false for luks, whose unwritten sectors decrypt to noise. */
bool blk_has_zero_init(const struct blk *b);

/* Whether `fmt` names a format kite knows (it may still be read only). */
bool blk_format_known(const char *fmt);

/* ---- what a format can do: its driver's capabilities, so that callers (kite img) ask
 * instead of naming formats ---- */
enum blk_cap {
	BLK_CAP_CREATE,	    /* blk_create can write it (kite img create, convert) */
	BLK_CAP_BACKING,    /* a new image may have a backing file */
	BLK_CAP_MAKE_EMPTY, /* blk_make_empty (commit empties the committed image) */
	BLK_CAP_SNAPSHOTS,  /* internal snapshots (blk_snapshot_*) */
	BLK_CAP_CHECK,	    /* consistency checks (blk_check) */
	BLK_CAP_MEASURE,    /* blk_measure as a target (kite img measure -O) */
	BLK_CAP_AMEND,	    /* blk_amend (kite img amend) */
};
bool blk_format_can(const char *fmt, enum blk_cap cap); /* false for an unknown format */
bool blk_can(const struct blk *b, enum blk_cap cap);
/* The formats that have `cap`, as a message lists them ("raw, qcow2 or luks"), in buf. */
const char *blk_formats_with(enum blk_cap cap, char *buf, size_t len);
/* A new or resized image's virtual size is a multiple of this (qcow2: 512, whole sectors as
 * in QEMU); 1: any size. */
uint32_t blk_format_size_align(const char *fmt);
uint32_t blk_size_align(const struct blk *b);
/* `size` rounded up to blk_format_size_align(fmt). */
uint64_t blk_format_round_size(const char *fmt, uint64_t size);

/* Creates (truncates) `path` as format `fmt`. */
int blk_create(const char *path, const char *fmt, const struct blk_create_opts *opts);

/* ---- qemu-img amend (BLK_CAP_AMEND) ---- */
/* The types of QEMU's option parser (qemu-img -o help shows "str", "bool (on/off)"...). */
enum blk_opt_type { BLK_OPT_STR, BLK_OPT_BOOL, BLK_OPT_NUM, BLK_OPT_SIZE };
struct blk_opt_desc {
	const char *name;
	enum blk_opt_type type;
	const char *help; /* NULL: a creation option, not amendable */
};
/* The options format `fmt` amends, in the order qemu-img -o help lists them, then its
 * creation-only options (help NULL), *n of them in all; NULL when it cannot amend. */
const struct blk_opt_desc *blk_amend_options(const char *fmt, size_t *n);
/* One -o option, its value checked against its type: num holds a bool (0/1), a number or
 * a size; val the text as given. */
struct blk_amend_opt {
	const char *name, *val;
	uint64_t num;
};
/* Progress of a long operation: `done` of `total` (qemu-img -p). */
typedef void (*blk_progress_fn)(void *ctx, uint64_t done, uint64_t total);
/* Changes b (open read-write) as qemu-img amend does with these options, taken in order
 * (the last of a name wins). Every refusal qemu-img makes is made before anything is
 * written, with qemu-img's message. */
int blk_amend(struct blk *b, const struct blk_amend_opt *opts, size_t n, blk_progress_fn cb,
	      void *ctx);

/* ---- qemu-img measure (BLK_CAP_MEASURE) ---- */
struct blk_measure {
	uint64_t required;	  /* file size for the data present ("required size") */
	uint64_t fully_allocated; /* file size with all of it allocated */
	bool has_bitmaps;	  /* src's persistent bitmaps would be copied ("bitmaps size") */
	uint64_t bitmaps;	  /* their size */
};
/* The file an image of format `fmt` created with `c` needs to hold src's data (src NULL:
 * an empty image of `size` bytes; else `size` is blk_size(src)). The size is taken in
 * whole sectors, as qemu-img does. */
int blk_measure(const char *fmt, const struct blk_create_opts *c, struct blk *src, uint64_t size,
		struct blk_measure *m);

/* ---- facts for `kite img info` ---- */
/* An encrypted image's "encrypt" facts (QEMU's QCryptoBlockInfo). */
#define BLK_LUKS_SLOTS 8
struct blk_luks_slot_info {
	bool active;
	uint32_t iters, stripes; /* active slots only */
	uint64_t key_offset;	 /* bytes */
};
struct blk_crypto_info {
	const char *format; /* "luks" or "aes"; NULL: not encrypted */
	/* luks */
	char cipher_alg[16], cipher_mode[8], ivgen_alg[8], hash_alg[16];
	char ivgen_hash_alg[16]; /* "" unless the IV generator is essiv */
	char uuid[41];
	uint64_t payload_offset; /* bytes */
	uint32_t master_key_iters;
	struct blk_luks_slot_info slots[BLK_LUKS_SLOTS];
};
struct blk_info {
	const char *format;
	uint64_t virtual_size;
	uint32_t cluster_size; /* 0: not applicable */
	bool dirty;	       /* format's dirty flag (qcow2 lazy refcounts) */
	bool encrypted;
	struct blk_crypto_info crypto;
	char backing_file[4096]; /* as stored in the image; "" if none */
	char backing_full[4096]; /* resolved against the image's directory */
	char backing_format[64]; /* from the image; "" if none */
	/* qcow2 */
	char compat[8]; /* "0.10" or "1.1" */
	bool lazy_refcounts;
	bool corrupt;
	bool extended_l2;
	int refcount_bits;
	char compression_type[8]; /* "zlib" or "zstd" */
	bool has_data_file;	  /* incompatible bit: raw or not is told */
	bool has_data_file_name;  /* the name extension is there (maybe empty) */
	char data_file[4096];
	bool data_file_raw;
	int nb_snapshots;
	/* vmdk */
	uint32_t vmdk_cid, vmdk_parent_cid;
	char vmdk_create_type[32];
};
/* Fills *info (zeroed first; generic fields filled by the layer, the rest by the driver). */
int blk_get_info(struct blk *b, struct blk_info *info);
/* qemu-img info's "format-specific" object ({"type": <format>, "data": {...}}, the data
 * the driver's) for the image whose blk_get_info is `in`; NULL when the format has none. */
json_t *blk_info_specific(struct blk *b, const struct blk_info *in);
/* Recreates the (closed) image at `path` empty, with the format and settings `in` (its
 * blk_get_info) describes: commit empties its top image so (BLK_CAP_MAKE_EMPTY). */
int blk_make_empty(const char *path, const struct blk_info *in);

/* ---- consistency checks (BLK_CAP_CHECK: kite img check) ---- */
/* qemu-img check's counters (its JSON field names in comments). */
struct blk_check_result {
	uint64_t corruptions;	      /* "corruptions" */
	uint64_t leaks;		      /* "leaks" */
	uint64_t check_errors;	      /* "check-errors" */
	uint64_t corruptions_fixed;   /* "corruptions-fixed" */
	uint64_t leaks_fixed;	      /* "leaks-fixed" */
	uint64_t image_end_offset;    /* "image-end-offset" */
	uint64_t total_clusters;      /* "total-clusters" (virtual size in clusters) */
	uint64_t allocated_clusters;  /* "allocated-clusters" */
	uint64_t fragmented_clusters; /* "fragmented-clusters" */
	uint64_t compressed_clusters; /* "compressed-clusters" */
	/* Set when the damage found fails the check itself (vmdk, as QEMU: exit 1), worded
	 * for "<image>: check failed: <failed>"; NULL otherwise. */
	const char *failed;
};
#define BLK_CHECK_FIX_LEAKS  (1u << 0) /* -r leaks */
#define BLK_CHECK_FIX_ERRORS (1u << 1) /* -r all (with BLK_CHECK_FIX_LEAKS) */
/* Checks the image (opened with BLK_O_CHECK, read-write to repair with `fix` flags),
 * printing one line per problem to stderr as qemu-img does. Returns 0 when the check ran
 * (see the counters), -1 when it could not (the reason printed: qcow2 as qemu-img's
 * "Check failed: <strerror>"). */
int blk_check(struct blk *b, unsigned fix, struct blk_check_result *r);

/* ---- persistent dirty bitmaps (kite img bitmap) ---- */
enum blk_bitmap_op {
	BLK_BITMAP_ADD,
	BLK_BITMAP_REMOVE,
	BLK_BITMAP_CLEAR,
	BLK_BITMAP_ENABLE,
	BLK_BITMAP_DISABLE,
	BLK_BITMAP_MERGE,
};
struct blk_bitmap_change {
	enum blk_bitmap_op op;
	uint64_t granularity; /* ADD: bytes; 0: the image's default */
	struct blk *src;      /* MERGE: the image holding src_name; NULL: the same image */
	const char *src_name; /* MERGE: the bitmap merged in */
};
/* Changes the persistent dirty bitmap `name` of b (open read-write) as qemu-img bitmap's
 * action does, written to the image before it returns. A failure is worded as qemu-img's:
 * "Operation <op> on bitmap <name> failed: <why>". Formats without persistent bitmaps have
 * none to find and cannot store one. */
int blk_bitmap_change(struct blk *b, const char *name, const struct blk_bitmap_change *c);

/* Rewrites the backing file name/format stored in the image (rebase -u); `file` NULL
 * removes the backing file. The image must be open read-write. */
int blk_change_backing(struct blk *b, const char *file, const char *fmt);

#endif
