/* kite img create: qemu-img create's options and "Formatting ..." line. */
#include "cli/cmd_img.h"
#include "util/err.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Opens the backing file of the image to be created at `path` (relative names resolve
 * against its directory, as QEMU does) to learn its size and check it can be opened. */
static int backing_size(const char *path, const char *backing, const char *fmt, uint64_t *size)
{
	const char *slash = strrchr(path, '/');
	char *full;
	if (backing[0] == '/' || !slash) {
		full = strdup(backing);
	} else if (asprintf(&full, "%.*s/%s", (int)(slash - path), path, backing) < 0) {
		full = NULL;
	}
	if (!full)
		return kite_error("out of memory");
	struct blk *b = blk_open(full, fmt, BLK_O_RDONLY | BLK_O_NO_PROBE_WARN);
	if (!b) {
		kite_error("%s: could not open backing image '%s'", path, full);
		free(full);
		return -1;
	}
	*size = blk_size(b);
	blk_close(b);
	free(full);
	return 0;
}

int img_create(int argc, char **argv)
{
	static const struct option longopts[] = {{"help", no_argument, NULL, 'h'},
						 {NULL, 0, NULL, 0}};
	const char *fmt = "raw", *backing = NULL, *backing_fmt = NULL;
	bool quiet = false, unsafe = false;
	struct img_opts o = {0};
	int rc = 1, c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":f:b:F:o:quh", longopts, NULL)) != -1) {
		switch (c) {
		case 'f':
			fmt = optarg;
			break;
		case 'b':
			backing = optarg;
			break;
		case 'F':
			backing_fmt = optarg;
			break;
		case 'o':
			if (img_opts_parse(&o, optarg))
				goto out;
			break;
		case 'q':
			quiet = true;
			break;
		case 'u':
			unsafe = true;
			break;
		case ':':
			img_usage_error("create", "option '%s' needs an argument",
					argv[optind - 1]);
			goto out;
		default:
			img_usage_error("create", "unknown option '%s'", argv[optind - 1]);
			goto out;
		}
	}
	if (img_opts_help(&o, fmt)) {
		rc = 0;
		goto out;
	}
	if (optind >= argc) {
		img_usage_error("create", "expecting a filename");
		goto out;
	}
	if (argc - optind > 2) {
		img_usage_error("create", "unexpected argument '%s'", argv[optind + 2]);
		goto out;
	}
	const char *path = argv[optind];
	if (!blk_format_can(fmt, BLK_CAP_CREATE)) {
		char list[256];
		kite_error("kite img create cannot write format '%s' (use %s)", fmt,
			   blk_formats_with(BLK_CAP_CREATE, list, sizeof(list)));
		goto out;
	}
	struct blk_create_opts copts = {0};
	const char *bad = img_invalid_key(&o, fmt);
	if (bad) {
		kite_error("%s: Invalid parameter '%s'", path, bad);
		goto out;
	}
	if (img_create_opts(&o, fmt, &copts))
		goto out;
	if (backing)
		copts.backing_file = backing;
	if (backing_fmt)
		copts.backing_fmt = backing_fmt;
	if (argc - optind == 2) {
		if (img_parse_size(argv[optind + 1], &copts.size))
			goto out;
		copts.size_set = true;
	}
	if (copts.backing_file && !blk_format_can(fmt, BLK_CAP_BACKING)) {
		kite_error("format '%s' does not support backing files", fmt);
		goto out;
	}
	if (copts.backing_file && !copts.backing_fmt) {
		kite_error("%s: backing file specified without backing format (use -F)", path);
		goto out;
	}
	if (copts.backing_file && (!unsafe || !copts.size_set)) {
		uint64_t bsize = 0;
		if (backing_size(path, copts.backing_file, copts.backing_fmt, &bsize))
			goto out;
		if (!copts.size_set) {
			copts.size = bsize;
			copts.size_set = true;
		}
	}
	if (!copts.size_set) {
		img_usage_error("create", "image creation needs a size parameter");
		goto out;
	}
	if (!quiet)
		img_print_formatting(path, fmt, &copts, img_opts_get(&o, "preallocation") != NULL);
	copts.size = blk_format_round_size(fmt, copts.size); /* qcow2: whole sectors */
	if (blk_create(path, fmt, &copts) < 0)
		goto out;
	rc = 0;
out:
	img_opts_free(&o);
	return rc;
}
