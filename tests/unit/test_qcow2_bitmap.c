/* Persistent bitmaps while kite writes a qcow2 image: in use on disk from the first write
 * to the close (so a kite that dies leaves them inconsistent, never stale), stored clean at
 * close, untouched by an open that writes nothing. qemu-img is the referee. */
#include "test_qcow2_util.h"

/* qemu-img's view (-U: kite holds the image meanwhile) of bitmap flags: 0 when `flag` shows
 * for the bitmap `name`. */
static int has_flag(const char *img, const char *name, const char *flag)
{
	return qt_sh("qemu-img info -U --output=json '%s' | python3 -c '"
		     "import json,sys; d=json.load(sys.stdin)[\"format-specific\"][\"data\"]; "
		     "sys.exit(0 if any(b[\"name\"]==\"%s\" and \"%s\" in b[\"flags\"] "
		     "for b in d.get(\"bitmaps\",[])) else 1)'",
		     img, name, flag);
}

/* 0 when QEMU reads bitmap `bm` of `img` as dirty exactly on [start, start+len) (qemu-nbd
 * exports the bitmap, qemu-img map shows its dirty extents as "data": false). */
static int dirty_exactly(const char *img, const char *bm, unsigned long start, unsigned long len)
{
	return qt_sh("rm -f s d.txt && qemu-nbd --fork -r -f qcow2 -B '%s' -k $PWD/s '%s' && "
		     "qemu-img map --output=json --image-opts driver=nbd,server.type=unix,"
		     "server.path=$PWD/s,x-dirty-bitmap=qemu:dirty-bitmap:%s | tr -d ' ' | "
		     "grep '\"data\":false' >d.txt; test $(wc -l <d.txt) = 1 && "
		     "grep -q '\"start\":%lu,\"length\":%lu,' d.txt",
		     bm, img, bm, start, len);
}

static void make_image(void)
{
	assert_int_equal(qt_sh("rm -f bm.qcow2 && qemu-img create -f qcow2 bm.qcow2 8M && "
			       "qemu-img bitmap --add bm.qcow2 on && "
			       "qemu-img bitmap --add --disable bm.qcow2 off"),
			 0);
}

static void in_use_from_first_write_to_close(void **state)
{
	make_image();
	struct blk *b = blk_open(qt_path("bm.qcow2"), "qcow2", BLK_O_RDWR);
	assert_non_null(b);
	assert_int_not_equal(has_flag("bm.qcow2", "on", "in-use"), 0);
	uint8_t buf[4096];
	qt_fill(buf, sizeof(buf), 1);
	assert_int_equal(blk_pwrite(b, buf, sizeof(buf), 3 << 20), 0);
	assert_int_equal(has_flag("bm.qcow2", "on", "in-use"), 0);
	assert_int_equal(has_flag("bm.qcow2", "off", "in-use"), 0);
	blk_close(b);
	assert_int_not_equal(has_flag("bm.qcow2", "on", "in-use"), 0);
	assert_int_not_equal(has_flag("bm.qcow2", "off", "in-use"), 0);
	assert_int_equal(has_flag("bm.qcow2", "on", "auto"), 0);
	qt_assert_clean("bm.qcow2");
	/* QEMU reads the write in the enabled bitmap, not in the disabled one */
	assert_int_equal(dirty_exactly("bm.qcow2", "on", 3 << 20, 65536), 0);
	assert_int_not_equal(dirty_exactly("bm.qcow2", "off", 3 << 20, 65536), 0);
}

static void killed_writer_leaves_them_inconsistent(void **state)
{
	make_image();
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct blk *b = blk_open(qt_path("bm.qcow2"), "qcow2", BLK_O_RDWR);
		uint8_t buf[512] = {1};
		_exit(b && blk_pwrite(b, buf, sizeof(buf), 0) == 0 ? 0 : 1); /* no close */
	}
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_int_equal(has_flag("bm.qcow2", "on", "in-use"), 0);
	qt_assert_clean("bm.qcow2");
	assert_int_not_equal(qt_sh("qemu-img bitmap --clear bm.qcow2 on"), 0);
	assert_int_equal(qt_sh("qemu-img bitmap --remove bm.qcow2 on"), 0);
	qt_assert_clean("bm.qcow2");
}

static void open_without_writes_changes_nothing(void **state)
{
	make_image();
	size_t n1, n2;
	uint8_t *before = qt_slurp(qt_path("bm.qcow2"), &n1);
	struct blk *b = blk_open(qt_path("bm.qcow2"), "qcow2", BLK_O_RDWR);
	assert_non_null(b);
	uint8_t buf[512];
	assert_int_equal(blk_pread(b, buf, sizeof(buf), 0), 0);
	blk_close(b);
	uint8_t *after = qt_slurp(qt_path("bm.qcow2"), &n2);
	assert_int_equal(n1, n2);
	assert_memory_equal(before, after, n1);
	free(before);
	free(after);
}

static void kite_made_bitmaps_track_too(void **state)
{
	assert_int_equal(qt_sh("rm -f k.qcow2 && qemu-img create -f qcow2 k.qcow2 8M"), 0);
	struct blk *b = blk_open(qt_path("k.qcow2"), "qcow2", BLK_O_RDWR);
	assert_non_null(b);
	struct blk_bitmap_change add = {.op = BLK_BITMAP_ADD, .granularity = 4096};
	assert_int_equal(blk_bitmap_change(b, "k", &add), 0);
	uint8_t buf[100] = {2};
	assert_int_equal(blk_pwrite(b, buf, sizeof(buf), 5000), 0);
	struct blk_bitmap_change dis = {.op = BLK_BITMAP_DISABLE};
	assert_int_equal(blk_bitmap_change(b, "k", &dis), 0);
	assert_int_equal(blk_pwrite(b, buf, sizeof(buf), 1 << 20), 0);
	blk_close(b);
	qt_assert_clean("k.qcow2");
	assert_int_not_equal(has_flag("k.qcow2", "k", "auto"), 0);
	/* exactly the first write's granule, 4096..8191, is dirty */
	assert_int_equal(dirty_exactly("k.qcow2", "k", 4096, 4096), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(in_use_from_first_write_to_close),
	    cmocka_unit_test(killed_writer_leaves_them_inconsistent),
	    cmocka_unit_test(open_without_writes_changes_nothing),
	    cmocka_unit_test(kite_made_bitmaps_track_too),
	};
	return cmocka_run_group_tests(tests, qt_setup, qt_teardown);
}
