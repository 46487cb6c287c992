/* kite img rebase: changes an image's backing file. Safe mode (the default) first copies
 * into the image every range it does not allocate itself whose content differs between the
 * old and the new backing chain, so the guest-visible content stays the same; -u only
 * rewrites the backing file name. */
#include "cli/cmd_img.h"
#include "util/err.h"
#include "util/progress.h"

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RB_CHUNK (64u << 10)

/* Reads [off, off+len) of `b` (NULL: no image), zeros beyond its end. */
static int read_or_zero(struct blk *b, uint8_t *buf, uint64_t len, uint64_t off)
{
	uint64_t size = b ? blk_size(b) : 0, have = 0;
	if (off < size)
		have = size - off < len ? size - off : len;
	if (have && blk_pread(b, buf, (size_t)have, off) < 0)
		return -1;
	memset(buf + have, 0, (size_t)(len - have));
	return 0;
}

/* Writes into `b` at `off` the runs of sectors of `old` that differ from `new`, as qemu-img
 * rebase does: as zeros (zero clusters) past the end of the old backing file, which has
 * nothing there, else as data. */
static int write_differing_sectors(struct blk *b, const uint8_t *old, const uint8_t *new,
				   uint64_t len, uint64_t off)
{
	struct blk *old_backing = blk_backing(b);
	uint64_t old_end = old_backing ? blk_size(old_backing) : 0;
	for (uint64_t pos = 0; pos < len;) {
		uint64_t sec = len - pos < 512 ? len - pos : 512;
		if (off + pos < old_end && off + pos + sec > old_end)
			sec = old_end - off - pos; /* runs end where the old backing file does */
		bool differs = memcmp(old + pos, new + pos, (size_t)sec) != 0;
		uint64_t run = sec;
		while (pos + run < len && off + pos + run != old_end) {
			uint64_t next = len - pos - run < 512 ? len - pos - run : 512;
			if ((memcmp(old + pos + run, new + pos + run, (size_t)next) != 0) !=
			    differs)
				break;
			run += next;
		}
		if (differs) {
			int r = off + pos >= old_end
				    ? blk_write_zeroes(b, off + pos, run, 0)
				    : blk_pwrite(b, old + pos, (size_t)run, off + pos);
			if (r < 0)
				return -1;
		}
		pos += run;
	}
	return 0;
}

static int copy_differences(struct blk *b, struct blk *newb, struct progress *prog)
{
	uint8_t *old = malloc(RB_CHUNK), *new = malloc(RB_CHUNK);
	int rc = -1;
	if (!old || !new) {
		kite_error("out of memory");
		goto out;
	}
	uint64_t size = blk_size(b);
	for (uint64_t off = 0; off < size;) {
		uint64_t pnum;
		unsigned flags;
		if (blk_block_status(b, off, size - off, &pnum, &flags, NULL) < 0)
			goto out;
		if (!(flags & BLK_STATUS_ALLOCATED)) {
			/* unallocated here: the image shows its old backing chain's data */
			for (uint64_t o = off; o < off + pnum;) {
				uint64_t n = RB_CHUNK - o % RB_CHUNK;
				if (n > off + pnum - o)
					n = off + pnum - o;
				if (blk_pread(b, old, (size_t)n, o) < 0 ||
				    read_or_zero(newb, new, n, o) < 0)
					goto out;
				if (write_differing_sectors(b, old, new, n, o) < 0)
					goto out;
				o += n;
			}
		}
		off += pnum;
		progress_update(prog, off, size);
	}
	rc = 0;
out:
	free(old);
	free(new);
	return rc;
}

int img_rebase(int argc, char **argv)
{
	static const struct option longopts[] = {{"force-share", no_argument, NULL, 'U'},
						 {NULL, 0, NULL, 0}};
	const char *fmt = NULL, *backing = NULL, *backing_fmt = NULL;
	bool unsafe = false, quiet = false, progress = false;
	unsigned share = 0;
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":f:b:F:upqt:T:cU", longopts, NULL)) != -1) {
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
		case 'u':
			unsafe = true;
			break;
		case 'p':
			progress = true;
			break;
		case 'q':
			quiet = true;
			break;
		case 't':
		case 'T':
		case 'c':
		case 'U':
			share = BLK_O_SHARE_BACKING;
			break;
		case ':':
			return img_usage_error("rebase", "option '%s' needs an argument",
					       argv[optind - 1]);
		default:
			return img_usage_error("rebase", "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (argc - optind != 1)
		return img_usage_error("rebase", "expecting one filename");
	if (!backing)
		return img_usage_error("rebase",
				       "expecting a backing file (-b; -b \"\" removes it)");
	const char *path = argv[optind];
	struct blk *b = blk_open(
	    path, fmt, BLK_O_RDWR | share | img_source_flags() | (unsafe ? BLK_O_NO_BACKING : 0));
	if (!b)
		return 1;
	/* qemu-img 7.2 refuses to probe the new backing file (and says so only after copying;
	 * kite says it before touching the image) */
	if (backing[0] && !backing_fmt) {
		kite_error("Could not change the backing file to '%s': backing format must be "
			   "specified",
			   backing);
		blk_close(b);
		return 1;
	}
	struct blk *newb = NULL;
	int rc = 1;
	if (!unsafe && backing[0]) {
		const char *slash = strrchr(path, '/');
		char *full;
		if (backing[0] == '/' || !slash)
			full = strdup(backing);
		else if (asprintf(&full, "%.*s/%s", (int)(slash - path), path, backing) < 0)
			full = NULL;
		if (!full) {
			kite_error("out of memory");
			goto out;
		}
		newb = blk_open(full, backing_fmt,
				BLK_O_RDONLY | (share ? BLK_O_SHARE : 0) | BLK_O_NO_PROBE_WARN);
		if (!newb)
			kite_error("could not open new backing file '%s'", full);
		free(full);
		if (!newb)
			goto out;
	}
	if (!unsafe) {
		struct progress prog;
		progress_init(&prog, progress && !quiet);
		if (copy_differences(b, newb, &prog) < 0)
			goto out;
		progress_finish(&prog);
	}
	if (blk_change_backing(b, backing[0] ? backing : NULL, backing[0] ? backing_fmt : NULL) <
		0 ||
	    blk_flush(b) < 0)
		goto out;
	rc = 0;
out:
	blk_close(newb);
	blk_close(b);
	return rc;
}
