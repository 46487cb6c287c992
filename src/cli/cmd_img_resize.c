/* kite img resize: [+|-]SIZE, --shrink required to make an image smaller, --preallocation for
 * the grown part. */
#include "cli/cmd_img.h"
#include "util/err.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

int img_resize(int argc, char **argv)
{
	enum { OPT_SHRINK = 256, OPT_PREALLOC, OPT_OBJECT };
	static const struct option longopts[] = {
	    {"shrink", no_argument, NULL, OPT_SHRINK},
	    {"preallocation", required_argument, NULL, OPT_PREALLOC},
	    {NULL, 0, NULL, 0}};
	if (argc < 3)
		return img_usage_error("resize", "expecting a filename and a size");
	/* The size goes last and may start with '-': take it before getopt sees it. */
	const char *size_arg = argv[argc - 1];
	argc--;
	const char *fmt = NULL;
	bool shrink = false, quiet = false;
	enum blk_prealloc prealloc = BLK_PREALLOC_OFF;
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":f:q", longopts, NULL)) != -1) {
		switch (c) {
		case 'f':
			fmt = optarg;
			break;
		case 'q':
			quiet = true;
			break;
		case OPT_SHRINK:
			shrink = true;
			break;
		case OPT_PREALLOC:
			if (blk_parse_prealloc(optarg, &prealloc) < 0)
				return kite_error("Invalid preallocation mode '%s'", optarg), 1;
			break;
		case ':':
			return img_usage_error("resize", "option '%s' needs an argument",
					       argv[optind - 1]);
		default:
			return img_usage_error("resize", "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (argc - optind != 1)
		return img_usage_error("resize", "expecting a filename and a size");
	int sign = 0;
	if (size_arg[0] == '+' || size_arg[0] == '-')
		sign = size_arg[0] == '+' ? 1 : -1;
	uint64_t n;
	if (img_parse_size(size_arg + (sign != 0), &n))
		return 1;
	struct blk *b = blk_open(argv[optind], fmt, BLK_O_RDWR | img_source_flags());
	if (!b)
		return 1;
	uint64_t cur = blk_size(b), want = n;
	if (sign > 0) {
		want = cur + n;
		if (want < cur) {
			blk_close(b);
			return kite_error("resize: the new size overflows"), 1;
		}
	} else if (sign < 0) {
		if (n >= cur) {
			blk_close(b);
			return kite_error("resize: the new size must be positive"), 1;
		}
		want = cur - n;
	}
	if (want < cur && !shrink) {
		blk_close(b);
		return kite_error("Use the --shrink option to perform a shrink operation."), 1;
	}
	if (want < cur && prealloc != BLK_PREALLOC_OFF) {
		blk_close(b);
		return kite_error("Preallocation can only be used for growing images"), 1;
	}
	uint32_t align = blk_size_align(b);
	if (want % align) {
		blk_close(b);
		return kite_error("The new size must be a multiple of %u", align), 1;
	}
	if (want > cur && blk_preallocate(b, cur, cur, prealloc) < 0) { /* before any change */
		blk_close(b);
		return 1;
	}
	int r = want == cur ? 0 : blk_resize(b, want, shrink);
	if (r == 0 && want > cur)
		r = blk_preallocate(b, cur, want, prealloc);
	if (r == 0)
		r = blk_flush(b);
	blk_close(b);
	if (r < 0)
		return 1;
	if (!quiet)
		printf("Image resized.\n");
	return 0;
}
