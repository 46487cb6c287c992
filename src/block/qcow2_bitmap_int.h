/* qcow2 persistent dirty bitmaps, writable side (qcow2.txt "Bitmaps extension"): the bitmap
 * directory held in memory, the bits of the bitmaps that are loaded, and the writes that put
 * them back. Shared by qcow2_bitmap_dir.c (directory), qcow2_bitmap_data.c (bits),
 * qcow2_bitmap_ops.c (qemu-img bitmap's actions) and qcow2_bitmap_track.c (marking what kite
 * writes).
 *
 * Crash safety: the directory and bitmap tables are never changed in place. New bits, tables
 * and a new directory go into newly allocated clusters, the header then points at the new
 * directory, and only after that are the replaced clusters freed: a crash leaves the old or
 * the new directory whole, and leaked clusters at worst. */
#ifndef KITE_BLOCK_QCOW2_BITMAP_INT_H
#define KITE_BLOCK_QCOW2_BITMAP_INT_H

#include "block/qcow2_int.h"

#include <stdarg.h>

/* QEMU's limits (block/qcow2-bitmap.c), which its loader enforces */
#define BME_MAX_TABLE_SIZE	 0x8000000u
#define BME_MAX_PHYS_SIZE	 0x20000000u
#define BME_MIN_GRANULARITY_BITS 9
#define BME_MAX_GRANULARITY_BITS 31
#define BME_MAX_NAME_SIZE	 1023
#define BME_MAX_BITMAPS		 65535
#define BME_MAX_DIR_SIZE	 (1024u * BME_MAX_BITMAPS)

#define BME_FLAG_IN_USE	   (1u << 0)
#define BME_FLAG_AUTO	   (1u << 1)
#define BME_RESERVED_FLAGS 0xfffffffcu

#define BME_ENTRY_RESERVED 0xff000000000001feull
#define BME_ENTRY_OFFSET   0x00fffffffffffe00ull
#define BME_ENTRY_ALL_ONES 1ull

/* One bitmap of the directory. */
struct qbm {
	char *name;
	uint32_t flags; /* as the next directory written stores them */
	uint32_t gbits; /* granularity 2^gbits bytes */
	uint64_t toff;	/* its bitmap table in the file */
	uint32_t tsize; /* entries */
	uint8_t *bits;	/* the bits, when loaded: bit j of byte i is granule 8i+j (as on disk) */
	uint64_t nbits; /* granules `bits` covers */
	bool changed;	/* `bits` must be written to new clusters by the next commit */
	bool tracked;	/* kite set IN_USE while it keeps `bits` current (qcow2_bitmap_track.c) */
};

/* A bitmap table the directory no longer refers to: freed by the next commit. */
struct qbm_table {
	uint64_t off;
	uint32_t size;
};

/* The directory as kite holds it (struct qcow2's `bitmaps`). */
struct qbm_dir {
	struct qbm *v;
	uint32_t n;
	struct qbm_table *drop;
	size_t ndrop;
	bool tracking; /* tracked bitmaps are IN_USE on disk and written back at close */
};

/* qcow2_bitmap_dir.c */
/* Whether the image has bitmaps that count: v3, the extension, its autoclear bit. */
bool qbm_present(struct qcow2 *q);
/* The directory (loaded once, then kept in Q(b)->bitmaps), checked as QEMU checks it when
 * it opens an image; NULL with QEMU's error ("Could not open ...") when it is not sound. */
struct qbm_dir *qbm_dir_get(struct blk *b);
/* The same, the reason it is not sound left in `why` instead of printed. */
struct qbm_dir *qbm_dir_get_quiet(struct blk *b, char *why, size_t n);
struct qbm *qbm_find(struct qbm_dir *d, const char *name);
struct qbm *qbm_append(struct qbm_dir *d, const char *name, uint32_t gbits, uint32_t flags);
/* Removes v[i] (its table goes on the drop list). */
int qbm_remove(struct qbm_dir *d, uint32_t i);
int qbm_drop_table(struct qbm_dir *d, uint64_t off, uint32_t size);
/* Writes `d` to the image (changed bits, then the directory, then the header), then frees
 * what it replaced. */
int qbm_commit(struct blk *b, struct qbm_dir *d);
void qbm_dir_free(struct qbm_dir *d);
/* Frees these host clusters after the next flush, each that has refcount 1 and is listed
 * once; the others stay allocated (leaked at worst, never freed twice). Sorts `offs`. */
int qbm_free_clusters(struct blk *b, uint64_t *offs, size_t n);
/* Forgets the directory: the image then has no bitmaps (header rewritten, clusters left
 * leaked). For a directory kite cannot load, before it writes the image. */
int qbm_dir_discard(struct blk *b);

/* qcow2_bitmap_data.c */
uint64_t qbm_bytes(uint64_t nbits);
/* Loads bm's bits from its table (b: the image whose directory holds bm). */
int qbm_load(struct blk *b, struct qbm *bm);
/* Zeroed bits for the image's size (a new or cleared bitmap). */
int qbm_zero(struct blk *b, struct qbm *bm);
/* Writes bm's bits into new clusters and a new table; the old table is dropped. */
int qbm_store(struct blk *b, struct qbm_dir *d, struct qbm *bm);
/* Sets the granules that cover bytes [off, off+len) of the image. */
void qbm_set_range(struct qbm *bm, uint64_t off, uint64_t len);
/* dst |= src, for any two granularities (bitmaps of images of the same size). */
void qbm_merge(struct qbm *dst, const struct qbm *src, uint64_t size);
/* Grows (new bits clear) or shrinks the bits to the image's (new) size. */
int qbm_resize(struct blk *b, struct qbm *bm);
/* Frees a table's data clusters and the table itself (after the next flush); clusters that
 * are shared or doubtful stay allocated (leaked at worst). */
int qbm_free_table(struct blk *b, const struct qbm_table *t);

#endif
