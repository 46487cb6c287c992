/* The copy engine of `kite img convert`: one or more source images, concatenated, written
 * into an open target. Ranges that the sources' block status reports as zero or unallocated
 * are not written, and data is checked for zeros at the `sparse` granularity, so the output
 * is sparse. The CLI (cmd_img_convert.c) parses options and opens the images; `kite guest
 * v2v` converts an imported disk through blk_convert_image().
 *
 *   struct blk_convert cv = {.src = srcs, .src_start = starts, .nsrc = n, .total = bytes,
 *                            .dst = target, .dst_cluster = blk_cluster_size(target),
 *                            .sparse = 4096};
 *   if (blk_convert_init(&cv) == 0)
 *           r = blk_convert_plain(&cv);
 *   blk_convert_free(&cv);
 */
#ifndef KITE_BLOCK_CONVERT_H
#define KITE_BLOCK_CONVERT_H

#include "block/block.h"
#include "util/progress.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct blk_convert {
	struct blk **src;
	uint64_t *src_start; /* offset of each source in the output */
	int nsrc;
	uint64_t total;
	struct blk *dst;
	uint32_t dst_cluster;
	uint64_t sparse;   /* -S: zero-detection granularity, 0 = write everything */
	bool no_zero_scan; /* -C: data extents copied whole, as qemu-img's copy offloading */
	bool compress;	   /* -c: with a backing file, pieces are written compressed */
	bool dst_has_data; /* -n: the target may hold old data, so zeros must be written */
	struct progress prog;
	/* the engine's own state (blk_convert_init, blk_convert_free) */
	uint64_t zoff, zlen; /* the run of zeros gathered so far, not yet written */
	uint8_t *zeros;	     /* zero bytes for sparse == 0 */
	uint8_t *buf;
	/* last block status answer, [st_off, st_end) in output offsets: asked once per run,
	 * not once per cluster (status calls can cost a seek each) */
	uint64_t st_off, st_end;
	bool st_zero;
};

/* Allocates the copy buffer. Returns 0 or -1 (reported). */
int blk_convert_init(struct blk_convert *cv);
void blk_convert_free(struct blk_convert *cv);

/* Copies [0, total) into cv->dst, skipping zeros (a new target already reads as zeros). */
int blk_convert_plain(struct blk_convert *cv);
/* The target has a backing file: every piece (one output cluster) whose content differs
 * from the backing file's is written, zeros included; equal pieces stay unallocated. */
int blk_convert_over_backing(struct blk_convert *cv);

/* The output's bytes [off, off + len), read from the sources. */
int blk_convert_read(struct blk_convert *cv, void *buf, uint64_t len, uint64_t off);
/* The length (<= len) of the run at output offset `off` whose sources read as zeros (*zero)
 * or as data. */
int blk_convert_status(struct blk_convert *cv, uint64_t off, uint64_t len, bool *zero,
		       uint64_t *pnum);

/* Whole-buffer zero test, fast for the common all-zero and early-nonzero cases. */
bool blk_is_zero(const void *buf, size_t len);

/* One image into a new file: `out` is created (truncated) as `fmt` (raw or qcow2, the
 * format's defaults) with `src`'s size, and written as kite img convert writes it. On
 * failure `out` is left for the caller to remove. Returns 0 or -1 (reported). */
int blk_convert_image(struct blk *src, const char *out, const char *fmt, bool progress);

#endif
