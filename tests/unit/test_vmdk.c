/* The vmdk reader on small hand-built images: reads, block status, and hostile headers and
 * tables that must give an error instead of a crash or a wrong read. */
#include "unit.h"
#include "block/vmdk.h"

#include <endian.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define S	      512
#define GRAIN_SECTORS 8	  /* 4 KiB grains */
#define CAPACITY      256 /* sectors: 128 KiB, 32 grains, one grain table */

static char path[64];

static void put32(uint8_t *b, size_t off, uint32_t v)
{
	v = htole32(v);
	memcpy(b + off, &v, 4);
}

static void put64(uint8_t *b, size_t off, uint64_t v)
{
	v = htole64(v);
	memcpy(b + off, &v, 8);
}

static void header(uint8_t *h, uint32_t flags, uint64_t gd_sector, uint64_t grain)
{
	memset(h, 0, S);
	memcpy(h, "KDMV", 4);
	put32(h, 4, (flags & (1U << 16)) ? 3 : 1);
	put32(h, 8, flags);
	put64(h, 12, CAPACITY);
	put64(h, 20, grain);
	put32(h, 44, 512);
	put64(h, 56, gd_sector);
	if (flags & (1U << 16))
		h[77] = 1; /* deflate */
}

static void write_file(const uint8_t *buf, size_t len)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(buf, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

/* Sparse image: grain 0 = 0xaa, grain 1 zeroed (entry 1), grain 3 = 0xbb at sector 16. */
static size_t build_sparse(uint8_t *img, uint64_t grain, uint32_t gt3)
{
	size_t len = 24 * S;
	memset(img, 0, len);
	header(img, 1U | (1U << 2), 1, grain);
	put32(img, 1 * S, 2);		 /* grain directory -> table at sector 2 */
	put32(img, 2 * S + 0, 8);	 /* grain 0 */
	put32(img, 2 * S + 4, 1);	 /* grain 1: zeroed */
	put32(img, 2 * S + 12, gt3);	 /* grain 3 */
	memset(img + 8 * S, 0xaa, 4096); /* grain 0 data, sector 8..15 */
	memset(img + 16 * S, 0xbb, 4096);
	/* sector 1 holds nonzero bytes, so a wrongly followed zero entry would show */
	memset(img + 1 * S + 4, 0x77, 16);
	return len;
}

static int setup(void **state)
{
	snprintf(path, sizeof(path), "/tmp/kite-test-vmdk-%d", (int)getpid());
	return 0;
}

static int teardown(void **state)
{
	unlink(path);
	return 0;
}

static void sparse_reads_and_status(void **state)
{
	static uint8_t img[24 * S];
	write_file(img, build_sparse(img, GRAIN_SECTORS, 16));
	struct vmdk *v = vmdk_open(path);
	assert_non_null(v);
	assert_int_equal(vmdk_size(v), CAPACITY * S);
	assert_int_equal(vmdk_grain_size(v), 4096);
	static uint8_t buf[CAPACITY * S];
	memset(buf, 0x55, sizeof(buf));
	assert_int_equal(vmdk_pread(v, buf, sizeof(buf), 0), 0);
	for (size_t i = 0; i < sizeof(buf); i++) {
		uint8_t want = i < 4096 ? 0xaa : (i >= 3 * 4096 && i < 4 * 4096) ? 0xbb : 0;
		if (buf[i] != want)
			fail_msg("byte %zu is %#x, want %#x", i, buf[i], want);
	}
	/* an unaligned read across the data/zero boundary */
	assert_int_equal(vmdk_pread(v, buf, 100, 4096 - 50), 0);
	assert_int_equal(buf[49], 0xaa);
	assert_int_equal(buf[50], 0);

	uint64_t n, host;
	assert_int_equal(vmdk_block_status(v, 0, CAPACITY * S, &n, &host), VMDK_DATA);
	assert_int_equal(n, 4096);
	assert_int_equal(host, 8 * S);
	assert_int_equal(vmdk_block_status(v, 4096, CAPACITY * S - 4096, &n, &host), VMDK_ZERO);
	assert_int_equal(n, 4096);
	assert_int_equal(vmdk_block_status(v, 8192, CAPACITY * S - 8192, &n, &host),
			 VMDK_UNALLOCATED);
	assert_int_equal(n, 4096);
	assert_int_equal(vmdk_block_status(v, 4 * 4096, CAPACITY * S - 4 * 4096, &n, &host),
			 VMDK_UNALLOCATED);
	assert_int_equal(n, CAPACITY * S - 4 * 4096);
	/* reads past the end are refused */
	assert_int_equal(vmdk_pread(v, buf, 2, CAPACITY * S - 1), -1);
	vmdk_close(v);
}

static void grain_beyond_eof_is_an_error(void **state)
{
	static uint8_t img[24 * S];
	write_file(img, build_sparse(img, GRAIN_SECTORS, 1000000));
	struct vmdk *v = vmdk_open(path);
	assert_non_null(v);
	uint8_t buf[4096];
	assert_int_equal(vmdk_pread(v, buf, sizeof(buf), 0), 0);
	assert_int_equal(vmdk_pread(v, buf, sizeof(buf), 3 * 4096), -1);
	vmdk_close(v);
}

static void check_finds_grains_past_eof(void **state)
{
	static uint8_t img[24 * S];
	uint64_t bad;
	write_file(img, build_sparse(img, GRAIN_SECTORS, 16));
	struct vmdk *v = vmdk_open(path);
	assert_non_null(v);
	assert_int_equal(vmdk_check(v, &bad), 0);
	assert_int_equal(bad, 0);
	vmdk_close(v);
	write_file(img, build_sparse(img, GRAIN_SECTORS, 1000000));
	v = vmdk_open(path);
	assert_non_null(v);
	assert_int_equal(vmdk_check(v, &bad), 0);
	assert_int_equal(bad, 1);
	vmdk_close(v);
}

static void bad_headers_refuse_to_open(void **state)
{
	static uint8_t img[24 * S];
	size_t len = build_sparse(img, 3, 16); /* grain size not a power of two */
	write_file(img, len);
	assert_null(vmdk_open(path));

	build_sparse(img, 1ULL << 55, 16); /* grain * 512 wraps to 0 (found by fuzz_vmdk) */
	write_file(img, len);
	assert_null(vmdk_open(path));

	build_sparse(img, GRAIN_SECTORS, 16);
	put64(img, 56, 1ULL << 40); /* grain directory far past the end */
	write_file(img, len);
	assert_null(vmdk_open(path));

	build_sparse(img, GRAIN_SECTORS, 16);
	put64(img, 12, 1ULL << 60); /* capacity needing a directory bigger than the file */
	write_file(img, len);
	assert_null(vmdk_open(path));

	build_sparse(img, GRAIN_SECTORS, 16);
	put32(img, 44, 0); /* no entries per table */
	write_file(img, len);
	assert_null(vmdk_open(path));

	write_file(img, 100); /* truncated header */
	assert_null(vmdk_open(path));

	memcpy(img, "QFI\xfb", 4);
	write_file(img, len);
	assert_null(vmdk_open(path));
}

/* streamOptimized as VMware writes it: directory location only in the footer. */
static size_t build_stream(uint8_t *img, int corrupt)
{
	uint8_t grain[4096];
	memset(grain, 0x3c, sizeof(grain));
	grain[100] = 1;
	uLongf clen = compressBound(sizeof(grain));
	uint8_t *c = malloc(clen);
	assert_non_null(c);
	assert_int_equal(compress(c, &clen, grain, sizeof(grain)), Z_OK);
	if (corrupt)
		memset(c + 2, 0xff, clen - 2);
	memset(img, 0, 32 * S);
	header(img, 1U | (1U << 16) | (1U << 17), 0xffffffffffffffffULL, GRAIN_SECTORS);
	/* grain 2 marker at sector 2: lba, size, data */
	put64(img, 2 * S, 2 * GRAIN_SECTORS);
	put32(img, 2 * S + 8, (uint32_t)clen);
	memcpy(img + 2 * S + 12, c, clen);
	free(c);
	assert_true(clen + 12 < 7 * S);
	put32(img, 10 * S + 8, 2); /* grain table at 10..13: entry 2 -> sector 2 */
	put32(img, 14 * S, 10);	   /* grain directory at 14 */
	/* footer marker, footer, end of stream: sectors 15, 16, 17 */
	put64(img, 15 * S, 1);
	put32(img, 15 * S + 12, 3);
	header(img + 16 * S, 1U | (1U << 16) | (1U << 17), 14, GRAIN_SECTORS);
	return 18 * S;
}

static void stream_optimized_footer(void **state)
{
	static uint8_t img[32 * S];
	write_file(img, build_stream(img, 0));
	struct vmdk *v = vmdk_open(path);
	assert_non_null(v);
	assert_true(vmdk_compressed(v));
	uint8_t buf[3 * 4096];
	assert_int_equal(vmdk_pread(v, buf, sizeof(buf), 4096), 0);
	assert_int_equal(buf[0], 0);
	assert_int_equal(buf[4095], 0);
	assert_int_equal(buf[4096], 0x3c);
	assert_int_equal(buf[4096 + 100], 1);
	assert_int_equal(buf[8191], 0x3c);
	assert_int_equal(buf[8192], 0);
	uint64_t n, host;
	assert_int_equal(vmdk_block_status(v, 8192, 4096, &n, &host), VMDK_DATA);
	assert_int_equal(host, UINT64_MAX);
	vmdk_close(v);

	write_file(img, build_stream(img, 1));
	v = vmdk_open(path);
	assert_non_null(v);
	assert_int_equal(vmdk_pread(v, buf, 4096, 8192), -1);
	vmdk_close(v);

	size_t len = build_stream(img, 0);
	put32(img, 15 * S + 12, 0); /* no footer marker */
	write_file(img, len);
	assert_null(vmdk_open(path));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(sparse_reads_and_status, setup, teardown),
	    cmocka_unit_test_setup_teardown(grain_beyond_eof_is_an_error, setup, teardown),
	    cmocka_unit_test_setup_teardown(check_finds_grains_past_eof, setup, teardown),
	    cmocka_unit_test_setup_teardown(bad_headers_refuse_to_open, setup, teardown),
	    cmocka_unit_test_setup_teardown(stream_optimized_footer, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
