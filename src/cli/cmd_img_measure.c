/* kite img measure: the file size an image needs when converted to (or created as) a
 * format: "required size" for the data present, "fully allocated size" for all of it
 * (the figures are the driver's: blk_measure). */
#include "cli/cmd_img.h"
#include "util/err.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int img_measure(int argc, char **argv)
{
	enum { OPT_OUTPUT = 256, OPT_SIZE };
	static const struct option longopts[] = {{"output", required_argument, NULL, OPT_OUTPUT},
						 {"size", required_argument, NULL, OPT_SIZE},
						 {"force-share", no_argument, NULL, 'U'},
						 {NULL, 0, NULL, 0}};
	const char *fmt = NULL, *out_fmt = "raw";
	enum img_output out = IMG_OUT_HUMAN;
	uint64_t size = 0;
	bool size_set = false;
	unsigned share = 0;
	struct img_opts o = {0};
	int rc = 1, c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":f:O:o:U", longopts, NULL)) != -1) {
		switch (c) {
		case 'f':
			fmt = optarg;
			break;
		case 'O':
			out_fmt = optarg;
			break;
		case 'o':
			if (img_opts_parse(&o, optarg))
				goto out;
			break;
		case 'U':
			share = BLK_O_SHARE;
			break;
		case OPT_OUTPUT:
			if (img_parse_output(optarg, &out))
				goto out;
			break;
		case OPT_SIZE:
			if (img_parse_size(optarg, &size))
				goto out;
			size_set = true;
			break;
		case ':':
			img_usage_error("measure", "option '%s' needs an argument",
					argv[optind - 1]);
			goto out;
		default:
			img_usage_error("measure", "unknown option '%s'", argv[optind - 1]);
			goto out;
		}
	}
	if (size_set == (argc - optind == 1) || argc - optind > 1) {
		img_usage_error("measure", "expecting either --size N or one filename");
		goto out;
	}
	if (!blk_format_can(out_fmt, BLK_CAP_MEASURE)) {
		char list[256];
		kite_error("measure: unsupported output format '%s' (use %s)", out_fmt,
			   blk_formats_with(BLK_CAP_MEASURE, list, sizeof(list)));
		goto out;
	}
	struct blk_create_opts copts = {0};
	const char *bad = img_invalid_key(&o, out_fmt);
	if (bad) {
		kite_error("Invalid parameter '%s'", bad);
		kite_error("Invalid options for file format '%s'", out_fmt);
		goto out;
	}
	if (img_create_opts(&o, out_fmt, &copts))
		goto out;
	struct blk *src = NULL;
	if (!size_set) {
		src = blk_open(argv[optind], fmt,
			       BLK_O_RDONLY | share | img_source_flags() | BLK_O_NO_PROBE_WARN);
		if (!src)
			goto out;
		size = blk_size(src);
	}
	struct blk_measure m;
	int r = blk_measure(out_fmt, &copts, src, size, &m);
	blk_close(src);
	if (r < 0)
		goto out;
	if (out == IMG_OUT_JSON) {
		printf("{\n");
		if (m.has_bitmaps)
			printf("    \"bitmaps\": %" PRIu64 ",\n", m.bitmaps);
		printf("    \"required\": %" PRIu64 ",\n    \"fully-allocated\": %" PRIu64 "\n}\n",
		       m.required, m.fully_allocated);
	} else {
		printf("required size: %" PRIu64 "\nfully allocated size: %" PRIu64 "\n",
		       m.required, m.fully_allocated);
		if (m.has_bitmaps)
			printf("bitmaps size: %" PRIu64 "\n", m.bitmaps);
	}
	rc = 0;
out:
	img_opts_free(&o);
	return rc;
}
