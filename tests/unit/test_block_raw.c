/* raw driver: bytes round-trip, zeros past a short file, sparse block status, discard and
 * write-zeroes, resize, preallocation and format probing. */
#include "unit.h"
#include "block/block.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[] = "/tmp/kite-test-raw-XXXXXX";

static const char *tmp(const char *name)
{
	static char path[256];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return path;
}

static struct blk *create_raw(const char *name, uint64_t size, enum blk_prealloc p)
{
	struct blk_create_opts o = {.size = size, .size_set = true, .prealloc = p};
	assert_int_equal(blk_create(tmp(name), "raw", &o), 0);
	struct blk *b = blk_open(tmp(name), "raw", BLK_O_RDWR);
	assert_non_null(b);
	return b;
}

static void write_read_roundtrip(void **state)
{
	struct blk *b = create_raw("rt.raw", 1 << 20, BLK_PREALLOC_OFF);
	assert_int_equal(blk_size(b), 1 << 20);
	assert_string_equal(blk_format_name(b), "raw");
	uint8_t w[5000], r[5000];
	for (size_t i = 0; i < sizeof(w); i++)
		w[i] = (uint8_t)(i * 7 + 3);
	assert_int_equal(blk_pwrite(b, w, sizeof(w), 12345), 0);
	assert_int_equal(blk_pread(b, r, sizeof(r), 12345), 0);
	assert_memory_equal(w, r, sizeof(w));
	/* beyond the virtual size is an error, not a silent short read */
	assert_int_equal(blk_pread(b, r, 16, (1 << 20) - 8), -1);
	assert_int_equal(blk_pwrite(b, w, 16, 1 << 20), -1);
	blk_close(b);
}

/* blk_pwritev: the buffers land one after another (empty ones too, and the most allowed),
 * ranges are checked, and a probed raw image still guards its first bytes. */
static void pwritev_writes_buffers_in_order(void **state)
{
	struct blk *b = create_raw("vec.raw", 1 << 20, BLK_PREALLOC_OFF);
	static uint8_t w[BLK_IOV_MAX * 3], r[BLK_IOV_MAX * 3];
	static struct iovec iov[BLK_IOV_MAX + 1];
	for (size_t i = 0; i < sizeof(w); i++)
		w[i] = (uint8_t)(i * 13 + 1);
	size_t off = 0;
	for (int i = 0; i < BLK_IOV_MAX; i++) { /* lengths 0..5: 0 + 1 + 2 + ... */
		size_t len = (size_t)(i % 6);
		iov[i] = (struct iovec){w + off, len};
		off += len;
	}
	assert_int_equal(blk_pwritev(b, iov, BLK_IOV_MAX, 3000), 0);
	assert_int_equal(blk_pread(b, r, off, 3000), 0);
	assert_memory_equal(w, r, off);
	iov[BLK_IOV_MAX] = (struct iovec){w, 1};
	assert_int_equal(blk_pwritev(b, iov, BLK_IOV_MAX + 1, 0), -1);
	struct iovec past[2] = {{w, 100}, {w, 100}};
	assert_int_equal(blk_pwritev(b, past, 2, (1 << 20) - 150), -1);
	assert_int_equal(blk_pwritev(b, past, 0, 0), 0);
	blk_close(b);

	char cmd[512];
	snprintf(cmd, sizeof(cmd), "cd %s && qemu-img create -q -f qcow2 v.qcow2 1M", dir);
	assert_int_equal(system(cmd), 0);
	uint8_t hdr[512];
	int fd = open(tmp("v.qcow2"), O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(read(fd, hdr, sizeof(hdr)), sizeof(hdr));
	close(fd);
	b = blk_open(tmp("vec.raw"), NULL, BLK_O_RDWR | BLK_O_NO_PROBE_WARN);
	assert_non_null(b);
	assert_true(blk_probed_raw(b));
	struct iovec head[2] = {{w, 512}, {hdr, sizeof(hdr)}}; /* the header in the 2nd */
	assert_int_equal(blk_pwritev(b, head, 2, 0), 0);
	struct iovec bad[2] = {{hdr, sizeof(hdr)}, {w, 512}};
	assert_int_equal(blk_pwritev(b, bad, 2, 0), -1);
	assert_int_equal(blk_pread(b, r, 512, 0), 0);
	assert_memory_equal(r, w, 512);
	blk_close(b);
}

/* blk_preadv: the buffers fill one after another (empty ones too, and the most allowed),
 * ranges are checked, and what lies past a short file's end reads as zeros in every buffer
 * it reaches. */
static void preadv_reads_buffers_in_order(void **state)
{
	struct blk *b = create_raw("rvec.raw", 1 << 20, BLK_PREALLOC_OFF);
	static uint8_t w[BLK_IOV_MAX * 3], r[BLK_IOV_MAX * 3];
	static struct iovec iov[BLK_IOV_MAX + 1];
	for (size_t i = 0; i < sizeof(w); i++)
		w[i] = (uint8_t)(i * 11 + 5);
	assert_int_equal(blk_pwrite(b, w, sizeof(w), 7000), 0);
	memset(r, 0xee, sizeof(r));
	size_t off = 0;
	for (int i = 0; i < BLK_IOV_MAX; i++) { /* lengths 5..0: 5 + 4 + ... */
		size_t len = (size_t)(5 - i % 6);
		iov[i] = (struct iovec){r + off, len};
		off += len;
	}
	assert_int_equal(blk_preadv(b, iov, BLK_IOV_MAX, 7000), 0);
	assert_memory_equal(w, r, off);
	assert_int_equal(r[off], 0xee); /* nothing past the last buffer */
	iov[BLK_IOV_MAX] = (struct iovec){r, 1};
	assert_int_equal(blk_preadv(b, iov, BLK_IOV_MAX + 1, 0), -1);
	struct iovec past[2] = {{r, 100}, {r + 100, 100}};
	assert_int_equal(blk_preadv(b, past, 2, (1 << 20) - 150), -1);
	assert_int_equal(blk_preadv(b, past, 0, 0), 0);

	int fd = open(tmp("rvec.raw"), O_RDWR); /* another program shrinks the file */
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 7003), 0);
	close(fd);
	memset(r, 0xee, sizeof(r));
	struct iovec tail[3] = {{r, 2}, {r + 2, 2}, {r + 4, 4}};
	assert_int_equal(blk_preadv(b, tail, 3, 7000), 0);
	assert_memory_equal(r, w, 3);
	for (int i = 3; i < 8; i++)
		assert_int_equal(r[i], 0);
	assert_int_equal(r[8], 0xee);
	blk_close(b);
}

static void short_file_reads_zeros(void **state)
{
	struct blk *b = create_raw("short.raw", 65536, BLK_PREALLOC_OFF);
	/* Another program shrinks the file under us: the missing tail reads as zeros. */
	int fd = open(tmp("short.raw"), O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "abcd", 4, 0), 4);
	assert_int_equal(ftruncate(fd, 4), 0);
	close(fd);
	uint8_t buf[64];
	memset(buf, 0xff, sizeof(buf));
	assert_int_equal(blk_pread(b, buf, sizeof(buf), 0), 0);
	assert_memory_equal(buf, "abcd", 4);
	for (size_t i = 4; i < sizeof(buf); i++)
		assert_int_equal(buf[i], 0);
	blk_close(b);
}

static void block_status_sees_holes(void **state)
{
	struct blk *b = create_raw("sparse.raw", 4 << 20, BLK_PREALLOC_OFF);
	uint8_t data[65536];
	memset(data, 0x5a, sizeof(data));
	assert_int_equal(blk_pwrite(b, data, sizeof(data), 1 << 20), 0);
	assert_int_equal(blk_flush(b), 0);
	uint64_t pnum, host;
	unsigned fl;
	assert_int_equal(blk_block_status(b, 0, 4 << 20, &pnum, &fl, &host), 0);
	assert_int_equal(pnum, 1 << 20);
	assert_true(fl & BLK_STATUS_ZERO);
	assert_false(fl & BLK_STATUS_DATA);
	assert_int_equal(blk_block_status(b, 1 << 20, 3 << 20, &pnum, &fl, &host), 0);
	assert_true(fl & BLK_STATUS_DATA);
	assert_int_equal(host, 1 << 20);
	assert_true(pnum >= 65536 && pnum < (3 << 20));

	/* discard punches the hole back: reads are zero, status says zero */
	assert_int_equal(blk_discard(b, 1 << 20, 65536), 0);
	uint8_t r[65536];
	assert_int_equal(blk_pread(b, r, sizeof(r), 1 << 20), 0);
	for (size_t i = 0; i < sizeof(r); i++)
		assert_int_equal(r[i], 0);
	assert_int_equal(blk_block_status(b, 0, 4 << 20, &pnum, &fl, &host), 0);
	assert_int_equal(pnum, 4 << 20);
	assert_true(fl & BLK_STATUS_ZERO);
	blk_close(b);
}

static void write_zeroes_zeroes(void **state)
{
	struct blk *b = create_raw("wz.raw", 1 << 20, BLK_PREALLOC_OFF);
	uint8_t data[8192];
	memset(data, 0xee, sizeof(data));
	assert_int_equal(blk_pwrite(b, data, sizeof(data), 0), 0);
	assert_int_equal(blk_write_zeroes(b, 100, 5000, 0), 0);
	uint8_t r[8192];
	assert_int_equal(blk_pread(b, r, sizeof(r), 0), 0);
	for (size_t i = 0; i < sizeof(r); i++)
		assert_int_equal(r[i], (i >= 100 && i < 5100) ? 0 : 0xee);
	assert_int_equal(blk_write_zeroes(b, 0, 8192, BLK_ZERO_MAY_UNMAP), 0);
	assert_int_equal(blk_pread(b, r, sizeof(r), 0), 0);
	for (size_t i = 0; i < sizeof(r); i++)
		assert_int_equal(r[i], 0);
	blk_close(b);
}

static void resize_grows_and_shrinks(void **state)
{
	struct blk *b = create_raw("rs.raw", 65536, BLK_PREALLOC_OFF);
	assert_int_equal(blk_resize(b, 1 << 20, false), 0);
	assert_int_equal(blk_size(b), 1 << 20);
	assert_int_equal(blk_resize(b, 4096, false), -1); /* shrinking needs the flag */
	assert_int_equal(blk_resize(b, 4096, true), 0);
	struct stat st;
	assert_int_equal(stat(tmp("rs.raw"), &st), 0);
	assert_int_equal(st.st_size, 4096);
	blk_close(b);
}

static void preallocation_full_allocates(void **state)
{
	struct blk *b = create_raw("full.raw", 1 << 20, BLK_PREALLOC_FULL);
	blk_close(b);
	struct stat st;
	assert_int_equal(stat(tmp("full.raw"), &st), 0);
	assert_int_equal(st.st_size, 1 << 20);
	assert_true((uint64_t)st.st_blocks * 512 >= (1 << 20));
	b = create_raw("off.raw", 1 << 20, BLK_PREALLOC_OFF);
	blk_close(b);
	assert_int_equal(stat(tmp("off.raw"), &st), 0);
	assert_int_equal(st.st_blocks, 0);
	struct blk_create_opts o = {
	    .size = 4096, .size_set = true, .prealloc = BLK_PREALLOC_METADATA};
	assert_int_equal(blk_create(tmp("meta.raw"), "raw", &o), -1);
}

static void probing_falls_back_to_raw(void **state)
{
	struct blk *b = create_raw("probe.raw", 65536, BLK_PREALLOC_OFF);
	blk_close(b);
	b = blk_open(tmp("probe.raw"), NULL, BLK_O_NO_PROBE_WARN);
	assert_non_null(b);
	assert_string_equal(blk_format_name(b), "raw");
	assert_true(blk_probed_raw(b));
	assert_false(blk_is_writable(b));
	uint8_t x = 1;
	assert_int_equal(blk_pwrite(b, &x, 1, 0), -1); /* opened read-only */
	blk_close(b);
	b = blk_open(tmp("probe.raw"), "raw", 0);
	assert_false(blk_probed_raw(b));
	blk_close(b);
	assert_null(blk_open(tmp("missing.raw"), NULL, 0));
	assert_null(blk_open(tmp("probe.raw"), "nosuchformat", 0));
}

/* A probed raw image refuses writes that would make it probe as another format, as
 * qemu-io on the same file does (its "write -s" of a qcow2 header fails with EPERM). */
static void probed_raw_guards_its_head(void **state)
{
	char cmd[1024];
	struct blk *b = create_raw("head.raw", 1 << 20, BLK_PREALLOC_OFF);
	blk_close(b);
	snprintf(cmd, sizeof(cmd),
		 "cd %s && qemu-img create -q -f qcow2 h.qcow2 1M && head -c 512 h.qcow2 > hdr.bin "
		 "&& cp head.raw q.raw && ! qemu-io -c 'write -s hdr.bin 0 512' q.raw 2>/dev/null "
		 "&& cmp -s head.raw q.raw && qemu-io -c 'write -P 7 0 512' q.raw >/dev/null 2>&1",
		 dir);
	assert_int_equal(system(cmd), 0); /* the referee refuses the header, allows data */
	uint8_t hdr[512];
	FILE *f = fopen(tmp("hdr.bin"), "rb");
	assert_non_null(f);
	assert_int_equal(fread(hdr, 1, sizeof(hdr), f), sizeof(hdr));
	fclose(f);
	b = blk_open(tmp("head.raw"), NULL, BLK_O_RDWR | BLK_O_NO_PROBE_WARN);
	assert_non_null(b);
	assert_true(blk_probed_raw(b));
	assert_int_equal(blk_pwrite(b, hdr, sizeof(hdr), 0), -1);
	assert_int_equal(blk_pwrite(b, hdr, 4, 0), -1); /* the magic alone, partial sector */
	uint8_t data[4096];
	memset(data, 7, sizeof(data));
	assert_int_equal(blk_pwrite(b, data, sizeof(data), 0), 0);
	assert_int_equal(blk_pwrite(b, hdr, sizeof(hdr), 4096), 0); /* not at the start */
	blk_close(b);
	b = blk_open(tmp("head.raw"), NULL, BLK_O_RDONLY | BLK_O_NO_PROBE_WARN);
	assert_string_equal(blk_format_name(b), "raw");
	blk_close(b);
	/* format given explicitly: no restriction, as qemu-io -f raw */
	b = blk_open(tmp("head.raw"), "raw", BLK_O_RDWR);
	assert_int_equal(blk_pwrite(b, hdr, sizeof(hdr), 0), 0);
	blk_close(b);
	snprintf(cmd, sizeof(cmd), "cd %s && qemu-img info head.raw | grep -q 'format: qcow2'",
		 dir);
	assert_int_equal(system(cmd), 0);
}

static void nocache_unaligned_io(void **state)
{
	struct blk *b = create_raw("direct.raw", 1 << 20, BLK_PREALLOC_OFF);
	blk_close(b);
	b = blk_open(tmp("direct.raw"), "raw", BLK_O_RDWR | BLK_O_NOCACHE);
	if (!b) /* tmpfs has no O_DIRECT: the error is the behaviour */
		skip();
	uint8_t w[777], r[777];
	for (size_t i = 0; i < sizeof(w); i++)
		w[i] = (uint8_t)(i ^ 0x55);
	assert_int_equal(blk_pwrite(b, w, sizeof(w), 4095), 0);
	assert_int_equal(blk_pread(b, r, sizeof(r), 4095), 0);
	assert_memory_equal(w, r, sizeof(w));
	blk_close(b);
	struct stat st;
	assert_int_equal(stat(tmp("direct.raw"), &st), 0);
	assert_int_equal(st.st_size, 1 << 20);
}

static int setup(void **state)
{
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(write_read_roundtrip),
	    cmocka_unit_test(short_file_reads_zeros),
	    cmocka_unit_test(pwritev_writes_buffers_in_order),
	    cmocka_unit_test(preadv_reads_buffers_in_order),
	    cmocka_unit_test(block_status_sees_holes),
	    cmocka_unit_test(write_zeroes_zeroes),
	    cmocka_unit_test(resize_grows_and_shrinks),
	    cmocka_unit_test(preallocation_full_allocates),
	    cmocka_unit_test(probing_falls_back_to_raw),
	    cmocka_unit_test(probed_raw_guards_its_head),
	    cmocka_unit_test(nocache_unaligned_io),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
