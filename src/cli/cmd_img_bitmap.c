/* kite img bitmap: qemu-img bitmap's actions (--add, --remove, --clear, --enable, --disable,
 * --merge SOURCE) on one persistent dirty bitmap, in the order given; the block layer does
 * them (blk_bitmap_change). The actions before a failing one stay done, as in qemu-img. */
#include "cli/cmd_img.h"
#include "util/err.h"

#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define MAX_ACTIONS 64

struct bitmap_args {
	struct blk_bitmap_change act[MAX_ACTIONS];
	int nact;
	bool add, merge, image_opts;
	int64_t granularity;
	const char *fmt, *src_file, *src_fmt;
};

static int push(struct bitmap_args *a, enum blk_bitmap_op op, const char *src_name)
{
	if (a->nact == MAX_ACTIONS)
		return kite_error("img bitmap: more than %d actions", MAX_ACTIONS);
	a->act[a->nact++] = (struct blk_bitmap_change){.op = op, .src_name = src_name};
	a->add |= op == BLK_BITMAP_ADD;
	a->merge |= op == BLK_BITMAP_MERGE;
	return 0;
}

/* qemu-img's checks of the options, in its order. */
static int check_args(const struct bitmap_args *a, int nargs)
{
	if (!a->nact)
		return kite_error("Need at least one of --add, --remove, --clear, --enable, "
				  "--disable, or --merge");
	if (a->granularity && !a->add)
		return kite_error("granularity only supported with --add");
	if (a->src_fmt && !a->src_file)
		return kite_error("-F only supported with -b");
	if (a->src_file && !a->merge)
		return kite_error("Merge bitmap source file only supported with --merge");
	if (nargs != 2)
		return kite_error("Expecting filename and bitmap name");
	if (a->image_opts && a->fmt)
		return kite_error("--image-opts and --format are mutually exclusive");
	return 0;
}

/* The action of the i-th of --add, --remove, --clear, --enable, --disable, --merge. */
static enum blk_bitmap_op op_of(int i)
{
	static const enum blk_bitmap_op ops[] = {BLK_BITMAP_ADD,     BLK_BITMAP_REMOVE,
						 BLK_BITMAP_CLEAR,   BLK_BITMAP_ENABLE,
						 BLK_BITMAP_DISABLE, BLK_BITMAP_MERGE};
	return ops[i];
}

/* 0: run the actions; 1: help printed; -1: an error printed. */
static int parse_args(int argc, char **argv, struct bitmap_args *a)
{
	enum {
		OPT_OBJECT = 256,
		OPT_IMAGE_OPTS,
		OPT_ADD,
		OPT_REMOVE,
		OPT_CLEAR,
		OPT_ENABLE,
		OPT_DISABLE,
		OPT_MERGE
	};
	static const struct option longopts[] = {{"help", no_argument, NULL, 'h'},
						 {"object", required_argument, NULL, OPT_OBJECT},
						 {"image-opts", no_argument, NULL, OPT_IMAGE_OPTS},
						 {"add", no_argument, NULL, OPT_ADD},
						 {"remove", no_argument, NULL, OPT_REMOVE},
						 {"clear", no_argument, NULL, OPT_CLEAR},
						 {"enable", no_argument, NULL, OPT_ENABLE},
						 {"disable", no_argument, NULL, OPT_DISABLE},
						 {"merge", required_argument, NULL, OPT_MERGE},
						 {"granularity", required_argument, NULL, 'g'},
						 {"source-file", required_argument, NULL, 'b'},
						 {"source-format", required_argument, NULL, 'F'},
						 {NULL, 0, NULL, 0}};
	int c, r = 0;
	optind = 1;
	opterr = 0;
	while (r == 0 && (c = getopt_long(argc, argv, ":b:f:F:g:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'b':
			a->src_file = optarg;
			break;
		case 'f':
			a->fmt = optarg;
			break;
		case 'F':
			a->src_fmt = optarg;
			break;
		case 'g':
			a->granularity = img_cvtnum("granularity", optarg, 0, INT64_MAX);
			r = a->granularity < 0 ? -1 : 0;
			break;
		case 'h':
			printf(
			    "usage: kite img bitmap (--merge SOURCE | --add | --remove | --clear | "
			    "--enable | --disable)... [-b source_file [-F source_fmt]] "
			    "[-g granularity] [--object objectdef] [--image-opts | -f fmt] "
			    "filename bitmap\n");
			return 1;
		case OPT_OBJECT: /* kite has no objects to define (no encrypted images) */
			break;
		case OPT_IMAGE_OPTS:
			a->image_opts = true;
			break;
		case OPT_ADD:
		case OPT_REMOVE:
		case OPT_CLEAR:
		case OPT_ENABLE:
		case OPT_DISABLE:
		case OPT_MERGE:
			r = push(a, op_of(c - OPT_ADD), c == OPT_MERGE ? optarg : NULL);
			break;
		case ':':
			return img_usage_error("bitmap", "option '%s' needs an argument",
					       argv[optind - 1]),
			       -1;
		default:
			return img_usage_error("bitmap", "unknown option '%s'", argv[optind - 1]),
			       -1;
		}
	}
	a->image_opts = a->image_opts || img_source_flags(); /* cmd_img takes it first */
	return r < 0 ? -1 : check_args(a, argc - optind);
}

static struct blk *open_target(const struct bitmap_args *a, const char *arg)
{
	if (!a->image_opts)
		return blk_open(arg, a->fmt, BLK_O_RDWR);
	char *fmt, *path;
	if (img_parse_image_opts(arg, &fmt, &path) < 0)
		return NULL;
	struct blk *b = blk_open(path, fmt, BLK_O_RDWR);
	free(fmt);
	free(path);
	return b;
}

int img_bitmap(int argc, char **argv)
{
	struct bitmap_args a = {0};
	int r = parse_args(argc, argv, &a);
	if (r != 0)
		return r < 0 ? 1 : 0;
	const char *name = argv[optind + 1];
	struct blk *b = open_target(&a, argv[optind]), *src = NULL;
	int rc = 1;
	if (!b)
		goto out;
	if (a.src_file &&
	    !(src = blk_open(a.src_file, a.src_fmt, BLK_O_RDONLY | BLK_O_NO_PROBE_WARN)))
		goto out;
	for (int i = 0; i < a.nact; i++) {
		a.act[i].granularity = (uint64_t)a.granularity;
		a.act[i].src = src;
		if (blk_bitmap_change(b, name, &a.act[i]) < 0)
			goto out;
	}
	rc = 0;
out:
	blk_close(src);
	blk_close(b);
	return rc;
}
