/* A snapshot's VM state in the qcow2 VM state area (block/qcow2_vmstate.c): bytes with
 * holes and zero clusters go in and come back out exactly, past the disk's end as QEMU
 * places them (qemu-img lists the VM SIZE, checks the image clean, and reads the disk
 * unchanged), across several L2 tables; the active disk owns none of it afterwards, and a
 * delete leaves no leaked cluster. */
#include "test_qcow2_util.h"

#define STATE_LEN ((3u << 20) + 123)

/* The state: random runs, an explicit zero run and a hole (never written). */
static void make_state(const char *path, uint8_t *want)
{
	memset(want, 0, STATE_LEN);
	qt_fill(want, 200000, 7);
	qt_fill(want + (2u << 20), STATE_LEN - (2u << 20), 8);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, STATE_LEN), 0);
	assert_int_equal(pwrite(fd, want, 300000, 0), 300000); /* 100000 zero bytes written */
	assert_int_equal(pwrite(fd, want + (2u << 20), STATE_LEN - (2u << 20), 2u << 20),
			 (ssize_t)(STATE_LEN - (2u << 20)));
	close(fd);
}

static void round_trip(const char *opts)
{
	print_message("  %s\n", opts);
	assert_int_equal(qt_sh("rm -f v.qcow2 disk*.raw && qemu-img create -f qcow2 -o %s "
			       "v.qcow2 3M && qemu-io -c 'write -P 0x5a 0 1M' v.qcow2 && "
			       "qemu-img convert -O raw v.qcow2 disk0.raw",
			       opts),
			 0);
	uint8_t *want = malloc(STATE_LEN), *got = malloc(STATE_LEN);
	assert_non_null(want);
	assert_non_null(got);
	make_state(qt_path("state.in"), want);
	struct blk *b = blk_open(qt_path("v.qcow2"), "qcow2", BLK_O_RDWR);
	assert_non_null(b);
	int fd = open(qt_path("state.in"), O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(blk_snapshot_create_vmstate(b, "vm", fd, STATE_LEN, 5000000000ull), 0);
	close(fd);
	assert_int_equal(blk_snapshot_create_vmstate(b, "vm2", -1, 0, 0), -1); /* no state */
	blk_close(b);
	qt_assert_clean("v.qcow2");
	assert_int_equal(qt_sh("qemu-img snapshot -l v.qcow2 | grep -E ' vm +3 MiB .* "
			       "00:00:05.000 '"),
			 0);
	assert_int_equal(qt_sh("qemu-img compare disk0.raw v.qcow2"), 0);
	/* The disk goes on; the state stays the snapshot's. */
	assert_int_equal(qt_sh("qemu-io -c 'write -P 0x6b 0 2M' v.qcow2"), 0);
	b = blk_open(qt_path("v.qcow2"), "qcow2", BLK_O_RDWR);
	assert_non_null(b);
	fd = open(qt_path("state.out"), O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	uint64_t size = 0;
	assert_int_equal(blk_snapshot_read_vmstate(b, "vm", fd, &size), 0);
	assert_int_equal(size, STATE_LEN);
	memset(got, 0xee, STATE_LEN);
	assert_int_equal(pread(fd, got, STATE_LEN, 0), (ssize_t)STATE_LEN);
	assert_memory_equal(got, want, STATE_LEN);
	close(fd);
	assert_int_equal(blk_snapshot_delete(b, "vm"), 0);
	blk_close(b);
	qt_assert_clean("v.qcow2");
	assert_int_equal(qt_sh("qemu-img check v.qcow2 | grep -q 'No errors'"), 0);
	free(want);
	free(got);
}

static void vmstate_round_trip(void **state)
{
	round_trip("cluster_size=65536");
	round_trip("cluster_size=4096,compat=0.10"); /* 2 MiB per L2 table: the state spans 2 */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(vmstate_round_trip),
	};
	return cmocka_run_group_tests(tests, qt_setup, qt_teardown);
}
