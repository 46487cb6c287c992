/* kite img compare: qemu-img's messages and exit codes (0 identical, 1 different,
 * 2 error). Offsets of mismatches are reported at 512-byte granularity, as QEMU does. */
#include "cli/cmd_img.h"
#include "util/err.h"
#include "util/progress.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CMP_CHUNK (1u << 20)

struct side {
	struct blk *b;
	uint8_t *buf;
};

/* Status word used by strict mode: allocation, zero, data, offset-valid, and whether the
 * run reaches the end of the image (QEMU compares its EOF bit too). */
static int status(struct blk *b, uint64_t off, uint64_t len, uint64_t *pnum, unsigned *word,
		  bool *zero)
{
	struct blk_map m;
	if (blk_map_status(b, off, len, &m) < 0)
		return -1;
	*pnum = m.pnum;
	*zero = (m.flags & BLK_STATUS_ZERO) || !(m.flags & BLK_STATUS_ALLOCATED);
	*word = (m.flags & (BLK_STATUS_ALLOCATED | BLK_STATUS_DATA | BLK_STATUS_OFFSET_VALID)) |
		(*zero ? BLK_STATUS_ZERO : 0);
	if (off + m.pnum == blk_size(b))
		*word |= 1u << 16;
	return 0;
}

static uint64_t first_diff(const uint8_t *a, const uint8_t *b, uint64_t len)
{
	for (uint64_t s = 0; s < len; s += 512) {
		uint64_t n = len - s < 512 ? len - s : 512;
		if (memcmp(a + s, b + s, (size_t)n))
			return s;
	}
	return len;
}

/* Compares [off, off+len) of both; 1 and *where set on a difference. */
static int compare_range(struct side *s1, struct side *s2, uint64_t off, uint64_t len,
			 uint64_t *where)
{
	while (len > 0) {
		uint64_t n = len < CMP_CHUNK ? len : CMP_CHUNK;
		if (blk_pread(s1->b, s1->buf, (size_t)n, off) < 0 ||
		    blk_pread(s2->b, s2->buf, (size_t)n, off) < 0)
			return -1;
		uint64_t d = first_diff(s1->buf, s2->buf, n);
		if (d < n) {
			*where = off + d;
			return 1;
		}
		off += n;
		len -= n;
	}
	return 0;
}

/* The tail of the longer image must read as zeros. */
static int check_zero_tail(struct side *s, uint64_t off, uint64_t end, uint64_t *where)
{
	while (off < end) {
		uint64_t pnum;
		unsigned word;
		bool zero;
		if (status(s->b, off, end - off, &pnum, &word, &zero) < 0)
			return -1;
		for (uint64_t o = off; !zero && o < off + pnum;) {
			uint64_t n = off + pnum - o < CMP_CHUNK ? off + pnum - o : CMP_CHUNK;
			if (blk_pread(s->b, s->buf, (size_t)n, o) < 0)
				return -1;
			for (uint64_t i = 0; i < n; i += 512) {
				uint64_t k = n - i < 512 ? n - i : 512;
				if (!img_is_zero(s->buf + i, (size_t)k)) {
					*where = o + i;
					return 1;
				}
			}
			o += n;
		}
		off += pnum;
	}
	return 0;
}

int img_compare(int argc, char **argv)
{
	static const struct option longopts[] = {{"force-share", no_argument, NULL, 'U'},
						 {NULL, 0, NULL, 0}};
	const char *fmt1 = NULL, *fmt2 = NULL;
	bool strict = false, quiet = false, progress = false;
	unsigned share = 0;
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":f:F:spqU", longopts, NULL)) != -1) {
		switch (c) {
		case 'f':
			fmt1 = optarg;
			break;
		case 'F':
			fmt2 = optarg;
			break;
		case 's':
			strict = true;
			break;
		case 'p':
			progress = true;
			break;
		case 'q':
			quiet = true;
			break;
		case 'U':
			share = BLK_O_SHARE;
			break;
		case ':':
			img_usage_error("compare", "option '%s' needs an argument",
					argv[optind - 1]);
			return 1; /* usage errors: 1, as qemu-img (2 is for I/O errors) */
		default:
			img_usage_error("compare", "unknown option '%s'", argv[optind - 1]);
			return 1;
		}
	}
	if (argc - optind != 2) {
		img_usage_error("compare", "expecting two filenames");
		return 1;
	}
	if (!fmt2)
		fmt2 = fmt1;
	struct side s1 = {0}, s2 = {0};
	int rc = 2;
	struct progress prog;
	progress_init(&prog, progress && !quiet);
	s1.b = blk_open(argv[optind], fmt1,
			BLK_O_RDONLY | share | img_source_flags() | BLK_O_NO_PROBE_WARN);
	if (!s1.b)
		goto out;
	s2.b = blk_open(argv[optind + 1], fmt2,
			BLK_O_RDONLY | share | img_source_flags() | BLK_O_NO_PROBE_WARN);
	if (!s2.b)
		goto out;
	s1.buf = malloc(CMP_CHUNK);
	s2.buf = malloc(CMP_CHUNK);
	if (!s1.buf || !s2.buf) {
		kite_error("out of memory");
		goto out;
	}
	uint64_t size1 = blk_size(s1.b), size2 = blk_size(s2.b);
	uint64_t common = size1 < size2 ? size1 : size2, total = size1 > size2 ? size1 : size2;
	if (strict && size1 != size2) {
		if (!quiet)
			printf("Strict mode: Image size mismatch!\n");
		rc = 1;
		goto out;
	}
	uint64_t where;
	for (uint64_t off = 0; off < common;) {
		uint64_t p1, p2;
		unsigned w1, w2;
		bool z1, z2;
		if (status(s1.b, off, common - off, &p1, &w1, &z1) < 0 ||
		    status(s2.b, off, common - off, &p2, &w2, &z2) < 0)
			goto out;
		uint64_t n = p1 < p2 ? p1 : p2;
		if (strict && w1 != w2) {
			if (!quiet)
				printf("Strict mode: Offset %llu block status mismatch!\n",
				       (unsigned long long)off);
			rc = 1;
			goto out;
		}
		if (!(z1 && z2)) {
			int r = compare_range(&s1, &s2, off, n, &where);
			if (r < 0)
				goto out;
			if (r > 0)
				goto mismatch;
		}
		off += n;
		progress_update(&prog, off, total);
	}
	if (size1 != size2) {
		if (!quiet)
			printf("Warning: Image size mismatch!\n");
		int r = check_zero_tail(size1 > size2 ? &s1 : &s2, common, total, &where);
		if (r < 0)
			goto out;
		if (r > 0)
			goto mismatch;
	}
	progress_finish(&prog);
	if (!quiet)
		printf("Images are identical.\n");
	rc = 0;
	goto out;
mismatch:
	progress_finish(&prog);
	if (!quiet)
		printf("Content mismatch at offset %llu!\n", (unsigned long long)where);
	rc = 1;
out:
	blk_close(s1.b);
	blk_close(s2.b);
	free(s1.buf);
	free(s2.buf);
	return rc;
}
