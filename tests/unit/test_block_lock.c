/* Image locks taken by blk_open: within one process readers coexist with one writer (commit
 * reads a chain and writes its base at once); another process (qemu-io, so QEMU is the
 * referee) is refused while it would conflict, and let in again once kite closed the image. */
#include "unit.h"
#include "block/block.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[] = "/tmp/kite-test-lock-XXXXXX";
static char img[300];

static int setup(void **state)
{
	assert_non_null(mkdtemp(dir));
	snprintf(img, sizeof(img), "%s/a.qcow2", dir);
	struct blk_create_opts o = {.size = 1 << 20, .size_set = true};
	assert_int_equal(blk_create(img, "qcow2", &o), 0);
	return 0;
}

static int teardown(void **state)
{
	unlink(img);
	rmdir(dir);
	return 0;
}

/* Whether another process (qemu-io, the referee) may open the image: "-r" reads, "" writes,
 * "-r -U" reads with force-share. 0: it could, 1: it was refused. */
static int qemu_io_opens(const char *opts)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "qemu-io -f qcow2 %s -c 'read 0 512' '%s' >/dev/null 2>&1", opts,
		 img);
	int st = system(cmd);
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st) ? 1 : 0;
}

static void one_process_shares_its_images(void **state)
{
	struct blk *r1 = blk_open(img, "qcow2", BLK_O_RDONLY);
	struct blk *w = blk_open(img, "qcow2", BLK_O_RDWR);
	struct blk *r2 = blk_open(img, "qcow2", BLK_O_RDONLY);
	assert_non_null(r1);
	assert_non_null(w);
	assert_non_null(r2);
	assert_int_equal(blk_pwrite(w, "x", 1, 0), 0);
	blk_close(w);
	blk_close(r1);
	blk_close(r2);
}

static void a_writer_keeps_other_processes_out(void **state)
{
	struct blk *w = blk_open(img, "qcow2", BLK_O_RDWR);
	assert_non_null(w);
	assert_int_equal(qemu_io_opens(""), 1);
	assert_int_equal(qemu_io_opens("-r"), 1);
	assert_int_equal(qemu_io_opens("-r -U"), 0);
	/* a reader of our own that comes and goes leaves the write lock in place */
	struct blk *r = blk_open(img, "qcow2", BLK_O_RDONLY);
	assert_non_null(r);
	blk_close(r);
	assert_int_equal(qemu_io_opens("-r"), 1);
	blk_close(w);
	assert_int_equal(qemu_io_opens(""), 0);
}

static void a_reader_lets_readers_in(void **state)
{
	struct blk *r = blk_open(img, "qcow2", BLK_O_RDONLY);
	assert_non_null(r);
	assert_int_equal(qemu_io_opens("-r"), 0);
	assert_int_equal(qemu_io_opens(""), 1);
	/* our own writer joins the reader; the process as a whole now writes */
	struct blk *w = blk_open(img, "qcow2", BLK_O_RDWR);
	assert_non_null(w);
	blk_close(w);
	assert_int_equal(qemu_io_opens("-r"), 0);
	assert_int_equal(qemu_io_opens(""), 1);
	blk_close(r);
	assert_int_equal(qemu_io_opens(""), 0);
}

/* Two writers of one file, each with its own caches, would corrupt it: as QEMU refuses one
 * image behind two writable nodes, the second is refused, and a reader still joins. */
static void one_process_writes_an_image_once(void **state)
{
	struct blk *w = blk_open(img, "qcow2", BLK_O_RDWR);
	assert_non_null(w);
	assert_null(blk_open(img, "qcow2", BLK_O_RDWR));
	struct blk *r = blk_open(img, "qcow2", BLK_O_RDONLY);
	assert_non_null(r);
	blk_close(w);
	struct blk *w2 = blk_open(img, "qcow2", BLK_O_RDWR);
	assert_non_null(w2);
	blk_close(w2);
	blk_close(r);
}

static void force_share_is_for_readers(void **state)
{
	assert_null(blk_open(img, "qcow2", BLK_O_RDWR | BLK_O_SHARE));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(one_process_shares_its_images),
	    cmocka_unit_test(a_writer_keeps_other_processes_out),
	    cmocka_unit_test(a_reader_lets_readers_in),
	    cmocka_unit_test(one_process_writes_an_image_once),
	    cmocka_unit_test(force_share_is_for_readers),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
