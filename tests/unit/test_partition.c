/* Partition table parsing over memory: valid MBR/GPT layouts and hostile ones (loops, bad
 * CRCs, absurd entry counts, entries beyond the disk). */
#include "unit.h"

#include "guestfs/dev.h"
#include "guestfs/fsdetect.h"
#include "guestfs/partition.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define DISK (8u << 20)

static uint8_t *disk;

static int mem_pread(void *opaque, void *buf, size_t len, uint64_t off)
{
	memcpy(buf, (uint8_t *)opaque + off, len);
	return 0;
}

static struct gdev dev(void)
{
	struct gdev d = {.opaque = disk, .pread = mem_pread, .size = DISK};
	return d;
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

static void mbr_entry(uint8_t *sector, int i, uint8_t type, uint32_t lba, uint32_t count)
{
	uint8_t *e = sector + 446 + 16 * i;
	e[4] = type;
	put32(e + 8, lba);
	put32(e + 12, count);
	sector[510] = 0x55;
	sector[511] = 0xaa;
}

static int setup(void **state)
{
	disk = calloc(1, DISK);
	return disk ? 0 : -1;
}

static int teardown(void **state)
{
	free(disk);
	return 0;
}

static void empty_disk_has_no_table(void **state)
{
	memset(disk, 0, DISK);
	struct gdev d = dev();
	struct part_table t;
	assert_int_equal(part_scan(&d, &t), 0);
	assert_string_equal(t.scheme, "none");
	assert_int_equal(t.count, 0);
}

/* primary 1, extended 2 holding logicals 5 and 6 */
static void build_mbr(void)
{
	memset(disk, 0, DISK);
	mbr_entry(disk, 0, 0x83, 2048, 4096);
	mbr_entry(disk, 1, 0x05, 8192, 8192);
	uint8_t *ebr1 = disk + 8192 * 512;
	mbr_entry(ebr1, 0, 0x83, 2048, 1024);
	mbr_entry(ebr1, 1, 0x05, 4096, 2048);
	uint8_t *ebr2 = disk + (8192 + 4096) * 512;
	mbr_entry(ebr2, 0, 0x82, 1024, 1024);
}

static void mbr_with_logicals(void **state)
{
	build_mbr();
	struct gdev d = dev();
	struct part_table t;
	assert_int_equal(part_scan(&d, &t), 0);
	assert_string_equal(t.scheme, "mbr");
	assert_int_equal(t.count, 4);
	const struct part *p5 = part_find(&t, 5), *p6 = part_find(&t, 6);
	assert_non_null(p5);
	assert_non_null(p6);
	assert_int_equal(p5->start, (8192 + 2048) * 512ull);
	assert_int_equal(p5->size, 1024 * 512ull);
	assert_int_equal(p6->start, (8192 + 4096 + 1024) * 512ull);
	assert_int_equal(p6->mbr_type, 0x82);
	assert_int_equal(part_find(&t, 2)->kind, PART_EXTENDED);
	part_table_free(&t);
}

static void mbr_loop_is_an_error(void **state)
{
	build_mbr();
	uint8_t *ebr2 = disk + (8192 + 4096) * 512;
	mbr_entry(ebr2, 1, 0x05, 0, 2048); /* back to the first EBR */
	struct gdev d = dev();
	struct part_table t;
	assert_int_equal(part_scan(&d, &t), -1);
	assert_null(t.parts);
}

static void mbr_ebr_outside_extended_is_an_error(void **state)
{
	build_mbr();
	uint8_t *ebr1 = disk + 8192 * 512;
	mbr_entry(ebr1, 1, 0x05, 0x7fffffff, 2048);
	struct gdev d = dev();
	struct part_table t;
	assert_int_equal(part_scan(&d, &t), -1);
}

static void fat_boot_sector_is_not_a_table(void **state)
{
	memset(disk, 0, DISK);
	disk[0] = 0xeb;
	memcpy(disk + 54, "FAT16   ", 8);
	disk[446] = 0x12; /* boot code where entries would be */
	disk[510] = 0x55;
	disk[511] = 0xaa;
	struct gdev d = dev();
	struct part_table t;
	assert_int_equal(part_scan(&d, &t), 0);
	assert_string_equal(t.scheme, "none");
	struct fsinfo fi;
	assert_int_equal(fs_detect(&d, &fi), 0);
	assert_string_equal(fi.type, "vfat");
}

/* A GPT with one entry named "root" at header LBA `lba`, entries at `ent_lba`. */
static void gpt_header(uint64_t lba, uint64_t ent_lba, uint32_t n)
{
	uint8_t *h = disk + lba * 512;
	memset(h, 0, 512);
	memcpy(h, "EFI PART", 8);
	put32(h + 8, 0x10000);
	put32(h + 12, 92);
	put64(h + 24, lba);
	put64(h + 72, ent_lba);
	put32(h + 80, n);
	put32(h + 84, 128);
	uint64_t len = (uint64_t)n * 128; /* hostile counts: checksum what exists */
	if (ent_lba * 512 > DISK || len > DISK - ent_lba * 512)
		len = 0;
	put32(h + 88, (uint32_t)crc32(0, disk + ent_lba * 512, (uInt)len));
	put32(h + 16, (uint32_t)crc32(0, h, 92));
}

static void build_gpt(void)
{
	memset(disk, 0, DISK);
	mbr_entry(disk, 0, 0xee, 1, DISK / 512 - 1);
	uint8_t *e = disk + 2 * 512;
	static const uint8_t linux_fs[16] = {0xaf, 0x3d, 0xc6, 0x0f, 0x83, 0x84, 0x72, 0x47,
					     0x8e, 0x79, 0x3d, 0x69, 0xd8, 0x47, 0x7d, 0xe4};
	memcpy(e, linux_fs, 16);
	e[16] = 1;
	put64(e + 32, 2048);
	put64(e + 40, 4095);
	const char *name = "root";
	for (int i = 0; name[i]; i++)
		e[56 + 2 * i] = (uint8_t)name[i];
	uint64_t last = DISK / 512 - 1;
	memcpy(disk + (last - 32) * 512, e, 128);
	gpt_header(1, 2, 128);
	gpt_header(last, last - 32, 128);
}

static void gpt_valid_and_backup(void **state)
{
	build_gpt();
	struct gdev d = dev();
	struct part_table t;
	assert_int_equal(part_scan(&d, &t), 0);
	assert_string_equal(t.scheme, "gpt");
	assert_int_equal(t.count, 1);
	assert_int_equal(t.parts[0].start, 2048 * 512ull);
	assert_int_equal(t.parts[0].size, 2048 * 512ull);
	assert_string_equal(t.parts[0].name, "root");
	assert_string_equal(t.parts[0].type_guid, "0FC63DAF-8483-4772-8E79-3D69D8477DE4");
	assert_string_equal(part_type_name(&t.parts[0]), "Linux filesystem");
	assert_false(t.used_backup);
	part_table_free(&t);
	disk[512 + 20] ^= 1; /* the primary header's CRC no longer matches */
	assert_int_equal(part_scan(&d, &t), 0);
	assert_true(t.used_backup);
	assert_int_equal(t.count, 1);
	part_table_free(&t);
}

static void gpt_hostile_headers(void **state)
{
	struct gdev d = dev();
	struct part_table t;
	build_gpt();
	gpt_header(1, 2, 0xffffffff); /* absurd entry count, valid CRC */
	memset(disk + (DISK / 512 - 1) * 512, 0, 512);
	assert_int_equal(part_scan(&d, &t), -1);
	build_gpt();
	gpt_header(1, DISK / 512 - 2, 128); /* entries run past the end */
	memset(disk + (DISK / 512 - 1) * 512, 0, 512);
	assert_int_equal(part_scan(&d, &t), -1);
	build_gpt();
	disk[2 * 512 + 56] = 'X'; /* entries CRC mismatch in both copies */
	disk[(DISK / 512 - 33) * 512 + 56] = 'X';
	assert_int_equal(part_scan(&d, &t), -1);
	/* an entry with last < first is skipped, not trusted */
	build_gpt();
	put64(disk + 2 * 512 + 40, 10);
	gpt_header(1, 2, 128);
	assert_int_equal(part_scan(&d, &t), 0);
	assert_int_equal(t.count, 0);
	part_table_free(&t);
}

static void window_refuses_ranges_beyond_the_disk(void **state)
{
	struct gdev d = dev(), w;
	struct gdev_window win;
	assert_int_equal(gdev_window_init(&w, &win, &d, DISK - 512, 1024), -1);
	assert_int_equal(gdev_window_init(&w, &win, &d, UINT64_MAX - 10, 100), -1);
	assert_int_equal(gdev_window_init(&w, &win, &d, 1024, 2048), 0);
	uint8_t buf[16];
	assert_int_equal(gdev_read(&w, buf, 16, 2040), -1);
	assert_int_equal(gdev_read(&w, buf, 8, 2040), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(empty_disk_has_no_table),
	    cmocka_unit_test(mbr_with_logicals),
	    cmocka_unit_test(mbr_loop_is_an_error),
	    cmocka_unit_test(mbr_ebr_outside_extended_is_an_error),
	    cmocka_unit_test(fat_boot_sector_is_not_a_table),
	    cmocka_unit_test(gpt_valid_and_backup),
	    cmocka_unit_test(gpt_hostile_headers),
	    cmocka_unit_test(window_refuses_ranges_beyond_the_disk),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
