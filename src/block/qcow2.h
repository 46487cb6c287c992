/* qcow2-specific operations for `kite img snapshot` and `kite img check`. Each takes a
 * struct blk opened with format qcow2 (blk_format_name(b) == "qcow2"); on another format
 * they fail with a clear error. */
#ifndef KITE_BLOCK_QCOW2_H
#define KITE_BLOCK_QCOW2_H

#include "block/block.h"

struct qcow2_snapshot {
	char *id;   /* "1", "2", ... */
	char *name; /* the tag */
	uint64_t l1_offset;
	uint32_t l1_size;
	uint32_t date_sec, date_nsec;
	uint64_t vm_clock_nsec;
	uint64_t vm_state_size;
	uint64_t disk_size; /* virtual size when taken */
	uint64_t icount;    /* UINT64_MAX: not recorded */
	uint8_t *extra;	    /* extra data as on disk, kept verbatim */
	uint32_t extra_size;
};

/* The image's snapshot table (owned by b; valid until the next snapshot call). */
int qcow2_snapshot_list(struct blk *b, const struct qcow2_snapshot **list, int *count);
/* Creates a snapshot named `name` (needs BLK_O_RDWR). The id is the next free number. */
int qcow2_snapshot_create(struct blk *b, const char *name);
/* Reverts the disk to snapshot `name_or_id` (tag first, then id, as qemu-img). */
int qcow2_snapshot_apply(struct blk *b, const char *name_or_id);
int qcow2_snapshot_delete(struct blk *b, const char *name_or_id);

/* One persistent dirty bitmap as qemu-img info lists it (kite reads, never maintains them). */
struct qcow2_bitmap_info {
	char name[1024];
	uint64_t granularity;
	bool in_use, autoload; /* flags "in-use", "auto" */
};
/* The bitmaps qemu would load (bitmaps extension with its autoclear bit set), in directory
 * order; *list (to free) is NULL and *count 0 when there are none. */
int qcow2_bitmap_info(struct blk *b, struct qcow2_bitmap_info **list, int *count);
/* The space qemu-img measure reports for copying b's bitmaps into clusters of `cs` bytes. */
int qcow2_bitmaps_size(struct blk *b, uint64_t cs, uint64_t *out);

/* qemu-img amend's qcow2 options (-o), as parsed from the command line; what was not given
 * stays as it is. */
struct qcow2_amend_opts {
	const char *compat;	  /* "0.10"/"v2" or "1.1"/"v3" (others refused); NULL: as is */
	uint64_t size;		  /* the new virtual size; 0: as is */
	const char *backing_file; /* must name what the image has: NULL when not given */
	const char *backing_fmt;
	const char *data_file; /* the data file's new name (it must have one); NULL: as is */
	int data_file_raw;     /* -1 not given, 0 off, 1 on (only where it is on already) */
	int lazy_refcounts;    /* -1 not given, 0 off, 1 on */
	int refcount_bits;     /* 0: not given (QEMU's int: any other value is checked) */
	bool refcount_bits_set;
	bool encrypt; /* an encrypt.* option was given (refused: kite opens no encrypted image) */
};
/* Progress of a long amend step: `done` of `total` (for qemu-img amend -p). */
typedef blk_progress_fn qcow2_amend_progress;
/* Changes the image (open read-write) as qemu-img 7.2's amend does: upgrade to v3, new
 * refcount width, lazy refcounts, virtual size, downgrade to v2 (zero clusters expanded).
 * Every refusal qemu-img makes is made before anything is written, with qemu-img's message;
 * -1 then leaves the image as it was. */
int qcow2_amend(struct blk *b, const struct qcow2_amend_opts *o, qcow2_amend_progress cb,
		void *ctx);

/* Rebuilds the refcounts the image's L1/L2 tables, snapshots and metadata imply and
 * compares them with the stored ones, printing one line per problem to stderr (as
 * qemu-img: "Leaked cluster 5 refcount=1 reference=0", "ERROR ..."). With fix flags
 * (image open read-write) repairs them. Returns 0 when it could run (see the counters),
 * -1 when the image could not be checked at all. */
int qcow2_check(struct blk *b, unsigned fix, struct blk_check_result *res);

#endif
