/* kite img convert: copies one or more images (concatenated) into a new image of any
 * writable format. Ranges that the source's block status reports as zero or unallocated are
 * not written, and data is checked for zeros at the -S granularity, so the output is
 * sparse; -c writes compressed clusters. */
#include "cli/cmd_img.h"
#include "util/err.h"
#include "util/progress.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CHUNK (2u << 20) /* the copy buffer; bytes read and written per step with -B */
/* Bytes read and written per step of a plain copy: a step's data is copied out of the page
 * cache, scanned for zeros and copied into the output while it is still in the CPU's
 * caches. Measured on a 1G convert (page-cached source): 1 MiB steps were 5-15% faster
 * than 2 MiB ones, 8 MiB steps 40% slower. */
#define STEP (1u << 20)

struct convert {
	struct blk **src;
	uint64_t *src_start; /* offset of each source in the output */
	int nsrc;
	uint64_t total;
	struct blk *dst;
	uint32_t dst_cluster;
	uint64_t sparse;     /* -S: zero-detection granularity, 0 = write everything */
	bool no_zero_scan;   /* -C: data extents copied whole, as qemu-img's copy offloading */
	bool compress;	     /* -c */
	bool dst_has_data;   /* -n: the target may hold old data, so zeros must be written */
	uint64_t zoff, zlen; /* the run of zeros gathered so far, not yet written */
	uint8_t *zeros;	     /* CHUNK zero bytes for -S 0 (buf may hold data meanwhile) */
	struct progress prog;
	uint8_t *buf;
	/* last block status answer, [st_off, st_end) in output offsets: asked once per run,
	 * not once per cluster (status calls can cost a seek each) */
	uint64_t st_off, st_end;
	bool st_zero;
};

/* Which source holds output offset `off`, and where in it. */
static int locate(const struct convert *cv, uint64_t off, uint64_t *src_off, uint64_t *avail)
{
	int i = cv->nsrc - 1;
	while (i > 0 && cv->src_start[i] > off)
		i--;
	*src_off = off - cv->src_start[i];
	*avail = blk_size(cv->src[i]) - *src_off;
	return i;
}

static int read_out(struct convert *cv, void *buf, uint64_t len, uint64_t off)
{
	uint8_t *p = buf;
	while (len > 0) {
		uint64_t so, avail;
		int i = locate(cv, off, &so, &avail);
		uint64_t n = len < avail ? len : avail;
		if (blk_pread(cv->src[i], p, (size_t)n, so) < 0)
			return -1;
		p += n;
		off += n;
		len -= n;
	}
	return 0;
}

/* Length (<= len) of the run at output offset `off` whose sources read as zeros (*zero) or
 * as data. */
static int status_out(struct convert *cv, uint64_t off, uint64_t len, bool *zero, uint64_t *pnum)
{
	uint64_t so, avail;
	int i = locate(cv, off, &so, &avail);
	if (avail == 0) { /* a zero-sized source */
		*zero = true;
		*pnum = len;
		return 0;
	}
	if (off < cv->st_off || off >= cv->st_end) {
		struct blk_map m;
		if (blk_map_status(cv->src[i], so, avail, &m) < 0)
			return -1;
		cv->st_off = off;
		cv->st_end = off + m.pnum;
		cv->st_zero = (m.flags & BLK_STATUS_ZERO) || !(m.flags & BLK_STATUS_ALLOCATED);
	}
	*zero = cv->st_zero;
	*pnum = cv->st_end - off < len ? cv->st_end - off : len;
	return 0;
}

static int write_zero_run(struct convert *cv, uint64_t off, uint64_t len)
{
	if (cv->sparse == 0) {
		/* -S 0: the output is fully allocated, zeros are written as data */
		if (!cv->zeros && !(cv->zeros = calloc(1, CHUNK)))
			return kite_error("out of memory");
		while (len > 0) {
			uint64_t n = len < CHUNK ? len : CHUNK;
			if (blk_pwrite(cv->dst, cv->zeros, (size_t)n, off) < 0)
				return -1;
			off += n;
			len -= n;
		}
		return 0;
	}
	/* a new image reads as zeros, unless it is encrypted raw (luks) */
	if (cv->dst_has_data || !blk_has_zero_init(cv->dst))
		return blk_write_zeroes(cv->dst, off, len, BLK_ZERO_MAY_UNMAP);
	return 0;
}

/* Zeros are gathered across block-status and piece boundaries and written as one run, as
 * qemu-img does: small zero writes at cluster edges would allocate clusters of zeros. */
static int flush_zeros(struct convert *cv)
{
	if (!cv->zlen)
		return 0;
	int r = write_zero_run(cv, cv->zoff, cv->zlen);
	cv->zlen = 0;
	return r;
}

static int add_zeros(struct convert *cv, uint64_t off, uint64_t len)
{
	if (cv->zlen && cv->zoff + cv->zlen == off) {
		cv->zlen += len;
		return 0;
	}
	if (flush_zeros(cv) < 0)
		return -1;
	cv->zoff = off;
	cv->zlen = len;
	return 0;
}

static int write_out(struct convert *cv, const uint8_t *buf, uint64_t off, uint64_t len)
{
	if (flush_zeros(cv) < 0)
		return -1;
	return blk_pwrite(cv->dst, buf, (size_t)len, off);
}

/* Writes buf (data for [off, off+len)) skipping all-zero pieces of cv->sparse bytes. */
static int write_data(struct convert *cv, const uint8_t *buf, uint64_t off, uint64_t len)
{
	if (cv->sparse == 0 || cv->no_zero_scan)
		return write_out(cv, buf, off, len);
	uint64_t g = cv->sparse;
	uint64_t pos = 0;
	while (pos < len) {
		/* pieces are aligned to g in output offsets */
		uint64_t piece = g - (off + pos) % g;
		if (piece > len - pos)
			piece = len - pos;
		bool zero = img_is_zero(buf + pos, (size_t)piece);
		uint64_t run = piece;
		while (pos + run < len) {
			uint64_t p2 = g < len - pos - run ? g : len - pos - run;
			if (img_is_zero(buf + pos + run, (size_t)p2) != zero)
				break;
			run += p2;
		}
		int r =
		    zero ? add_zeros(cv, off + pos, run) : write_out(cv, buf + pos, off + pos, run);
		if (r < 0)
			return -1;
		pos += run;
	}
	return 0;
}

static int copy_plain(struct convert *cv)
{
	uint64_t off = 0;
	while (off < cv->total) {
		bool zero;
		uint64_t n;
		/* a run of zeros in one step, data STEP bytes at a time */
		if (status_out(cv, off, cv->total - off, &zero, &n) < 0)
			return -1;
		if (!zero && n > STEP)
			n = STEP;
		if (zero) {
			if (add_zeros(cv, off, n) < 0)
				return -1;
		} else {
			if (read_out(cv, cv->buf, n, off) < 0 ||
			    write_data(cv, cv->buf, off, n) < 0)
				return -1;
		}
		off += n;
		progress_update(&cv->prog, off, cv->total);
	}
	return flush_zeros(cv);
}

/* -B: the output shows its backing file wherever it is unallocated, so every piece (one
 * output cluster) whose source content differs from the backing file's is written, zeros
 * included (compressed with -c); pieces equal to the backing are left unallocated. */
static int copy_over_backing(struct convert *cv)
{
	struct blk *bk = blk_backing(cv->dst);
	uint64_t g = cv->dst_cluster ? cv->dst_cluster : 4096;
	uint8_t *old = malloc(CHUNK);
	int rc = -1;
	if (!old)
		return kite_error("out of memory");
	for (uint64_t off = 0; off < cv->total;) {
		uint64_t n = cv->total - off < CHUNK ? cv->total - off : CHUNK;
		uint64_t have = 0;
		if (bk && off < blk_size(bk))
			have = blk_size(bk) - off < n ? blk_size(bk) - off : n;
		if (read_out(cv, cv->buf, n, off) < 0 ||
		    (have && blk_pread(bk, old, (size_t)have, off) < 0))
			goto out;
		memset(old + have, 0, (size_t)(n - have));
		for (uint64_t pos = 0; pos < n;) {
			uint64_t piece = g - (off + pos) % g;
			if (piece > n - pos)
				piece = n - pos;
			if (memcmp(cv->buf + pos, old + pos, (size_t)piece)) {
				const uint8_t *p = cv->buf + pos;
				int r = img_is_zero(p, (size_t)piece)
					    ? blk_write_zeroes(cv->dst, off + pos, piece, 0)
					: cv->compress
					    ? blk_pwrite_compressed(cv->dst, p, (size_t)piece,
								    off + pos)
					    : blk_pwrite(cv->dst, p, (size_t)piece, off + pos);
				if (r < 0)
					goto out;
			}
			pos += piece;
		}
		off += n;
		progress_update(&cv->prog, off, cv->total);
	}
	rc = 0;
out:
	free(old);
	return rc;
}

/* -c: whole clusters, each written compressed unless it is all zeros. */
static int cc_read(void *ctx, void *buf, uint64_t len, uint64_t off)
{
	return read_out(ctx, buf, len, off);
}

static int cc_zero(void *ctx, uint64_t off, uint64_t len, bool *zero)
{
	uint64_t run;
	if (status_out(ctx, off, len, zero, &run) < 0)
		return -1;
	*zero = *zero && run == len;
	return 0;
}

static void cc_progress(void *ctx, uint64_t done)
{
	struct convert *cv = ctx;
	progress_update(&cv->prog, done, cv->total);
}

static int copy_compressed(struct convert *cv)
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

static int open_target(struct convert *cv, const char *path, const char *fmt, bool no_create,
		       struct img_opts *o, unsigned flags, const char *backing,
		       const char *backing_fmt)
{
	const char *key_secret = NULL;
	if (!no_create) {
		if (strcmp(fmt, "raw") && strcmp(fmt, "qcow2") && strcmp(fmt, "luks"))
			return kite_error("kite img convert cannot write format '%s' (use raw, "
					  "qcow2 or luks)",
					  fmt);
		struct blk_create_opts c = {0};
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
		if (backing && strcmp(fmt, "qcow2"))
			return kite_error("format '%s' does not support backing files", fmt);
		/* qemu-img 7.2 no longer probes a new image's backing file */
		if (backing && !backing_fmt)
			return kite_error("Use of backing file requires explicit backing format");
		c.backing_file = backing;
		c.backing_fmt = backing_fmt;
		c.size = cv->total;
		if (!strcmp(fmt, "qcow2")) /* qcow2 sizes are whole sectors, as in QEMU */
			c.size = (c.size + 511) & ~511ULL;
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
	struct convert cv = {0};
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
	cv.buf = malloc(CHUNK);
	if (!cv.src || !cv.src_start || !cv.buf) {
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
	int r = blk_backing(cv.dst) ? copy_over_backing(&cv)
		: cv.compress	    ? copy_compressed(&cv)
				    : copy_plain(&cv);
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
	free(cv.buf);
	free(cv.zeros);
	img_opts_free(&o);
	return rc;
}
