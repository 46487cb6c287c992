/* kite img commit: writes everything the image allocates into its backing file, then
 * empties the image (unless -d) so it shows the backing file's now identical content. */
#include "cli/cmd_img.h"
#include "util/err.h"
#include "util/progress.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COMMIT_CHUNK (2u << 20)

static int copy_allocated(struct blk *top, struct blk *base, struct progress *prog)
{
	uint8_t *buf = malloc(COMMIT_CHUNK);
	if (!buf)
		return kite_error("out of memory");
	uint64_t size = blk_size(top);
	int rc = -1;
	for (uint64_t off = 0; off < size;) {
		uint64_t want = size - off < COMMIT_CHUNK ? size - off : COMMIT_CHUNK, pnum;
		unsigned flags;
		if (blk_block_status(top, off, want, &pnum, &flags, NULL) < 0)
			goto out;
		if (flags & BLK_STATUS_ALLOCATED) {
			if (flags & BLK_STATUS_ZERO) {
				if (blk_write_zeroes(base, off, pnum, 0) < 0)
					goto out;
			} else if (blk_pread(top, buf, (size_t)pnum, off) < 0 ||
				   blk_pwrite(base, buf, (size_t)pnum, off) < 0) {
				goto out;
			}
		}
		off += pnum;
		progress_update(prog, off, size);
	}
	rc = 0;
out:
	free(buf);
	return rc;
}

/* commit -b BASE: everything the layers above BASE allocate goes into BASE (read through
 * the chain); the layers above are kept, as QEMU does (-b implies -d). */
static int commit_to_base(const char *path, const char *fmt, const char *base_name, bool quiet,
			  bool progress)
{
	/* read-write, as qemu-img opens it: nobody else may use the image meanwhile */
	struct blk *top =
	    blk_open(path, fmt, BLK_O_RDWR | img_source_flags() | BLK_O_NO_PROBE_WARN);
	if (!top)
		return 1;
	int found = blk_find_backing(top, base_name);
	struct blk *layer = top;
	for (int i = 0; i < found; i++)
		layer = blk_backing(layer);
	struct blk *base = NULL;
	uint8_t *buf = NULL;
	int rc = 1;
	if (found < 0)
		goto out;
	/* with its own backing chain: partial cluster writes copy from it */
	base =
	    blk_open(blk_filename(layer), blk_format_name(layer), BLK_O_RDWR | BLK_O_NO_PROBE_WARN);
	buf = malloc(COMMIT_CHUNK);
	if (!base || !buf) {
		if (!buf)
			kite_error("out of memory");
		goto out;
	}
	uint64_t size = blk_size(top);
	if (size > blk_size(base) && blk_resize(base, size, false) < 0)
		goto out;
	struct progress prog;
	progress_init(&prog, progress && !quiet);
	for (uint64_t off = 0; off < size;) {
		uint64_t want_len = size - off < COMMIT_CHUNK ? size - off : COMMIT_CHUNK;
		struct blk_map m;
		if (blk_map_status(top, off, want_len, &m) < 0)
			goto out;
		if ((m.flags & BLK_STATUS_ALLOCATED) && m.depth < found) {
			if (m.flags & BLK_STATUS_ZERO) {
				if (blk_write_zeroes(base, off, m.pnum, 0) < 0)
					goto out;
			} else if (blk_pread(top, buf, (size_t)m.pnum, off) < 0 ||
				   blk_pwrite(base, buf, (size_t)m.pnum, off) < 0) {
				goto out;
			}
		}
		off += m.pnum;
		progress_update(&prog, off, size);
	}
	if (blk_flush(base) < 0)
		goto out;
	progress_finish(&prog);
	if (!quiet)
		printf("Image committed.\n");
	rc = 0;
out:
	free(buf);
	blk_close(base);
	blk_close(top);
	return rc;
}

int img_commit(int argc, char **argv)
{
	static const struct option longopts[] = {{NULL, 0, NULL, 0}};
	const char *fmt = NULL, *base_name = NULL;
	bool keep = false, quiet = false, progress = false;
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":f:b:dpqt:r:", longopts, NULL)) != -1) {
		switch (c) {
		case 'f':
			fmt = optarg;
			break;
		case 'b':
			base_name = optarg;
			break;
		case 'd':
			keep = true;
			break;
		case 'p':
			progress = true;
			break;
		case 'q':
			quiet = true;
			break;
		case 't':
		case 'r':
			break;
		case ':':
			return img_usage_error("commit", "option '%s' needs an argument",
					       argv[optind - 1]);
		default:
			return img_usage_error("commit", "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (argc - optind != 1)
		return img_usage_error("commit", "expecting one filename");
	const char *path = argv[optind];
	if (base_name)
		return commit_to_base(path, fmt, base_name, quiet, progress);
	struct blk *top = blk_open(
	    path, fmt, BLK_O_RDWR | img_source_flags() | BLK_O_NO_BACKING | BLK_O_NO_PROBE_WARN);
	if (!top)
		return 1;
	struct blk *base = NULL;
	struct blk_info *in = calloc(1, sizeof(*in));
	int rc = 1;
	if (!in) {
		kite_error("out of memory");
		goto out;
	}
	if (blk_get_info(top, in) < 0)
		goto out;
	if (!in->backing_file[0]) {
		kite_error("%s: the image has no backing file to commit into", path);
		goto out;
	}
	base = blk_open(in->backing_full, in->backing_format[0] ? in->backing_format : NULL,
			BLK_O_RDWR | BLK_O_NO_PROBE_WARN);
	if (!base)
		goto out;
	if (blk_size(top) > blk_size(base) && blk_resize(base, blk_size(top), false) < 0)
		goto out;
	struct progress prog;
	progress_init(&prog, progress && !quiet);
	if (copy_allocated(top, base, &prog) < 0 || blk_flush(base) < 0)
		goto out;
	progress_finish(&prog);
	blk_close(base);
	base = NULL;
	blk_close(top);
	top = NULL;
	if (!keep && blk_format_can(in->format, BLK_CAP_MAKE_EMPTY)) {
		if (in->nb_snapshots)
			kite_warn("%s has internal snapshots: its clusters are kept (as with -d)",
				  path);
		else if (blk_make_empty(path, in) < 0)
			goto out;
	}
	if (!quiet)
		printf("Image committed.\n");
	rc = 0;
out:
	blk_close(base);
	blk_close(top);
	free(in);
	return rc;
}
