/* Shared pieces of the `kite img` verbs (one file per verb, cmd_img_<verb>.c). */
#ifndef KITE_CLI_CMD_IMG_H
#define KITE_CLI_CMD_IMG_H

#include "block/block.h"

#include <jansson.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

int img_create(int argc, char **argv);
int img_amend(int argc, char **argv);
int img_info(int argc, char **argv);
int img_convert(int argc, char **argv);
int img_resize(int argc, char **argv);
int img_check(int argc, char **argv);
int img_snapshot(int argc, char **argv);
int img_compare(int argc, char **argv);
int img_map(int argc, char **argv);
int img_rebase(int argc, char **argv);
int img_commit(int argc, char **argv);
int img_measure(int argc, char **argv);
int img_dd(int argc, char **argv);
int img_bitmap(int argc, char **argv);

/* QEMU's size_to_str(): "20 GiB", "388 KiB", "1.5 MiB", "512 B". Returns buf. */
const char *img_human_size(uint64_t v, char *buf, size_t len);

/* Parses a size argument as qemu-img does (suffixes K/M/G/T/P/E); prints an error naming
 * the argument and returns -1 when it is not one. */
int img_parse_size(const char *s, uint64_t *out);

/* qemu-img's cvtnum(): `value` as a size in [min, max] (util/size.h parse_size_qemu),
 * with qemu-img's two messages naming `name` on failure. Returns the value or -1. */
int64_t img_cvtnum(const char *name, const char *value, int64_t min, int64_t max);

/* --image-opts: the image as "driver=FMT,file.filename=PATH" (the keys kite takes;
 * "file.driver=file" may be given too). Sets *fmt (NULL when absent) and *path, both to
 * free. Returns 0 or -1 with an error. */
int img_parse_image_opts(const char *text, char **fmt, char **path);

/* -o key=value[,key=value...] lists: "," inside a value is written ",,". Several -o
 * options accumulate. */
struct img_opts {
	char **keys;
	char **vals;
	size_t n;
};
int img_opts_parse(struct img_opts *o, const char *text);
/* The value of `key` (NULL if absent) and marks it used. */
const char *img_opts_get(struct img_opts *o, const char *key);
void img_opts_free(struct img_opts *o);

/* Fills a blk_create_opts from -o values (size, cluster_size, preallocation, compat,
 * lazy_refcounts, refcount_bits, compression_type, backing_file, backing_fmt, extended_l2)
 * for format `fmt`. Unknown keys are an error. Strings point into `o`. */
/* The first -o key format `fmt` does not take, NULL when all are known: each verb words
 * the refusal as qemu-img does. */
const char *img_invalid_key(const struct img_opts *o, const char *fmt);
int img_create_opts(struct img_opts *o, const char *fmt, struct blk_create_opts *c);

/* `-o help` (or `-o ?`): prints the options format `fmt` takes and returns true. */
bool img_opts_help(struct img_opts *o, const char *fmt);

/* Prints qemu-img's "Formatting 'x', fmt=... " line for these options. */
void img_print_formatting(const char *path, const char *fmt, const struct blk_create_opts *c,
			  bool prealloc_given);

/* Known output formats for --output. */
enum img_output { IMG_OUT_HUMAN, IMG_OUT_JSON };
int img_parse_output(const char *s, enum img_output *out);

/* Disk space the file uses (st_blocks * 512), or -1. */
int64_t img_actual_size(const char *path);

/* Whole-buffer zero test, fast for the common all-zero and early-nonzero cases. */
bool img_is_zero(const void *buf, size_t len);
/* Open flags for a verb's input images: BLK_O_IMAGE_OPTS when --image-opts was given. */
unsigned img_source_flags(void);

/* Verb usage error: "kite: error: <verb>: <msg>" plus a hint; returns 1. */
int img_usage_error(const char *verb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Writes [0, total) of a source into `dst` as compressed clusters of `cluster` bytes,
 * compressing on all CPUs (cmd_img_compress.c). read_fn reads source bytes; zero_fn says
 * whether a whole range reads as zeros without reading it; progress is told the bytes
 * done. Clusters of zeros are not written, or written as zeros with IMG_CC_ZERO_OLD (an
 * existing target, convert -n), or compressed like any other with IMG_CC_KEEP_ZEROS (-S 0). */
#define IMG_CC_ZERO_OLD	  (1u << 0)
#define IMG_CC_KEEP_ZEROS (1u << 1)
typedef int (*img_read_fn)(void *ctx, void *buf, uint64_t len, uint64_t off);
typedef int (*img_zero_fn)(void *ctx, uint64_t off, uint64_t len, bool *zero);
int img_copy_compressed(struct blk *dst, uint64_t total, uint32_t cluster, unsigned how,
			img_read_fn read_fn, img_zero_fn zero_fn, void *ctx,
			void (*progress)(void *ctx, uint64_t done));

/* Snapshot list of a qcow2 image as QEMU's "snapshots" JSON array (NULL when the format
 * has none or the image has no snapshots), and its human table (cmd_img_snapshot.c). */

json_t *img_snapshots_json(struct blk *b);
void img_snapshots_print(json_t *list);

#endif
