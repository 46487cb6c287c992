/* qcow2 internal snapshots made by kite (qemu-img lists, checks and converts them), check
 * and repair agreeing with qemu-img check, lazy refcounts after a crash, and writers
 * killed at random points leaving at most leaked clusters. */
#include "test_qcow2_util.h"

#include <signal.h>
#include <time.h>

static void fill_write(struct blk *b, uint64_t off, size_t len, unsigned seed)
{
	uint8_t *buf = malloc(len);
	assert_non_null(buf);
	qt_fill(buf, len, seed);
	assert_int_equal(blk_pwrite(b, buf, len, off), 0);
	free(buf);
}

static void snapshot_lifecycle(const char *opts)
{
	print_message("  %s\n", opts);
	assert_int_equal(
	    qt_sh("rm -f s.qcow2 s*.raw && qemu-img create -f qcow2 -o %s s.qcow2 4M", opts), 0);
	struct blk *b = blk_open(qt_path("s.qcow2"), "qcow2", BLK_O_RDWR);
	assert_non_null(b);
	fill_write(b, 0, 1 << 20, 1);
	uint8_t z[65536];
	memset(z, 'z', sizeof(z));
	if (blk_cluster_size(b) <= sizeof(z))
		assert_int_equal(blk_pwrite_compressed(b, z, blk_cluster_size(b), 3 << 20), 0);
	assert_int_equal(qcow2_snapshot_create(b, "first"), 0);
	fill_write(b, 100000, 300000, 2); /* copy-on-write of shared clusters */
	assert_int_equal(qcow2_snapshot_create(b, "second"), 0);
	fill_write(b, 0, 5000, 3);
	fill_write(b, (3 << 20) + 10, 10, 4); /* COW of a shared compressed cluster */
	blk_close(b);
	qt_assert_clean("s.qcow2");
	assert_int_equal(qt_sh("qemu-img snapshot -l s.qcow2 | grep -q first && qemu-img snapshot "
			       "-l s.qcow2 | grep -q second"),
			 0);
	assert_int_equal(
	    qt_sh("qemu-img convert -l first -O raw s.qcow2 s1.raw && qemu-img "
		  "convert -l second -O raw s.qcow2 s2.raw && qemu-img convert -O raw "
		  "s.qcow2 s3.raw && ! cmp -s s1.raw s2.raw && ! cmp -s s2.raw s3.raw"),
	    0);
	b = blk_open(qt_path("s.qcow2"), "qcow2", BLK_O_RDWR);
	assert_non_null(b);
	assert_int_equal(qcow2_snapshot_apply(b, "first"), 0);
	blk_close(b);
	qt_assert_clean("s.qcow2");
	assert_int_equal(qt_sh("qemu-img compare s1.raw s.qcow2"), 0);
	b = blk_open(qt_path("s.qcow2"), "qcow2", BLK_O_RDWR);
	assert_non_null(b);
	assert_int_equal(qcow2_snapshot_delete(b, "first"), 0);
	assert_int_equal(qcow2_snapshot_apply(b, "2"), 0); /* by id */
	assert_int_equal(qcow2_snapshot_apply(b, "nosuch"), -1);
	blk_close(b);
	qt_assert_clean("s.qcow2");
	assert_int_equal(qt_sh("qemu-img compare s2.raw s.qcow2"), 0);
	b = blk_open(qt_path("s.qcow2"), "qcow2", BLK_O_RDWR);
	assert_non_null(b);
	assert_int_equal(qcow2_snapshot_delete(b, "second"), 0);
	const struct qcow2_snapshot *l;
	int n;
	assert_int_equal(qcow2_snapshot_list(b, &l, &n), 0);
	assert_int_equal(n, 0);
	blk_close(b);
	qt_assert_clean("s.qcow2");
	assert_int_equal(qt_sh("qemu-img compare s2.raw s.qcow2"), 0);
	/* with every snapshot gone, all clusters are exclusively owned again */
	assert_int_equal(qt_sh("qemu-img check s.qcow2 | grep -q 'No errors'"), 0);
}

static void snapshots(void **state)
{
	snapshot_lifecycle("compat=1.1");
	snapshot_lifecycle("compat=0.10");
	snapshot_lifecycle("cluster_size=512,refcount_bits=64");
	snapshot_lifecycle("cluster_size=2M");
	snapshot_lifecycle("extended_l2=on");
	/* snapshots need refcounts above 1 */
	assert_int_equal(qt_sh("rm -f s.qcow2 && qemu-img create -f qcow2 -o refcount_bits=1 "
			       "s.qcow2 1M && qemu-io -c 'write 0 64k' s.qcow2"),
			 0);
	struct blk *b = blk_open(qt_path("s.qcow2"), "qcow2", BLK_O_RDWR);
	assert_non_null(b);
	assert_int_equal(qcow2_snapshot_create(b, "x"), -1);
	blk_close(b);
}

static void check_agrees_with_qemu(void **state)
{
	/* leaks: qemu-io writes then aborts with lazy refcounts off can't leak; make some by
	 * raising a refcount by hand */
	assert_int_equal(qt_sh("rm -f c.qcow2 && qemu-img create -f qcow2 c.qcow2 4M && qemu-io -c "
			       "'write -P 1 0 256k' c.qcow2 && truncate -s 2M c.qcow2 && python3 "
			       "-c \"import struct;f=open("
			       "'c.qcow2','r+b');h=f.read(64);rt=struct.unpack('>Q',h[48:56])[0];"
			       "f.seek(rt);rb=struct.unpack('>Q',f.read(8))[0];f.seek(rb+2*20);"
			       "f.write(struct.pack('>H',1));f.seek(rb+2*21);f.write(struct.pack('>"
			       "H',1))\""),
			 0);
	assert_int_equal(qt_sh("qemu-img check c.qcow2"), 3); /* leaks only */
	struct blk *b = blk_open(qt_path("c.qcow2"), NULL, 0);
	assert_non_null(b);
	struct blk_check_result r;
	assert_int_equal(qcow2_check(b, 0, &r), 0);
	assert_int_equal(r.leaks, 2);
	assert_int_equal(r.corruptions, 0);
	assert_int_equal(r.allocated_clusters, 4);
	assert_int_equal(r.total_clusters, 64);
	assert_int_equal(qcow2_check(b, BLK_CHECK_FIX_LEAKS, &r), -1); /* read-only */
	blk_close(b);
	b = blk_open(qt_path("c.qcow2"), NULL, BLK_O_RDWR);
	assert_non_null(b);
	assert_int_equal(qcow2_check(b, BLK_CHECK_FIX_LEAKS, &r), 0);
	assert_int_equal(r.leaks_fixed, 2);
	assert_int_equal(qcow2_check(b, 0, &r), 0);
	assert_int_equal(r.leaks, 0);
	blk_close(b);
	qt_assert_clean("c.qcow2");
	assert_int_equal(qt_sh("! qemu-io -c 'read -P 1 0 256k' c.qcow2 | grep -q -e Pattern -e "
			       "failed"),
			 0);
}

static void dirty_lazy_refcounts(void **state)
{
	/* qemu-io aborts with lazy refcounts: the dirty bit stays, refcounts are stale */
	assert_int_equal(qt_sh("rm -f d.qcow2 && qemu-img create -f qcow2 -o lazy_refcounts=on "
			       "d.qcow2 4M && (qemu-io -c 'write -P 1 0 1M' -c 'write -P 2 2M 64k' "
			       "-c abort d.qcow2; true) && qemu-img info --output=json d.qcow2 | "
			       "grep -q '\"dirty-flag\": true'"),
			 0);
	assert_int_equal(qt_sh("qemu-img check d.qcow2"), 2);
	struct blk *b = blk_open(qt_path("d.qcow2"), NULL, 0); /* read-only: fine */
	assert_non_null(b);
	blk_close(b);
	b = blk_open(qt_path("d.qcow2"), NULL, BLK_O_RDWR); /* read-write: rebuilt */
	assert_non_null(b);
	fill_write(b, 3 << 20, 4096, 5);
	blk_close(b);
	qt_assert_clean("d.qcow2");
	struct blk_info info;
	b = blk_open(qt_path("d.qcow2"), NULL, 0);
	assert_int_equal(blk_get_info(b, &info), 0);
	assert_false(info.dirty);
	assert_true(info.lazy_refcounts);
	blk_close(b);
	assert_int_equal(qt_sh("! qemu-io -c 'read -P 1 0 1M' -c 'read -P 2 2M 64k' d.qcow2 | grep "
			       "-q -e Pattern -e failed"),
			 0);
}

/* A child writes (allocations, COW under a snapshot, zeroes, compression) until killed;
 * whatever reached the file must be a consistent image with at most leaks. */
static void killed_writer(void **state)
{
	srand((unsigned)time(NULL));
	for (int round = 0; round < 12; round++) {
		assert_int_equal(qt_sh("rm -f k.qcow2 && qemu-img create -f qcow2 -o "
				       "cluster_size=4k,refcount_bits=%d k.qcow2 64M && qemu-io "
				       "-c 'write -P 1 0 8M' k.qcow2 && qemu-img snapshot -c s "
				       "k.qcow2",
				       round % 2 ? 16 : 8),
				 0);
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			struct blk *b = blk_open(qt_path("k.qcow2"), NULL, BLK_O_RDWR);
			if (!b)
				_exit(1);
			static uint8_t buf[200000];
			memset(buf, 0x42, sizeof(buf));
			for (unsigned i = 0;; i++) {
				uint64_t off = (uint64_t)(rand() % ((64 << 20) - 200000));
				size_t len = (size_t)(rand() % 200000) + 1;
				if (i % 7 == 3)
					blk_write_zeroes(b, off, len, BLK_ZERO_MAY_UNMAP);
				else if (i % 11 == 5)
					blk_pwrite_compressed(b, buf, 4096, off & ~4095ull);
				else
					blk_pwrite(b, buf, len, off);
				if (i % 50 == 0)
					blk_flush(b);
			}
		}
		struct timespec t = {0, (rand() % 400 + 50) * 1000000L};
		nanosleep(&t, NULL);
		kill(pid, SIGKILL);
		int st;
		waitpid(pid, &st, 0);
		int rc = qt_sh("qemu-img check k.qcow2");
		if (rc != 0 && rc != 3) /* 3: leaked clusters only */
			qt_sh("qemu-img check k.qcow2 >&2");
		assert_true(rc == 0 || rc == 3);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(snapshots),
	    cmocka_unit_test(check_agrees_with_qemu),
	    cmocka_unit_test(dirty_lazy_refcounts),
	    cmocka_unit_test(killed_writer),
	};
	return cmocka_run_group_tests(tests, qt_setup, qt_teardown);
}
