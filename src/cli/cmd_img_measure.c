/* kite img measure: the file size an image needs when converted to (or created as) raw or
 * qcow2: "required size" for the data present, "fully allocated size" for all of it.
 * The qcow2 figures follow QEMU's formula (header, L1, L2 and refcount clusters). */
#include "block/qcow2.h"
#include "cli/cmd_img.h"
#include "util/err.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t div_up(uint64_t a, uint64_t b)
{
	return (a + b - 1) / b;
}

/* Refcount table and block clusters needed to cover `clusters` plus themselves. */
static uint64_t refcount_clusters(uint64_t clusters, uint64_t cs, int refcount_bits)
{
	uint64_t per_block = cs * 8 / (uint64_t)refcount_bits, per_table = cs / 8;
	uint64_t table = 0, blocks = 0, n = 0, last;
	do {
		last = n;
		blocks = div_up(clusters + table + blocks, per_block);
		table = div_up(blocks, per_table);
		n = clusters + blocks + table;
	} while (n != last);
	return blocks + table;
}

/* File size of a fully allocated qcow2 image of `size` bytes. */
static uint64_t qcow2_full_size(uint64_t size, uint64_t cs, int refcount_bits, bool ext_l2)
{
	uint64_t l2_entry = ext_l2 ? 16 : 8;
	uint64_t aligned = div_up(size, cs) * cs;
	uint64_t meta = cs; /* header */
	uint64_t l2_tables = div_up(aligned / cs, cs / l2_entry);
	meta += l2_tables * cs;
	meta += div_up(l2_tables * 8, cs) * cs; /* L1 */
	meta += refcount_clusters((meta + aligned) / cs, cs, refcount_bits) * cs;
	return meta + aligned;
}

/* Bytes of the source that hold data, rounded out to whole clusters of `cs` (1 for raw). */
static int data_bytes(struct blk *b, uint64_t cs, uint64_t *out)
{
	uint64_t size = blk_size(b), total = 0;
	for (uint64_t off = 0; off < size;) {
		struct blk_map m;
		if (blk_map_status(b, off, size - off, &m) < 0)
			return -1;
		uint64_t n = m.pnum;
		if (!(m.flags & BLK_STATUS_ZERO) && (m.flags & BLK_STATUS_ALLOCATED) &&
		    (m.flags & BLK_STATUS_DATA)) {
			/* count up to the end of the cluster; continue after it */
			uint64_t end = div_up(off + n, cs) * cs;
			if (end > size)
				end = size;
			total += (off % cs) + (end - off);
			n = end - off;
		}
		off += n;
	}
	*out = total;
	return 0;
}

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
	if (strcmp(out_fmt, "raw") && strcmp(out_fmt, "qcow2")) {
		kite_error("measure: unsupported output format '%s' (use raw or qcow2)", out_fmt);
		goto out;
	}
	struct blk_create_opts copts = {0};
	if (img_create_opts(&o, out_fmt, &copts))
		goto out;
	uint64_t cs = copts.cluster_size ? copts.cluster_size : 65536;
	int rbits = copts.refcount_bits ? copts.refcount_bits : 16;
	struct blk *src = NULL;
	if (!size_set) {
		src = blk_open(argv[optind], fmt,
			       BLK_O_RDONLY | share | img_source_flags() | BLK_O_NO_PROBE_WARN);
		if (!src)
			goto out;
		size = blk_size(src);
	}
	size = div_up(size, 512) * 512;
	uint64_t required, full;
	if (!strcmp(out_fmt, "raw")) {
		required = full = size; /* a raw file's size is its virtual size */
	} else {
		uint64_t data = 0;
		if (src && data_bytes(src, cs, &data) < 0) {
			blk_close(src);
			goto out;
		}
		full = qcow2_full_size(size, cs, rbits, copts.extended_l2);
		required = full - div_up(size, cs) * cs + data;
	}
	/* qemu-img reports the (persistent bitmap) space too when both sides are qcow2 and both
	 * can hold bitmaps (compat 1.1) */
	bool bitmaps = false;
	uint64_t bitmaps_size = 0;
	if (src && !strcmp(blk_format_name(src), "qcow2") && !strcmp(out_fmt, "qcow2") &&
	    copts.compat != 2) {
		struct blk_info *in = calloc(1, sizeof(*in));
		if (!in || blk_get_info(src, in) < 0) {
			free(in);
			blk_close(src);
			goto out;
		}
		bitmaps = strcmp(in->compat, "0.10") != 0;
		free(in);
		if (bitmaps && qcow2_bitmaps_size(src, cs, &bitmaps_size) < 0) {
			blk_close(src);
			goto out;
		}
	}
	blk_close(src);
	if (out == IMG_OUT_JSON) {
		printf("{\n");
		if (bitmaps)
			printf("    \"bitmaps\": %" PRIu64 ",\n", bitmaps_size);
		printf("    \"required\": %" PRIu64 ",\n    \"fully-allocated\": %" PRIu64 "\n}\n",
		       required, full);
	} else {
		printf("required size: %" PRIu64 "\nfully allocated size: %" PRIu64 "\n", required,
		       full);
		if (bitmaps)
			printf("bitmaps size: %" PRIu64 "\n", bitmaps_size);
	}
	rc = 0;
out:
	img_opts_free(&o);
	return rc;
}
