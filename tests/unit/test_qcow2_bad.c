/* Hostile and corrupt qcow2 images: every one gives a clear error (open or I/O returns
 * failure), never a crash, and a refused image is left byte-for-byte unchanged. */
#include "test_qcow2_util.h"

/* A small valid image: 64 KiB clusters, data in the first clusters, one compressed. */
static void make_base(void)
{
	assert_int_equal(qt_sh("rm -f base.qcow2 bad.qcow2 && qemu-img create -f qcow2 base.qcow2 "
			       "4M && qemu-io -c 'write -P 1 0 128k' -c 'write -c -P 2 1M 64k' "
			       "base.qcow2 && cp base.qcow2 bad.qcow2"),
			 0);
}

static void patch(uint64_t off, const void *data, size_t len)
{
	int fd = open(qt_path("bad.qcow2"), O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, data, len, (off_t)off), (ssize_t)len);
	close(fd);
}

static void patch_be32(uint64_t off, uint32_t v)
{
	uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
	patch(off, b, 4);
}

static void patch_be64(uint64_t off, uint64_t v)
{
	patch_be32(off, (uint32_t)(v >> 32));
	patch_be32(off + 4, (uint32_t)v);
}

static uint64_t read_be64(uint64_t off)
{
	uint8_t b[8];
	int fd = open(qt_path("bad.qcow2"), O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, b, 8, (off_t)off), 8);
	close(fd);
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | b[i];
	return v;
}

/* Opening (read-only and read-write) fails and leaves the file unchanged. */
static void assert_refused(void)
{
	assert_int_equal(qt_sh("md5sum bad.qcow2 > before.md5"), 0);
	assert_null(blk_open(qt_path("bad.qcow2"), NULL, 0));
	assert_null(blk_open(qt_path("bad.qcow2"), "qcow2", BLK_O_RDWR));
	assert_int_equal(qt_sh("md5sum -c before.md5"), 0);
}

static void bad_headers(void **state)
{
	make_base();
	patch_be32(4, 4); /* version */
	assert_refused();
	make_base();
	patch_be32(20, 30); /* cluster_bits */
	assert_refused();
	make_base();
	patch_be32(20, 8);
	assert_refused();
	make_base();
	patch_be64(24, 1ull << 63); /* size */
	assert_refused();
	make_base();
	patch_be64(40, 1ull << 40); /* L1 beyond EOF */
	assert_refused();
	make_base();
	patch_be32(36, 0); /* L1 too small for the size */
	assert_refused();
	make_base();
	patch_be32(36, 0x7fffffff); /* absurd L1 size */
	assert_refused();
	make_base();
	patch_be64(48, 12345); /* misaligned refcount table */
	assert_refused();
	make_base();
	patch_be32(56, 0xffffff); /* absurd refcount table */
	assert_refused();
	make_base();
	patch_be32(96, 7); /* refcount_order */
	assert_refused();
	make_base();
	patch_be32(100, 13); /* header length */
	assert_refused();
	make_base();
	patch_be32(32, 1); /* AES encryption */
	assert_refused();
	make_base();
	patch_be32(60, 5); /* snapshots that are not there */
	patch_be64(64, 1ull << 40);
	assert_refused();
	make_base();
	patch_be64(8, 65530); /* backing name crossing the header cluster */
	patch_be32(16, 100);
	assert_refused();
}

static void truncated_files(void **state)
{
	make_base();
	assert_int_equal(qt_sh("head -c 50 base.qcow2 > bad.qcow2"), 0);
	assert_refused();
	assert_int_equal(qt_sh("head -c 100 base.qcow2 > bad.qcow2"), 0);
	assert_refused();
	/* header intact, tables cut off */
	assert_int_equal(qt_sh("head -c 70000 base.qcow2 > bad.qcow2"), 0);
	assert_refused();
}

static void unknown_features(void **state)
{
	make_base();
	patch_be64(72, 1ull << 10); /* unknown incompatible bit */
	assert_refused();
	make_base();
	patch_be64(72, 1ull << 2); /* external data file */
	assert_refused();
	make_base();
	patch_be64(72, 1ull << 1); /* corrupt bit: readable, not writable */
	struct blk *b = blk_open(qt_path("bad.qcow2"), NULL, 0);
	assert_non_null(b);
	blk_close(b);
	assert_null(blk_open(qt_path("bad.qcow2"), NULL, BLK_O_RDWR));
	/* unknown compatible and autoclear bits are fine */
	make_base();
	patch_be64(80, 1ull << 40);
	patch_be64(88, 1ull << 40);
	b = blk_open(qt_path("bad.qcow2"), NULL, BLK_O_RDWR);
	assert_non_null(b);
	blk_close(b);
	qt_assert_clean("bad.qcow2");
	/* a longer header (fields from a future version) and unknown extensions survive a
	 * header rewrite */
	make_base();
	assert_int_equal(
	    qt_sh("python3 -c \"import struct;f=open('bad.qcow2','r+b');h=bytearray(f."
		  "read(65536));h[112:112]=b'KITETEST';h[100:104]=struct.pack('>I',120);"
		  "h[120:120]=struct.pack('>II',0x12345678,4)+b'abcd'+bytes(4);"
		  "f.seek(0);f.write(h[:65536])\""),
	    0);
	b = blk_open(qt_path("bad.qcow2"), NULL, BLK_O_RDWR);
	assert_non_null(b);
	assert_int_equal(blk_change_backing(b, "some/backing.qcow2", "qcow2"), 0);
	blk_close(b);
	assert_int_equal(qt_sh("head -c 65536 bad.qcow2 | grep -q KITETEST && head -c 65536 "
			       "bad.qcow2 | grep -q abcd && qemu-img info bad.qcow2 | grep -q "
			       "'backing file: some/backing.qcow2'"),
			 0);
}

/* Reads and writes touching broken tables fail cleanly; nothing lands on metadata. */
static void bad_tables(void **state)
{
	uint8_t buf[65536];
	make_base();
	uint64_t l1off = read_be64(40);
	uint64_t l2off = read_be64(l1off) & 0x00fffffffffffe00ull;
	/* misaligned data cluster */
	patch_be64(l2off, (read_be64(l2off) + 4096) | (1ull << 63));
	struct blk *b = blk_open(qt_path("bad.qcow2"), NULL, BLK_O_RDWR);
	assert_non_null(b);
	assert_int_equal(blk_pread(b, buf, 512, 0), -1);
	assert_int_equal(blk_pwrite(b, buf, 512, 0), -1);
	blk_close(b);

	/* data cluster pointing at the header, marked as exclusively ours */
	make_base();
	patch_be64(l2off, 0 | (1ull << 63));
	assert_int_equal(qt_sh("head -c 65536 bad.qcow2 > hdr.before"), 0);
	b = blk_open(qt_path("bad.qcow2"), NULL, BLK_O_RDWR);
	assert_non_null(b);
	memset(buf, 0xee, sizeof(buf));
	/* offset 0 with COPIED reads as unallocated; a write must not touch the header */
	assert_int_equal(qt_sh("true"), 0);
	patch_be64(l2off + 8, l1off | (1ull << 63)); /* cluster 1 -> the L1 table */
	blk_close(b);
	b = blk_open(qt_path("bad.qcow2"), NULL, BLK_O_RDWR);
	assert_non_null(b);
	assert_int_equal(blk_pwrite(b, buf, 4096, 65536), -1);
	blk_close(b);
	assert_int_equal(qt_sh("head -c 65536 bad.qcow2 | cmp - hdr.before"), 0);
	assert_int_equal(read_be64(l1off) & 0x00fffffffffffe00ull, l2off);

	/* data cluster pointing at its own L2 table: refused, the table intact */
	make_base();
	patch_be64(l2off + 8, l2off | (1ull << 63));
	uint64_t e0 = read_be64(l2off);
	b = blk_open(qt_path("bad.qcow2"), NULL, BLK_O_RDWR);
	assert_non_null(b);
	assert_int_equal(blk_pwrite(b, buf, 4096, 65536), -1);
	blk_close(b);
	assert_int_equal(read_be64(l2off), e0);

	/* L2 table beyond the end of the file */
	make_base();
	patch_be64(l1off, (1ull << 40) | (1ull << 63));
	b = blk_open(qt_path("bad.qcow2"), NULL, 0);
	assert_non_null(b);
	assert_int_equal(blk_pread(b, buf, 512, 0), -1);
	blk_close(b);

	/* compressed descriptor past the end of the file */
	make_base();
	uint64_t ce = read_be64(l2off + 16 * 8); /* 1M / 64k = entry 16 */
	assert_true(ce & (1ull << 62));
	patch_be64(l2off + 16 * 8, (ce & ~((1ull << 54) - 1)) | (1ull << 40));
	b = blk_open(qt_path("bad.qcow2"), NULL, 0);
	assert_non_null(b);
	assert_int_equal(blk_pread(b, buf, 512, 1 << 20), -1);
	blk_close(b);

	/* compressed data that does not inflate */
	make_base();
	uint64_t coff = ce & ((1ull << 54) - 1);
	memset(buf, 0xff, 64);
	patch(coff, buf, 64);
	b = blk_open(qt_path("bad.qcow2"), NULL, 0);
	assert_non_null(b);
	assert_int_equal(blk_pread(b, buf, 512, 1 << 20), -1);
	blk_close(b);
}

/* A refcount block that claims the L1 table is free: allocation must not reuse it. */
static void lying_refcounts(void **state)
{
	make_base();
	uint64_t l1off = read_be64(40), rt = read_be64(48);
	uint64_t rb = read_be64(rt);
	uint8_t zero[2] = {0, 0};
	patch(rb + 2 * (l1off / 65536), zero, 2);
	uint64_t l1_before = read_be64(l1off);
	/* qcow2_check sees it */
	struct blk *b = blk_open(qt_path("bad.qcow2"), NULL, 0);
	assert_non_null(b);
	struct blk_check_result res;
	assert_int_equal(qcow2_check(b, 0, &res), 0);
	assert_true(res.corruptions >= 1);
	blk_close(b);
	/* the first free cluster by the refcounts is the L1 table: the write is refused */
	b = blk_open(qt_path("bad.qcow2"), NULL, BLK_O_RDWR);
	assert_non_null(b);
	uint8_t buf[4096];
	memset(buf, 0xcc, sizeof(buf));
	assert_int_equal(blk_pwrite(b, buf, sizeof(buf), 2 << 20), -1);
	blk_close(b);
	assert_int_equal(read_be64(l1off), l1_before);
	/* -r all leaves an image qemu-img finds clean, and writes work again */
	b = blk_open(qt_path("bad.qcow2"), NULL, BLK_O_RDWR);
	assert_non_null(b);
	assert_int_equal(qcow2_check(b, BLK_CHECK_FIX_LEAKS | BLK_CHECK_FIX_ERRORS, &res), 0);
	assert_int_equal(res.corruptions, res.corruptions_fixed);
	assert_int_equal(blk_pwrite(b, buf, sizeof(buf), 2 << 20), 0);
	blk_close(b);
	qt_assert_clean("bad.qcow2");
}

static void backing_problems(void **state)
{
	assert_int_equal(qt_sh("rm -f t.qcow2 && qemu-img create -f qcow2 -b missing.qcow2 -F "
			       "qcow2 -u t.qcow2 1M"),
			 0);
	assert_null(blk_open(qt_path("t.qcow2"), NULL, 0));
	struct blk *b = blk_open(qt_path("t.qcow2"), NULL, BLK_O_NO_BACKING);
	assert_non_null(b);
	blk_close(b);
	/* a chain 70 deep is refused (kite's limit is 64) */
	assert_int_equal(qt_sh("rm -rf deep && mkdir deep && cd deep && qemu-img create -f qcow2 "
			       "d0.qcow2 1M && for i in $(seq 1 70); do qemu-img create -f qcow2 "
			       "-u -b d$((i-1)).qcow2 -F qcow2 d$i.qcow2 1M || exit 1; done"),
			 0);
	assert_null(blk_open(qt_path("deep/d70.qcow2"), NULL, 0));
	b = blk_open(qt_path("deep/d40.qcow2"), NULL, 0);
	assert_non_null(b);
	blk_close(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(bad_headers),	cmocka_unit_test(truncated_files),
	    cmocka_unit_test(unknown_features), cmocka_unit_test(bad_tables),
	    cmocka_unit_test(lying_refcounts),	cmocka_unit_test(backing_problems),
	};
	return cmocka_run_group_tests(tests, qt_setup, qt_teardown);
}
