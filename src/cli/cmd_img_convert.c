/* kite img convert: copies one or more images (concatenated) into a new image of any
 * writable format. Ranges that the source's block status reports as zero or unallocated are
 * not written, and data is checked for zeros at the -S granularity, so the output is
 * sparse; -c writes compressed clusters. The copy itself is the block layer's engine
 * (block/convert.c); this file parses the options and opens the images. */
#include "block/convert.h"
#include "cli/cmd_img.h"
#include "util/err.h"
#include "util/progress.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CHUNK (2u << 20) /* the largest cluster -c compresses */

/* -c: whole clusters, each written compressed unless it is all zeros. */
static int cc_read(void *ctx, void *buf, uint64_t len, uint64_t off)
{
	return blk_convert_read(ctx, buf, len, off);
}

static int cc_zero(void *ctx, uint64_t off, uint64_t len, bool *zero)
{
	uint64_t run;
	if (blk_convert_status(ctx, off, len, zero, &run) < 0)
		return -1;
	*zero = *zero && run == len;
	return 0;
}

static void cc_progress(void *ctx, uint64_t done)
{
	struct blk_convert *cv = ctx;
	progress_update(&cv->prog, done, cv->total);
}

static int copy_compressed(struct blk_convert *cv)
{
	unsigned how =
	    (cv->dst_has_data ? IMG_CC_ZERO_OLD : 0) | (cv->sparse == 0 ? IMG_CC_KEEP_ZEROS : 0);
	return img_copy_compressed(cv->dst, cv->total, cv->dst_cluster, how, cc_read, cc_zero, cv,
				   cc_progress);
}

/* -l snapshot.id=ID,snapshot.name=NAME, or a bare ID or NAME (an id first, as qemu-img) */
static int load_snapshot(struct blk *b, const char *param)
{
	if (strncmp(param, "snapshot.", 9))
		return blk_load_snapshot(b, param, param);
	struct img_opts o = {0};
	int r = img_opts_parse(&o, param);
	if (r == 0)
		r = blk_load_snapshot(b, img_opts_get(&o, "snapshot.id"),
				      img_opts_get(&o, "snapshot.name"));
	img_opts_free(&o);
	return r;
}

static int open_target(struct blk_convert *cv, const char *path, const char *fmt, bool no_create,
		       struct img_opts *o, unsigned flags, const char *backing,
		       const char *backing_fmt)
{
	const char *key_secret = NULL;
	if (!no_create) {
		char list[256];
		if (!blk_format_can(fmt, BLK_CAP_CREATE))
			return kite_error("kite img convert cannot write format '%s' (use %s)", fmt,
					  blk_formats_with(BLK_CAP_CREATE, list, sizeof(list)));
		struct blk_create_opts c = {0};
		const char *bad = img_invalid_key(o, fmt);
		if (bad)
			return kite_error("Invalid parameter '%s'", bad);
		if (img_create_opts(o, fmt, &c) < 0)
			return -1;
		key_secret = c.encrypt.key_secret;
		if (cv->compress && c.encrypt.format)
			return kite_error("Compression and encryption not supported at the same "
					  "time");
		if (c.backing_file && !backing) {
			backing = c.backing_file;
			backing_fmt = c.backing_fmt;
		}
		if (backing && !blk_format_can(fmt, BLK_CAP_BACKING))
			return kite_error("format '%s' does not support backing files", fmt);
		/* qemu-img 7.2 no longer probes a new image's backing file */
		if (backing && !backing_fmt)
			return kite_error("Use of backing file requires explicit backing format");
		c.backing_file = backing;
		c.backing_fmt = backing_fmt;
		c.size = blk_format_round_size(fmt, cv->total); /* qcow2: whole sectors */
		c.size_set = true;
		if (blk_create(path, fmt, &c) < 0)
			return -1;
	}
	/* -n too: the target is what -O says (raw by default), as qemu-img takes it */
	cv->dst = blk_open_keyed(path, fmt, flags | BLK_O_RDWR, key_secret);
	if (!cv->dst)
		return -1;
	if (blk_size(cv->dst) < cv->total)
		return kite_error("output image '%s' is too small (%llu bytes, %llu needed)", path,
				  (unsigned long long)blk_size(cv->dst),
				  (unsigned long long)cv->total);
	cv->dst_cluster = blk_cluster_size(cv->dst);
	cv->dst_has_data = no_create;
	if (cv->compress && !blk_can_compress(cv->dst))
		return kite_error("compression is not supported for format '%s'", fmt);
	return 0;
}

/* Creating the output truncates it: refuse when it is one of the sources or a file in
 * their backing chains. */
static int same_file_as_source(struct blk **srcs, int n, const char *out)
{
	struct stat so;
	if (stat(out, &so) < 0)
		return 0; /* does not exist yet */
	for (int i = 0; i < n; i++) {
		for (struct blk *l = srcs[i]; l; l = blk_backing(l)) {
			struct stat si;
			if (stat(blk_filename(l), &si) == 0 && si.st_dev == so.st_dev &&
			    si.st_ino == so.st_ino)
				return kite_error(
				    "the output '%s' is the same file as the input '%s'", out,
				    blk_filename(l));
		}
	}
	return 0;
}

int img_convert(int argc, char **argv)
{
	static const struct option longopts[] = {{"help", no_argument, NULL, 'h'},
						 {"force-share", no_argument, NULL, 'U'},
						 {NULL, 0, NULL, 0}};
	const char *fmt = NULL, *out_fmt = "raw", *cache = NULL, *backing = NULL,
		   *backing_fmt = NULL, *src_cache = NULL;
	bool quiet = false, progress = false, no_create = false, copy_offload = false,
	     have_opts = false;
	unsigned share = 0;
	const char *snapshot = NULL;
	struct blk_convert cv = {0};
	struct img_opts o = {0};
	int rc = 1, c;
	cv.sparse = 4096;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":f:O:o:B:F:cpqnS:t:T:WUm:Cl:", longopts, NULL)) !=
	       -1) {
		switch (c) {
		case 'f':
			fmt = optarg;
			break;
		case 'O':
			out_fmt = optarg;
			break;
		case 'B':
			backing = optarg;
			break;
		case 'F':
			backing_fmt = optarg;
			break;
		case 'o':
			if (img_opts_parse(&o, optarg))
				goto out;
			have_opts = true;
			break;
		case 'c':
			cv.compress = true;
			break;
		case 'l': /* the last one counts, as in qemu-img */
			snapshot = optarg;
			break;
		case 'p':
			progress = true;
			break;
		case 'q':
			quiet = true;
			break;
		case 'n':
			no_create = true;
			break;
		case 'S':
			if (img_parse_size(optarg, &cv.sparse))
				goto out;
			if (cv.sparse % 512 || cv.sparse > (16ULL << 20)) {
				kite_error(
				    "invalid -S '%s': a multiple of 512 up to 16M (as qemu-img), "
				    "or 0 to allocate everything",
				    optarg);
				goto out;
			}
			break;
		case 't':
			cache = optarg;
			break;
		case 'T': /* source cache mode: only how fast reads are */
			src_cache = optarg;
			break;
		case 'm': { /* parallel requests: only how fast the copy is */
			char *end;
			long m = strtol(optarg, &end, 10);
			if (*end || m < 1 || m > 16) {
				kite_error("invalid -m '%s': the number of coroutines is between 1 "
					   "and 16 (as qemu-img)",
					   optarg);
				goto out;
			}
			break;
		}
		case 'C': /* copy offloading: data extents copied as they are, zeros in them
			   * included (no zero detection), as qemu-img's copy_range does */
			copy_offload = true;
			cv.no_zero_scan = true;
			break;
		case 'W': /* out-of-order writes: ours are in order, which is allowed */
		case 'U':
			share = BLK_O_SHARE;
			break;
		case ':':
			img_usage_error("convert", "option '%s' needs an argument",
					argv[optind - 1]);
			goto out;
		default:
			img_usage_error("convert", "unknown option '%s'", argv[optind - 1]);
			goto out;
		}
	}
	if (argc - optind < 2) {
		img_usage_error("convert", "expecting a source and an output filename");
		goto out;
	}
	if (copy_offload && cv.compress) {
		kite_error("convert: -C (copy offloading) and -c do not go together");
		goto out;
	}
	if (no_create && have_opts) {
		kite_error("convert: -o has no effect with -n (the output is not created)");
		goto out;
	}
	if (backing && argc - optind > 2) {
		kite_error("convert: -B makes no sense when concatenating several inputs");
		goto out;
	}
	if (src_cache && strcmp(src_cache, "none") && strcmp(src_cache, "directsync") &&
	    strcmp(src_cache, "writeback") && strcmp(src_cache, "writethrough") &&
	    strcmp(src_cache, "unsafe")) {
		kite_error("invalid source cache option '%s'", src_cache);
		goto out;
	}
	/* As qemu-img: the target's default cache mode is "unsafe" (no syncs between dependent
	 * metadata writes: a convert that dies leaves a file to delete, not data to lose). */
	unsigned dst_flags = (!cache || !strcmp(cache, "unsafe")) ? BLK_O_UNSAFE : 0;
	if (cache) {
		if (!strcmp(cache, "none") || !strcmp(cache, "directsync")) {
			dst_flags |= BLK_O_NOCACHE;
		} else if (strcmp(cache, "writeback") && strcmp(cache, "writethrough") &&
			   strcmp(cache, "unsafe")) {
			kite_error("invalid cache option '%s'", cache);
			goto out;
		}
	}
	cv.nsrc = argc - optind - 1;
	cv.src = calloc((size_t)cv.nsrc, sizeof(*cv.src));
	cv.src_start = calloc((size_t)cv.nsrc, sizeof(*cv.src_start));
	if (!cv.src || !cv.src_start || blk_convert_init(&cv) < 0) {
		kite_error("out of memory");
		goto out;
	}
	for (int i = 0; i < cv.nsrc; i++) {
		cv.src[i] =
		    blk_open(argv[optind + i], fmt,
			     BLK_O_RDONLY | share | img_source_flags() | BLK_O_NO_PROBE_WARN);
		if (!cv.src[i])
			goto out;
		if (snapshot && cv.nsrc > 1) {
			kite_error("No support for concatenating multiple snapshot");
			goto out;
		}
		if (snapshot && load_snapshot(cv.src[i], snapshot) < 0)
			goto out;
		cv.src_start[i] = cv.total;
		cv.total += blk_size(cv.src[i]);
	}
	const char *out_path = argv[argc - 1];
	if (same_file_as_source(cv.src, cv.nsrc, out_path))
		goto out;
	if (backing && no_create) {
		kite_error(
		    "convert: -B (a backing file for a new output) and -n do not go together");
		goto out;
	}
	if (open_target(&cv, out_path, out_fmt, no_create, &o, dst_flags, backing, backing_fmt) < 0)
		goto out;
	if (cv.compress && cv.dst_cluster > CHUNK) {
		kite_error("cluster size too large for compression");
		goto out;
	}
	progress_init(&cv.prog, progress && !quiet);
	int r = blk_backing(cv.dst) ? blk_convert_over_backing(&cv)
		: cv.compress	    ? copy_compressed(&cv)
				    : blk_convert_plain(&cv);
	if (r < 0)
		goto out;
	if (blk_flush(cv.dst) < 0)
		goto out;
	progress_finish(&cv.prog);
	rc = 0;
out:
	if (cv.prog.enabled)
		putchar('\n');
	if (cv.dst)
		blk_close(cv.dst);
	for (int i = 0; cv.src && i < cv.nsrc; i++)
		blk_close(cv.src[i]);
	free(cv.src);
	free(cv.src_start);
	blk_convert_free(&cv);
	img_opts_free(&o);
	return rc;
}
