/* kite img map: qemu-img map's human table and JSON lines, with the same merging of
 * neighbouring runs. */
#include "cli/cmd_img.h"
#include "util/err.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

struct entry {
	uint64_t start, length, offset;
	int depth;
	bool present, zero, data, has_offset;
	const char *file;
};

static int chain_length(struct blk *b)
{
	int n = 0;
	for (; b; b = blk_backing(b))
		n++;
	return n;
}

static void print_entry(const struct entry *e, enum img_output out, bool first)
{
	if (out == IMG_OUT_HUMAN) {
		if (e->data && !e->zero)
			printf("%#-16" PRIx64 "%#-16" PRIx64 "%#-16" PRIx64 "%s\n", e->start,
			       e->length, e->has_offset ? e->offset : 0, e->file);
		return;
	}
	printf("%s{ \"start\": %" PRIu64 ", \"length\": %" PRIu64 ", \"depth\": %d, "
	       "\"present\": %s, \"zero\": %s, \"data\": %s",
	       first ? "[" : ",\n", e->start, e->length, e->depth, e->present ? "true" : "false",
	       e->zero ? "true" : "false", e->data ? "true" : "false");
	if (e->has_offset)
		printf(", \"offset\": %" PRIu64, e->offset);
	putchar('}');
}

static bool can_merge(const struct entry *a, const struct entry *b)
{
	return a->depth == b->depth && a->present == b->present && a->zero == b->zero &&
	       a->data == b->data && a->has_offset == b->has_offset && a->file == b->file &&
	       (!a->has_offset || a->offset + a->length == b->offset);
}

int img_map(int argc, char **argv)
{
	enum { OPT_OUTPUT = 256, OPT_START, OPT_MAX };
	unsigned share = 0;
	static const struct option longopts[] = {
	    {"output", required_argument, NULL, OPT_OUTPUT},
	    {"start-offset", required_argument, NULL, OPT_START},
	    {"max-length", required_argument, NULL, OPT_MAX},
	    {"force-share", no_argument, NULL, 'U'},
	    {NULL, 0, NULL, 0}};
	const char *fmt = NULL;
	enum img_output out = IMG_OUT_HUMAN;
	uint64_t start = 0, max_len = UINT64_MAX;
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":f:U", longopts, NULL)) != -1) {
		switch (c) {
		case 'f':
			fmt = optarg;
			break;
		case 'U':
			share = BLK_O_SHARE;
			break;
		case OPT_OUTPUT:
			if (img_parse_output(optarg, &out))
				return 1;
			break;
		case OPT_START:
			if (img_parse_size(optarg, &start))
				return 1;
			break;
		case OPT_MAX:
			if (img_parse_size(optarg, &max_len))
				return 1;
			break;
		case ':':
			return img_usage_error("map", "option '%s' needs an argument",
					       argv[optind - 1]);
		default:
			return img_usage_error("map", "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (argc - optind != 1)
		return img_usage_error("map", "expecting one filename");
	struct blk *b = blk_open(argv[optind], fmt,
				 BLK_O_RDONLY | share | img_source_flags() | BLK_O_NO_PROBE_WARN);
	if (!b)
		return 1;
	int last_depth = chain_length(b) - 1;
	uint64_t end = blk_size(b);
	if (max_len < end && start + max_len < end)
		end = start + max_len;
	if (out == IMG_OUT_HUMAN)
		printf("%-16s%-16s%-16s%s\n", "Offset", "Length", "Mapped to", "File");
	struct entry cur = {0};
	bool have = false, first = true;
	int rc = 0;
	for (uint64_t off = start; off < end;) {
		struct blk_map m;
		if (blk_map_status(b, off, end - off, &m) < 0) {
			rc = 1;
			break;
		}
		bool present = m.flags & BLK_STATUS_ALLOCATED;
		struct entry e = {
		    .start = off,
		    .length = m.pnum,
		    .offset = m.host_off,
		    /* an unallocated run is reported at the bottom of the chain, as QEMU does */
		    .depth = present ? m.depth : last_depth,
		    .present = present,
		    .zero = (m.flags & BLK_STATUS_ZERO) || !present,
		    .data = m.flags & BLK_STATUS_DATA,
		    .has_offset = m.flags & BLK_STATUS_OFFSET_VALID,
		    .file = present && m.file ? m.file : "",
		};
		if (out == IMG_OUT_HUMAN && e.data && !e.has_offset) {
			kite_error("File contains external, encrypted or compressed clusters.");
			rc = 1;
			break;
		}
		if (have && can_merge(&cur, &e)) {
			cur.length += e.length;
		} else {
			if (have) {
				print_entry(&cur, out, first);
				first = false;
			}
			cur = e;
			have = true;
		}
		off += m.pnum;
	}
	if (rc == 0 && have)
		print_entry(&cur, out, first);
	if (rc == 0 && !have && out == IMG_OUT_JSON) {
		/* an empty range: QEMU prints one entry of length 0 */
		struct entry e = {.start = start, .depth = 0};
		print_entry(&e, out, true);
	}
	if (rc == 0 && out == IMG_OUT_JSON)
		printf("]\n");
	blk_close(b);
	return rc;
}
