/* kite writes qcow2 images (every creation option, partial and whole clusters, zeroes,
 * discards, compressed clusters, backing files, resizes); qemu-img check finds them clean
 * and qemu-img compare finds the bytes written. */
#include "test_qcow2_util.h"

#include <pthread.h>

#define SIZE  (8u << 20)
#define TWO_M (2u << 20)

/* The same operations on the qcow2 image and on a raw reference. */
static void workload(struct blk *q, struct blk *r, bool compress)
{
	static uint8_t buf[3 << 20];
	struct {
		uint64_t off, len;
	} w[] = {
	    {0, 100},		{100, 5000},	       {65536 - 7, 14},
	    {1 << 20, 3 << 20}, {(1 << 20) + 777, 10}, {SIZE - 10, 10},
	    {4095, 4097},	{7 << 20, 512},
	};
	for (unsigned i = 0; i < sizeof(w) / sizeof(w[0]); i++) {
		qt_fill(buf, w[i].len, i + 1);
		assert_int_equal(blk_pwrite(q, buf, w[i].len, w[i].off), 0);
		assert_int_equal(blk_pwrite(r, buf, w[i].len, w[i].off), 0);
	}
	/* zeroes: unaligned and whole clusters; then data again inside a zeroed range */
	assert_int_equal(blk_write_zeroes(q, 2000, 3000, 0), 0);
	assert_int_equal(blk_write_zeroes(r, 2000, 3000, 0), 0);
	assert_int_equal(blk_write_zeroes(q, TWO_M, TWO_M, BLK_ZERO_MAY_UNMAP), 0);
	assert_int_equal(blk_write_zeroes(r, TWO_M, TWO_M, 0), 0);
	qt_fill(buf, 1000, 99);
	assert_int_equal(blk_pwrite(q, buf, 1000, TWO_M + 12345), 0);
	assert_int_equal(blk_pwrite(r, buf, 1000, TWO_M + 12345), 0);
	/* discard of whole (2M-aligned) clusters reads back as zeros without a backing file */
	assert_int_equal(blk_discard(q, 3 * TWO_M, TWO_M), 0);
	assert_int_equal(blk_write_zeroes(r, 3 * TWO_M, TWO_M, 0), 0);
	if (compress) {
		uint32_t cs = blk_cluster_size(q);
		for (uint64_t o = TWO_M; o < TWO_M + 4 * (uint64_t)cs && o < 2 * TWO_M; o += cs) {
			memset(buf, (int)(o / cs), cs);
			memcpy(buf, "compressible", 12);
			assert_int_equal(blk_pwrite_compressed(q, buf, cs, o), 0);
			assert_int_equal(blk_pwrite(r, buf, cs, o), 0);
		}
		/* partial overwrite of a compressed cluster: copy-on-write from it */
		qt_fill(buf, 100, 7);
		assert_int_equal(blk_pwrite(q, buf, 100, TWO_M + cs + 50), 0);
		assert_int_equal(blk_pwrite(r, buf, 100, TWO_M + cs + 50), 0);
	}
	assert_int_equal(blk_flush(q), 0);
}

static void create_write_verify(const char *what, struct blk_create_opts o, bool compress)
{
	print_message("  %s\n", what);
	o.size = SIZE;
	o.size_set = true;
	assert_int_equal(qt_sh("rm -f w.qcow2 w.raw"), 0);
	assert_int_equal(blk_create(qt_path("w.qcow2"), "qcow2", &o), 0);
	qt_assert_clean("w.qcow2");
	struct blk_create_opts ro = {.size = SIZE, .size_set = true};
	assert_int_equal(blk_create(qt_path("w.raw"), "raw", &ro), 0);
	struct blk *q = blk_open(qt_path("w.qcow2"), "qcow2", BLK_O_RDWR);
	struct blk *r = blk_open(qt_path("w.raw"), "raw", BLK_O_RDWR);
	assert_non_null(q);
	assert_non_null(r);
	workload(q, r, compress);
	blk_close(q);
	blk_close(r);
	qt_assert_clean("w.qcow2");
	assert_int_equal(qt_sh("qemu-img compare -f raw -F qcow2 w.raw w.qcow2"), 0);
	qt_assert_reads_like_qemu("w.qcow2");
}

static void compat_and_features(void **state)
{
	create_write_verify("compat 1.1", (struct blk_create_opts){0}, true);
	create_write_verify("compat 0.10", (struct blk_create_opts){.compat = 2}, true);
	create_write_verify("lazy refcounts", (struct blk_create_opts){.lazy_refcounts = true},
			    false);
	create_write_verify("extended L2", (struct blk_create_opts){.extended_l2 = true}, true);
	create_write_verify("zstd", (struct blk_create_opts){.compression_type = BLK_COMP_ZSTD},
			    true);
}

static void cluster_sizes(void **state)
{
	uint32_t sizes[] = {512, 4096, 65536, 2u << 20};
	for (int i = 0; i < 4; i++)
		create_write_verify("cluster size",
				    (struct blk_create_opts){.cluster_size = sizes[i]}, true);
}

static void refcount_widths(void **state)
{
	int bits[] = {1, 2, 4, 8, 16, 32, 64};
	for (int i = 0; i < 7; i++) {
		/* 512-byte clusters make the refcount table grow several times */
		create_write_verify(
		    "refcount bits",
		    (struct blk_create_opts){.refcount_bits = bits[i], .cluster_size = 512},
		    bits[i] > 1);
	}
}

static void preallocation(void **state)
{
	enum blk_prealloc modes[] = {BLK_PREALLOC_METADATA, BLK_PREALLOC_FALLOC, BLK_PREALLOC_FULL};
	for (int i = 0; i < 3; i++) {
		create_write_verify("prealloc", (struct blk_create_opts){.prealloc = modes[i]},
				    false);
		struct stat st;
		assert_int_equal(stat(qt_path("w.qcow2"), &st), 0);
		assert_true(st.st_size >= SIZE);
		if (modes[i] == BLK_PREALLOC_FULL)
			assert_true((uint64_t)st.st_blocks * 512 >= SIZE);
	}
	assert_int_equal(qt_sh("qemu-img map --output=json w.qcow2 | grep -q '\"data\": true'"), 0);
}

static void options_qemu_reports(void **state)
{
	struct blk_create_opts o = {.size = 1 << 20,
				    .size_set = true,
				    .cluster_size = 16384,
				    .refcount_bits = 64,
				    .lazy_refcounts = true,
				    .compression_type = BLK_COMP_ZSTD,
				    .extended_l2 = true};
	assert_int_equal(blk_create(qt_path("o.qcow2"), "qcow2", &o), 0);
	assert_int_equal(qt_sh("qemu-img info o.qcow2 > info.txt"), 0);
	assert_int_equal(qt_sh("grep -q 'cluster_size: 16384' info.txt && grep -q 'refcount bits: "
			       "64' info.txt && grep -q 'lazy refcounts: true' info.txt && grep -q "
			       "'compression type: zstd' info.txt && grep -q 'extended l2: true' "
			       "info.txt && grep -q 'compat: 1.1' info.txt"),
			 0);
	/* an empty image has no L1 table at all (as qemu-img makes it), and can grow */
	struct blk_create_opts empty = {.size = 0, .size_set = true};
	assert_int_equal(blk_create(qt_path("empty.qcow2"), "qcow2", &empty), 0);
	qt_assert_clean("empty.qcow2");
	struct blk *e = blk_open(qt_path("empty.qcow2"), NULL, BLK_O_RDWR);
	assert_non_null(e);
	assert_int_equal(blk_resize(e, 3 << 20, false), 0);
	uint8_t one[4096];
	memset(one, 1, sizeof(one));
	assert_int_equal(blk_pwrite(e, one, sizeof(one), 2 << 20), 0);
	blk_close(e);
	qt_assert_clean("empty.qcow2");
	struct blk_create_opts bad = {
	    .size = 1 << 20, .size_set = true, .compat = 2, .refcount_bits = 64};
	assert_int_equal(blk_create(qt_path("bad.qcow2"), "qcow2", &bad), -1);
	bad = (struct blk_create_opts){.size = 1 << 20, .size_set = true, .cluster_size = 3000};
	assert_int_equal(blk_create(qt_path("bad.qcow2"), "qcow2", &bad), -1);
	bad = (struct blk_create_opts){
	    .size = 1 << 20, .size_set = true, .extended_l2 = true, .cluster_size = 4096};
	assert_int_equal(blk_create(qt_path("bad.qcow2"), "qcow2", &bad), -1);
}

static void writes_over_backing_chain(void **state)
{
	assert_int_equal(
	    qt_sh("rm -f c0.raw c1.qcow2 c2.qcow2 && qemu-img create -f raw c0.raw 4M "
		  "&& qemu-io -f raw -c 'write -P 1 0 4M' c0.raw && qemu-img create "
		  "-f qcow2 -b c0.raw -F raw c1.qcow2 && qemu-io -c 'write -P 2 1M 1M' "
		  "c1.qcow2"),
	    0);
	struct blk_create_opts o = {.backing_file = "c1.qcow2", .backing_fmt = "qcow2"};
	assert_int_equal(blk_create(qt_path("c2.qcow2"), "qcow2", &o), 0); /* size from c1 */
	assert_int_equal(qt_sh("qemu-img convert -O raw c2.qcow2 exp.raw"), 0);
	struct blk *q = blk_open(qt_path("c2.qcow2"), NULL, BLK_O_RDWR);
	struct blk *r = blk_open(qt_path("exp.raw"), "raw", BLK_O_RDWR);
	assert_non_null(q);
	assert_non_null(r);
	assert_int_equal(blk_size(q), 4 << 20);
	uint8_t buf[70000];
	uint64_t offs[] = {100, (1 << 20) - 50, (2 << 20) + 65000, (4 << 20) - 70000};
	for (int i = 0; i < 4; i++) {
		qt_fill(buf, sizeof(buf), (unsigned)i);
		assert_int_equal(blk_pwrite(q, buf, sizeof(buf), offs[i]), 0);
		assert_int_equal(blk_pwrite(r, buf, sizeof(buf), offs[i]), 0);
	}
	/* zeroes over backing data must read zero, not the backing bytes */
	assert_int_equal(blk_write_zeroes(q, 3 << 20, 1 << 19, BLK_ZERO_MAY_UNMAP), 0);
	assert_int_equal(blk_write_zeroes(r, 3 << 20, 1 << 19, 0), 0);
	blk_close(q);
	blk_close(r);
	qt_assert_clean("c2.qcow2");
	assert_int_equal(qt_sh("qemu-img compare -f raw exp.raw c2.qcow2"), 0);
	assert_int_equal(qt_sh("qemu-img info c2.qcow2 | grep -q 'backing file format: qcow2'"), 0);
	/* v2 image over a backing file: zeroes are written as data */
	assert_int_equal(qt_sh("rm -f c3.qcow2 && qemu-img create -f qcow2 -o compat=0.10 -b "
			       "c1.qcow2 -F qcow2 c3.qcow2"),
			 0);
	q = blk_open(qt_path("c3.qcow2"), NULL, BLK_O_RDWR);
	assert_non_null(q);
	assert_int_equal(blk_write_zeroes(q, 1 << 20, 1 << 20, BLK_ZERO_MAY_UNMAP), 0);
	blk_close(q);
	qt_assert_clean("c3.qcow2");
	assert_int_equal(qt_sh("! qemu-io -c 'read -P 0 1M 1M' -c 'read -P 1 2M 1M' c3.qcow2 | "
			       "grep -q -e Pattern -e failed"),
			 0);
}

static void resize(void **state)
{
	assert_int_equal(qt_sh("rm -f z.qcow2 && qemu-img create -f qcow2 -o cluster_size=512 "
			       "z.qcow2 1M && qemu-io -c 'write -P 3 0 1M' z.qcow2"),
			 0);
	struct blk *q = blk_open(qt_path("z.qcow2"), NULL, BLK_O_RDWR);
	assert_non_null(q);
	/* 512-byte clusters: one L1 entry maps 32 KiB, so growing to 100M grows the L1 table */
	assert_int_equal(blk_resize(q, 100 << 20, false), 0);
	uint8_t buf[4096];
	memset(buf, 4, sizeof(buf));
	assert_int_equal(blk_pwrite(q, buf, sizeof(buf), (100 << 20) - 4096), 0);
	assert_int_equal(blk_resize(q, 1000, false), -1); /* shrinking needs the flag */
	blk_close(q);
	qt_assert_clean("z.qcow2");
	assert_int_equal(qt_sh("qemu-img info z.qcow2 | grep -q '104857600 bytes'"), 0);
	assert_int_equal(qt_sh("! qemu-io -c 'read -P 3 0 1M' -c 'read -P 0 1M 1M' -c 'read -P 4 "
			       "104853504 4k' z.qcow2 | grep -q -e Pattern -e failed"),
			 0);
	q = blk_open(qt_path("z.qcow2"), NULL, BLK_O_RDWR);
	assert_non_null(q);
	assert_int_equal(blk_resize(q, 512 << 10, true), 0);
	blk_close(q);
	qt_assert_clean("z.qcow2");
	assert_int_equal(qt_sh("qemu-img info z.qcow2 | grep -q '524288 bytes'"), 0);
	assert_int_equal(
	    qt_sh("! qemu-io -c 'read -P 3 0 512k' z.qcow2 | grep -q -e Pattern -e failed"), 0);
}

struct ctask {
	struct blk *b;
	const uint8_t *raw;
	uint8_t *out;
	size_t outlen;
	int rc;
};

static void *compress_task(void *arg)
{
	struct ctask *t = arg;
	t->rc = blk_compress_cluster(t->b, t->raw, 65536, t->out, &t->outlen);
	return NULL;
}

/* Clusters compressed in parallel threads, then stored in order (convert -c's way). */
static void parallel_compression(void **state)
{
	for (int type = 0; type < 2; type++) {
		struct blk_create_opts o = {.size = 1 << 20,
					    .size_set = true,
					    .compression_type =
						type ? BLK_COMP_ZSTD : BLK_COMP_ZLIB};
		assert_int_equal(blk_create(qt_path("pc.qcow2"), "qcow2", &o), 0);
		struct blk *b = blk_open(qt_path("pc.qcow2"), NULL, BLK_O_RDWR);
		assert_non_null(b);
		static uint8_t raw[16][65536], out[16][65536];
		struct ctask t[16];
		pthread_t th[16];
		for (int i = 0; i < 16; i++) {
			if (i % 4 == 3)
				for (int k = 0; k < 65536; k++) /* incompressible */
					raw[i][k] = (uint8_t)(rand() >> 7);
			else
				memset(raw[i], 'a' + i, 65536);
			t[i] = (struct ctask){.b = b, .raw = raw[i], .out = out[i]};
			assert_int_equal(pthread_create(&th[i], NULL, compress_task, &t[i]), 0);
		}
		for (int i = 0; i < 16; i++) {
			assert_int_equal(pthread_join(th[i], NULL), 0);
			assert_int_equal(t[i].rc, 0);
			assert_int_equal(t[i].outlen == 0, i % 4 == 3);
			assert_int_equal(blk_pwrite_precompressed(b, out[i], t[i].outlen, raw[i],
								  65536, (uint64_t)i * 65536),
					 0);
		}
		blk_close(b);
		qt_assert_clean("pc.qcow2");
		FILE *f = fopen(qt_path("pc.raw"), "wb");
		assert_non_null(f);
		assert_int_equal(fwrite(raw, 1, sizeof(raw), f), sizeof(raw));
		fclose(f);
		assert_int_equal(qt_sh("qemu-img compare -f raw pc.raw pc.qcow2"), 0);
		assert_int_equal(qt_sh("qemu-img check pc.qcow2 | grep -q '12.*compressed' || "
				       "qemu-img check pc.qcow2 | grep -q '75.00%% compressed'"),
				 0);
	}
}

/* 512-byte clusters filled sequentially: thousands of L2 tables, a refcount table that
 * grows many times; with BLK_O_UNSAFE (convert's mode) as well as safe mode. */
static void many_small_clusters(void **state)
{
	for (int unsafe = 0; unsafe < 2; unsafe++) {
		for (int bits = 1; bits <= 64; bits *= 8) {
			struct blk_create_opts o = {.size = 64 << 20,
						    .size_set = true,
						    .cluster_size = 512,
						    .refcount_bits = bits};
			assert_int_equal(blk_create(qt_path("small.qcow2"), "qcow2", &o), 0);
			struct blk *b = blk_open(qt_path("small.qcow2"), NULL,
						 BLK_O_RDWR | (unsafe ? BLK_O_UNSAFE : 0));
			assert_non_null(b);
			static uint8_t buf[1 << 20];
			uint64_t total = unsafe ? 24 << 20 : 3 << 20;
			for (uint64_t off = 0; off < total; off += sizeof(buf)) {
				qt_fill(buf, sizeof(buf), (unsigned)(off >> 20));
				assert_int_equal(blk_pwrite(b, buf, sizeof(buf), off), 0);
			}
			blk_close(b);
			qt_assert_clean("small.qcow2");
			assert_int_equal(qt_sh("qemu-img convert -O raw small.qcow2 small.raw"), 0);
			size_t n;
			uint8_t *got = qt_slurp(qt_path("small.raw"), &n);
			for (uint64_t off = 0; off < total; off += sizeof(buf)) {
				qt_fill(buf, sizeof(buf), (unsigned)(off >> 20));
				assert_memory_equal(got + off, buf, sizeof(buf));
			}
			free(got);
		}
	}
}

struct wtask {
	struct blk *b;
	unsigned id;
	int failures;
};

/* Each thread owns every 4th 192 KiB stripe: writes, reads back, rewrites a part. */
static void *writer_task(void *arg)
{
	struct wtask *t = arg;
	static __thread uint8_t buf[196608], back[196608];
	for (uint64_t s = t->id; (s + 1) * sizeof(buf) <= (16u << 20); s += 4) {
		qt_fill(buf, sizeof(buf), (unsigned)s);
		if (blk_pwrite(t->b, buf, sizeof(buf), s * sizeof(buf)) < 0 ||
		    blk_pread(t->b, back, sizeof(back), s * sizeof(buf)) < 0 ||
		    memcmp(buf, back, sizeof(buf)))
			t->failures++;
		if (blk_write_zeroes(t->b, s * sizeof(buf) + 1000, 70000, BLK_ZERO_MAY_UNMAP) < 0)
			t->failures++;
	}
	return NULL;
}

/* One struct blk shared by four threads (the hypervisor's I/O workers). */
static void concurrent_writers(void **state)
{
	struct blk_create_opts o = {.size = 16 << 20, .size_set = true, .cluster_size = 4096};
	assert_int_equal(blk_create(qt_path("mt.qcow2"), "qcow2", &o), 0);
	struct blk *b = blk_open(qt_path("mt.qcow2"), NULL, BLK_O_RDWR);
	assert_non_null(b);
	pthread_t th[4];
	struct wtask t[4];
	for (unsigned i = 0; i < 4; i++) {
		t[i] = (struct wtask){.b = b, .id = i};
		assert_int_equal(pthread_create(&th[i], NULL, writer_task, &t[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(t[i].failures, 0);
	}
	blk_close(b);
	qt_assert_clean("mt.qcow2");
	size_t n;
	assert_int_equal(qt_sh("qemu-img convert -O raw mt.qcow2 mt.raw"), 0);
	uint8_t *got = qt_slurp(qt_path("mt.raw"), &n);
	static uint8_t exp[196608];
	uint64_t s = 0;
	for (; (s + 1) * sizeof(exp) <= (16u << 20); s++) {
		qt_fill(exp, sizeof(exp), (unsigned)s);
		memset(exp + 1000, 0, 70000);
		assert_memory_equal(got + s * sizeof(exp), exp, sizeof(exp));
	}
	for (uint64_t o = s * sizeof(exp); o < n; o++) /* the tail nobody wrote */
		assert_int_equal(got[o], 0);
	free(got);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(compat_and_features),
	    cmocka_unit_test(cluster_sizes),
	    cmocka_unit_test(refcount_widths),
	    cmocka_unit_test(preallocation),
	    cmocka_unit_test(options_qemu_reports),
	    cmocka_unit_test(writes_over_backing_chain),
	    cmocka_unit_test(resize),
	    cmocka_unit_test(parallel_compression),
	    cmocka_unit_test(many_small_clusters),
	    cmocka_unit_test(concurrent_writers),
	};
	return cmocka_run_group_tests(tests, qt_setup, qt_teardown);
}
