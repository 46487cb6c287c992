/* qcow2 check internals shared by qcow2_check.c, qcow2_check_tables.c, qcow2_rebuild.c and
 * qcow2_snapshot_check.c. The algorithm, its messages and its counters are qemu-img 7.2's
 * (block/qcow2-refcount.c, qcow2-snapshot.c), so that `kite img check` prints what qemu-img
 * prints and leaves an image in the state qemu-img leaves it.
 *
 * Errors inside the check are negative errno values (what qemu-img shows as "Check failed:
 * <strerror>"); problems found in the image are counted in a struct blk_check_result. */
#ifndef KITE_BLOCK_QCOW2_CHECK_INT_H
#define KITE_BLOCK_QCOW2_CHECK_INT_H

#include "block/qcow2_int.h"

#define L1E_RESERVED_MASK     0x7f000000000001ffull
#define L2E_STD_RESERVED_MASK 0x3f000000000001feull
#define RTE_RESERVED_MASK     0x1ffull
#define L2_BITMAP_ALL_ALLOC   0x00000000ffffffffull
#define L2_BITMAP_ALL_ZERO    0xffffffff00000000ull

/* The refcounts the check computes for every host cluster: an array packed as refcount
 * blocks are (refcount_bits per cluster), so that a rebuild writes slices of it as the new
 * refcount blocks. The buffer always holds whole clusters. */
struct qcow2_imrt {
	uint8_t *buf;
	uint64_t nb; /* clusters covered */
};

struct qcow2_chk {
	struct blk *b;
	struct qcow2 *q;
	bool quiet;		/* the silent repair of a dirty image at open */
	struct qcow2_imrt imrt; /* computed refcounts */
	uint64_t file_len;	/* the image file's length, as the check last saw it */
};

/* qcow2_check() flags (BLK_CHECK_FIX_LEAKS, BLK_CHECK_FIX_ERRORS) as QEMU's BdrvCheckMode */
#define CHK_FRAG_INFO (1u << 0) /* check_refcounts_l1(): count allocated/fragmented clusters */

/* qcow2_check.c */
void chk_say(const struct qcow2_chk *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int chk_errno(void);
uint64_t imrt_get(const struct qcow2_chk *c, uint64_t cluster);
void imrt_set(struct qcow2_chk *c, uint64_t cluster, uint64_t v);
int imrt_resize(struct qcow2_chk *c, uint64_t nb);
int chk_inc_refcounts(struct qcow2_chk *c, struct blk_check_result *res, uint64_t off,
		      uint64_t size);
int chk_refresh_file_len(struct qcow2_chk *c);

/* qcow2_check_tables.c: counts every reference the image's tables make (header, L1/L2
 * tables, snapshots, refcount structures, bitmaps); sets *rebuild when the refcount
 * structure itself is broken. */
int chk_calculate_refcounts(struct qcow2_chk *c, struct blk_check_result *res, unsigned fix,
			    bool *rebuild);
/* Compares every cluster's L1/L2 COPIED flag with its stored refcount (and repairs). */
int chk_oflag_copied(struct qcow2_chk *c, struct blk_check_result *res, unsigned fix);

/* qcow2_rebuild.c: writes a new refcount structure from the computed refcounts. */
int chk_rebuild_refcount_structure(struct qcow2_chk *c, struct blk_check_result *res);

/* qcow2_snapshot_check.c: the snapshot table as check reads it (not read at open in check
 * mode), repaired with fix & BLK_CHECK_FIX_ERRORS; then the rewrite of a table found broken. */
int chk_read_snapshot_table(struct qcow2_chk *c, struct blk_check_result *res, unsigned fix);
int chk_fix_snapshot_table(struct qcow2_chk *c, struct blk_check_result *res, unsigned fix);

#endif
