/* kite img check: qemu-img check's messages, JSON fields and exit codes: 0 clean,
 * 1 the check could not complete, 2 corruptions, 3 only leaks, 63 format without checks. */
#include "cli/cmd_img.h"
#include "util/err.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void print_human(const struct blk_check_result *r, bool quiet)
{
	if (quiet)
		return;
	if (r->corruptions == 0 && r->leaks == 0 && r->check_errors == 0) {
		printf("No errors were found on the image.\n");
	} else {
		if (r->corruptions)
			printf("\n%" PRIu64 " errors were found on the image.\n"
			       "Data may be corrupted, or further writes to the image may corrupt "
			       "it.\n",
			       r->corruptions);
		if (r->leaks)
			printf("\n%" PRIu64 " leaked clusters were found on the image.\n"
			       "This means waste of disk space, but no harm to data.\n",
			       r->leaks);
		if (r->check_errors)
			printf("\n%" PRIu64 " internal errors have occurred during the check.\n",
			       r->check_errors);
	}
	if (r->total_clusters && r->allocated_clusters)
		printf("%" PRIu64 "/%" PRIu64 " = %0.2f%% allocated, %0.2f%% fragmented, %0.2f%% "
		       "compressed clusters\n",
		       r->allocated_clusters, r->total_clusters,
		       (double)r->allocated_clusters * 100.0 / (double)r->total_clusters,
		       (double)r->fragmented_clusters * 100.0 / (double)r->allocated_clusters,
		       (double)r->compressed_clusters * 100.0 / (double)r->allocated_clusters);
	if (r->image_end_offset)
		printf("Image end offset: %" PRIu64 "\n", r->image_end_offset);
}

/* QEMU prints its ImageCheck object from a hash table: the keys come in the order of
 * their buckets, which this list follows (optional fields only when nonzero). */
static void print_json(const struct blk_check_result *r, const char *file, const char *fmt,
		       bool quiet)
{
	if (quiet)
		return;
	json_t *o = json_object();
#define OPT_FIELD(name, v)                                                                         \
	if (v)                                                                                     \
		json_object_set_new(o, name, json_integer((json_int_t)(v)));
	OPT_FIELD("image-end-offset", r->image_end_offset);
	OPT_FIELD("compressed-clusters", r->compressed_clusters);
	OPT_FIELD("total-clusters", r->total_clusters);
	OPT_FIELD("corruptions", r->corruptions);
	OPT_FIELD("corruptions-fixed", r->corruptions_fixed);
	json_object_set_new(o, "check-errors", json_integer((json_int_t)r->check_errors));
	OPT_FIELD("leaks", r->leaks);
	OPT_FIELD("leaks-fixed", r->leaks_fixed);
	OPT_FIELD("allocated-clusters", r->allocated_clusters);
	json_object_set_new(o, "filename", json_string(file));
	json_object_set_new(o, "format", json_string(fmt));
	OPT_FIELD("fragmented-clusters", r->fragmented_clusters);
#undef OPT_FIELD
	char *s = json_dumps(o, JSON_INDENT(4) | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
	if (s)
		printf("%s\n", s);
	free(s);
	json_decref(o);
}

static void print_result(const struct blk_check_result *r, enum img_output out, const char *file,
			 const char *fmt, bool quiet)
{
	if (out == IMG_OUT_JSON)
		print_json(r, file, fmt, quiet);
	else
		print_human(r, quiet);
}

/* Checks, and after a repair checks again (the report is the repaired image's, with the
 * counts of what was repaired). Returns 0, or -1 when a check could not run (reported). */
static int check_image(struct blk *b, unsigned fix, enum img_output out, bool quiet,
		       struct blk_check_result *r)
{
	if (blk_check(b, fix, r) < 0)
		return -1;
	if (!r->leaks_fixed && !r->corruptions_fixed)
		return 0;
	uint64_t lf = r->leaks_fixed, cf = r->corruptions_fixed;
	if (out == IMG_OUT_HUMAN && !quiet) {
		printf("The following inconsistencies were found and repaired:\n\n"
		       "    %" PRIu64 " leaked clusters\n    %" PRIu64 " corruptions\n\n"
		       "Double checking the fixed image now...\n",
		       lf, cf);
		fflush(stdout);
	}
	int err = blk_check(b, 0, r);
	r->leaks_fixed = lf;
	r->corruptions_fixed = cf;
	return err;
}

int img_check(int argc, char **argv)
{
	enum { OPT_OUTPUT = 256 };
	static const struct option longopts[] = {{"output", required_argument, NULL, OPT_OUTPUT},
						 {"repair", required_argument, NULL, 'r'},
						 {"force-share", no_argument, NULL, 'U'},
						 {NULL, 0, NULL, 0}};
	const char *fmt = NULL;
	enum img_output out = IMG_OUT_HUMAN;
	unsigned fix = 0;
	bool quiet = false;
	unsigned share = 0;
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":f:r:qU", longopts, NULL)) != -1) {
		switch (c) {
		case 'f':
			fmt = optarg;
			break;
		case 'r':
			if (!strcmp(optarg, "leaks"))
				fix = BLK_CHECK_FIX_LEAKS;
			else if (!strcmp(optarg, "all"))
				fix = BLK_CHECK_FIX_LEAKS | BLK_CHECK_FIX_ERRORS;
			else
				return img_usage_error("check", "-r must be 'leaks' or 'all'");
			break;
		case 'q':
			quiet = true;
			break;
		case 'U':
			share = BLK_O_SHARE;
			break;
		case OPT_OUTPUT:
			if (img_parse_output(optarg, &out))
				return 1;
			break;
		case ':':
			return img_usage_error("check", "option '%s' needs an argument",
					       argv[optind - 1]);
		default:
			return img_usage_error("check", "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (argc - optind != 1)
		return img_usage_error("check", "expecting one filename");
	const char *path = argv[optind];
	/* as qemu-img, the backing chain is opened too (a loop or a missing file fails) */
	struct blk *b = blk_open(path, fmt,
				 (fix ? BLK_O_RDWR : BLK_O_RDONLY) | share | img_source_flags() |
				     BLK_O_CHECK | BLK_O_NO_PROBE_WARN);
	if (!b)
		return 1;
	struct blk_check_result r = {0};
	const char *format = blk_format_name(b);
	if (!blk_can(b, BLK_CAP_CHECK)) {
		kite_error("This image format does not support checks");
		blk_close(b);
		return 63;
	}
	int err = check_image(b, fix, out, quiet, &r);
	if (!err && r.failed) {
		blk_close(b);
		kite_error("%s: check failed: %s", path, r.failed);
		return 1;
	}
	if (!err)
		print_result(&r, out, path, format, quiet);
	blk_close(b);
	if (err < 0)
		return 1;
	if (r.check_errors) {
		kite_error("Check failed");
		return 1;
	}
	if (r.corruptions)
		return 2;
	if (r.leaks)
		return 3;
	return 0;
}
