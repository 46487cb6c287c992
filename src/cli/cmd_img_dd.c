/* kite img dd: qemu-img dd's operands (bs=, count=, skip=, if=, of=). The output is created
 * (raw, or -O's format) and the input copied into it from block `skip` on. As in qemu-img,
 * count= limits the input to its first count blocks, the skipped ones included, and a skip
 * past the end gives an empty output with a message but exit code 0. */
#include "cli/cmd_img.h"
#include "util/err.h"

#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define DD_CHUNK (1u << 20) /* bytes read and written per step, whatever bs= says */

struct dd {
	int64_t bs;
	int64_t count, skip;
	bool has_count, has_skip;
	const char *in, *out;
};

/* One "key=value" operand; a later one overrides an earlier one, as in qemu-img. */
static int dd_operand(struct dd *d, char *arg)
{
	char *eq = strchr(arg, '=');
	if (!eq)
		return kite_error("unrecognized operand %s", arg);
	*eq = '\0';
	const char *key = arg, *val = eq + 1;
	int64_t v = 0;
	if (!strcmp(key, "if")) {
		d->in = val;
	} else if (!strcmp(key, "of")) {
		d->out = val;
	} else if (!strcmp(key, "bs")) {
		if ((v = img_cvtnum("bs", val, 1, INT_MAX)) < 0)
			return -1;
		d->bs = v;
	} else if (!strcmp(key, "count")) {
		if ((v = img_cvtnum("count", val, 0, INT64_MAX)) < 0)
			return -1;
		d->count = v;
		d->has_count = true;
	} else if (!strcmp(key, "skip")) {
		if ((v = img_cvtnum("skip", val, 0, INT64_MAX)) < 0)
			return -1;
		d->skip = v;
		d->has_skip = true;
	} else {
		return kite_error("unrecognized operand %s", key);
	}
	return 0;
}

/* Whether skip= lies past the end of the `size` bytes read. */
static bool skip_beyond(const struct dd *d, uint64_t size)
{
	return d->has_skip && ((uint64_t)d->skip > INT64_MAX / (uint64_t)d->bs ||
			       size < (uint64_t)d->skip * (uint64_t)d->bs);
}

/* The input bytes read: all of it, or its first count blocks. */
static uint64_t input_end(const struct dd *d, uint64_t size)
{
	uint64_t bs = (uint64_t)d->bs, count = (uint64_t)d->count;
	if (d->has_count && count <= INT64_MAX / bs && count * bs < size)
		return count * bs;
	return size;
}

static int dd_copy(struct blk *in, struct blk *out, uint64_t from, uint64_t to)
{
	uint8_t *buf = malloc(DD_CHUNK);
	if (!buf)
		return kite_error("out of memory");
	int r = 0;
	for (uint64_t pos = from; pos < to && r == 0;) {
		size_t n = to - pos < DD_CHUNK ? (size_t)(to - pos) : DD_CHUNK;
		r = blk_pread(in, buf, n, pos);
		if (r == 0)
			r = blk_pwrite(out, buf, n, pos - from);
		pos += n;
	}
	free(buf);
	return r;
}

/* Creating the output truncates it: never the input itself (qemu-img would zero it). */
static int same_file(struct blk *in, const char *out)
{
	struct stat si, so;
	if (stat(out, &so) < 0 || stat(blk_filename(in), &si) < 0)
		return 0;
	if (si.st_dev == so.st_dev && si.st_ino == so.st_ino)
		return kite_error("the output '%s' is the same file as the input '%s'", out,
				  blk_filename(in));
	return 0;
}

static int create_output(const struct dd *d, const char *fmt, uint64_t size)
{
	if (!blk_format_known(fmt))
		return kite_error("Unknown file format");
	struct blk_create_opts c = {0};
	c.size = (size + 511) & ~511ull; /* whole sectors, as qemu-img creates them */
	c.size_set = true;
	return blk_create(d->out, fmt, &c);
}

static int dd_run(const struct dd *d, const char *fmt, const char *out_fmt, unsigned share)
{
	struct blk *in = blk_open(d->in, fmt, BLK_O_RDONLY | BLK_O_NO_PROBE_WARN | share);
	struct blk *out = NULL;
	if (!in)
		return 1;
	int rc = 1;
	uint64_t end = input_end(d, blk_size(in));
	bool beyond = skip_beyond(d, end);
	uint64_t from = beyond ? end : (uint64_t)d->skip * (uint64_t)d->bs;
	if (same_file(in, d->out) < 0 || create_output(d, out_fmt, end - from) < 0)
		goto out;
	out = blk_open(d->out, out_fmt, BLK_O_RDWR);
	if (!out)
		goto out;
	if (beyond)
		kite_error("%s: cannot skip to specified offset", d->in);
	if (dd_copy(in, out, from, end) < 0 || blk_flush(out) < 0)
		goto out;
	rc = 0;
out:
	blk_close(out);
	blk_close(in);
	return rc;
}

int img_dd(int argc, char **argv)
{
	enum { OPT_IMAGE_OPTS = 256, OPT_OBJECT };
	static const struct option longopts[] = {{"help", no_argument, NULL, 'h'},
						 {"image-opts", no_argument, NULL, OPT_IMAGE_OPTS},
						 {"object", required_argument, NULL, OPT_OBJECT},
						 {"force-share", no_argument, NULL, 'U'},
						 {NULL, 0, NULL, 0}};
	struct dd d = {.bs = 512};
	const char *fmt = NULL, *out_fmt = "raw";
	bool image_opts = false;
	unsigned share = 0;
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":hf:O:U", longopts, NULL)) != -1) {
		switch (c) {
		case 'f':
			fmt = optarg;
			break;
		case 'O':
			out_fmt = optarg;
			break;
		case 'U':
			share = BLK_O_SHARE;
			break;
		case OPT_IMAGE_OPTS:
			image_opts = true;
			break;
		case OPT_OBJECT: /* kite has no objects to define (no encrypted images) */
			break;
		case 'h':
			printf("usage: kite img dd [--image-opts] [-U] [-f fmt] [-O output_fmt] "
			       "[bs=block_size] [count=blocks] [skip=blocks] if=input of=output\n");
			return 0;
		case ':':
			return img_usage_error("dd", "option '%s' needs an argument",
					       argv[optind - 1]);
		default:
			return img_usage_error("dd", "unknown option '%s'", argv[optind - 1]);
		}
	}
	image_opts = image_opts || img_source_flags(); /* cmd_img takes --image-opts first */
	if (image_opts && fmt)
		return kite_error("--image-opts and --format are mutually exclusive"), 1;
	for (int i = optind; i < argc; i++)
		if (dd_operand(&d, argv[i]) < 0)
			return 1;
	if (!d.in || !d.out)
		return kite_error("Must specify both input and output files"), 1;
	if (!image_opts)
		return dd_run(&d, fmt, out_fmt, share);
	char *opt_fmt, *path;
	if (img_parse_image_opts(d.in, &opt_fmt, &path) < 0)
		return 1;
	d.in = path;
	int rc = dd_run(&d, opt_fmt, out_fmt, share);
	free(opt_fmt);
	free(path);
	return rc;
}
