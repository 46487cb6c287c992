/* `kite img`: qemu-img compatible verbs. This file only dispatches; each verb lives in
 * cmd_img_<verb>.c. */
#include "block/secret.h"
#include "cli/cmd_img.h"
#include "cli/commands.h"
#include "util/err.h"

#include <stdio.h>
#include <string.h>

static const struct {
	const char *name;
	int (*main)(int argc, char **argv);
	const char *syntax;
} verbs[] = {
    {"amend", img_amend,
     "amend [--object objectdef] [--image-opts] [-p] [-q] [-f fmt] [-t cache] [--force] -o options "
     "filename"},
    {"create", img_create,
     "create [-q] [-f fmt] [-b backing_file [-F backing_fmt]] [-u] [-o options] filename "
     "[size]"},
    {"info", img_info, "info [-f fmt] [--output=human|json] [--backing-chain] [-U] filename"},
    {"convert", img_convert,
     "convert [-c] [-p] [-q] [-n] [-C] [-U] [-f fmt] [-t cache] [-T src_cache] [-O output_fmt] "
     "[-B backing_file [-F backing_fmt]] [-o options] [-l snapshot_param] [-S sparse_size] "
     "[-m num_coroutines] [-W] "
     "filename "
     "[filename2 [...]] output_filename"},
    {"resize", img_resize,
     "resize [-q] [-f fmt] [--preallocation=prealloc] [--shrink] filename [+ | -]size"},
    {"check", img_check,
     "check [-q] [-f fmt] [--output=human|json] [-r [leaks | all]] [-U] filename"},
    {"snapshot", img_snapshot,
     "snapshot [-q] [-U] [-l | -a snapshot | -c snapshot | -d snapshot] "
     "filename"},
    {"compare", img_compare, "compare [-f fmt] [-F fmt] [-p] [-q] [-s] [-U] filename1 filename2"},
    {"map", img_map,
     "map [-f fmt] [--output=human|json] [--start-offset=OFFSET] "
     "[--max-length=LEN] [-U] filename"},
    {"rebase", img_rebase,
     "rebase [-q] [-U] [-f fmt] [-p] [-u] -b backing_file [-F backing_fmt] "
     "filename"},
    {"commit", img_commit, "commit [-q] [-f fmt] [-p] [-d] [-b base] filename"},
    {"measure", img_measure,
     "measure [--output=human|json] [-O output_fmt] [-o options] "
     "[--size N | [-f fmt] filename]"},
    {"dd", img_dd,
     "dd [--image-opts] [-U] [-f fmt] [-O output_fmt] [bs=block_size] [count=blocks] "
     "[skip=blocks] if=input of=output"},
    {"bitmap", img_bitmap,
     "bitmap (--merge SOURCE | --add | --remove | --clear | --enable | --disable)... "
     "[-b source_file [-F source_fmt]] [-g granularity] [--object objectdef] "
     "[--image-opts | -f fmt] filename bitmap"},
};

#define NVERBS (sizeof(verbs) / sizeof(verbs[0]))

static void usage(FILE *out)
{
	fprintf(out, "usage: kite img <verb> [options]   (the verbs and options of qemu-img)\n\n"
		     "verbs:\n");
	for (size_t i = 0; i < NVERBS; i++)
		fprintf(out, "  %s\n", verbs[i].syntax);
	fprintf(out, "\nformats: raw, qcow2 (read and write), vmdk, vdi (read only)\n");
}

static unsigned image_opts;

unsigned img_source_flags(void)
{
	return image_opts;
}

/* --image-opts and --object apply to every verb the same way: taken out here (the first
 * handed to the verb through img_source_flags(), the second defining the secrets encrypted
 * images name), in qemu-img's order: each object as it comes. -1 for a bad object. */
static int take_common_opts(int argc, char **argv)
{
	int out = 0;
	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--image-opts") && i > 0) {
			image_opts = BLK_O_IMAGE_OPTS;
			continue;
		}
		if (i > 0 && !strncmp(argv[i], "--object=", 9)) {
			if (blk_object_add(argv[i] + 9) < 0)
				return -1;
			continue;
		}
		if (i > 0 && !strcmp(argv[i], "--object") && i + 1 < argc) {
			if (blk_object_add(argv[++i]) < 0)
				return -1;
			continue;
		}
		argv[out++] = argv[i];
		if (!strcmp(argv[i], "--")) {
			while (++i < argc)
				argv[out++] = argv[i];
		}
	}
	argv[out] = NULL;
	return out;
}

int cmd_img(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 1;
	}
	const char *verb = argv[1];
	if (!strcmp(verb, "--help") || !strcmp(verb, "-h") || !strcmp(verb, "help")) {
		usage(stdout);
		return 0;
	}
	for (size_t i = 0; i < NVERBS; i++) {
		if (strcmp(verb, verbs[i].name))
			continue;
		if (argc > 2 && (!strcmp(argv[2], "--help") || !strcmp(argv[2], "-h"))) {
			printf("usage: kite img %s\n", verbs[i].syntax);
			return 0;
		}
		int n = take_common_opts(argc - 1, argv + 1);
		int rc = n < 0 ? 1 : verbs[i].main(n, argv + 1);
		blk_secrets_clear();
		return rc;
	}
	kite_error("img: unknown verb '%s' (try 'kite img --help')", verb);
	return 1;
}
