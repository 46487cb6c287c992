#include "test_boot_fixture.h"
#include "machine/elf.h"

#include <fcntl.h>
#include <glob.h>

#define MIB (1ULL << 20)

static void loads_segments_at_paddr_and_zeroes_bss(void **state)
{
	struct guest_mem m;
	tmem(&m, 64 * MIB);
	memset(m.base + 0x1000000, 0xAA, 0x10000); /* stale bytes where the bss goes */
	size_t len;
	uint8_t *elf = tvmlinux(0, &len);
	struct elf_image img;
	assert_int_equal(elf_load(&m, elf, len, "k", MIB, &img), 0);
	assert_true(img.is64);
	assert_true(img.linux_note);
	assert_int_equal(img.entry, 0x1000000);
	assert_int_equal(img.pvh_entry, 0);
	assert_int_equal(img.start, 0x1000000);
	assert_int_equal(img.end, 0x1005000);
	assert_memory_equal(m.base + 0x1000000, elf + 0x1000, 8192);
	assert_memory_equal(m.base + 0x1002000, elf + 0x1000 + 8192, 4096);
	for (int i = 0x1003000; i < 0x1005000; i++)
		assert_int_equal(m.base[i], 0);
	assert_int_equal(m.base[0x1005000], 0xAA); /* nothing written past memsz */
	free(elf);
	tmem_free(&m);
}

static void virtual_entry_becomes_physical(void **state)
{
	struct guest_mem m;
	tmem(&m, 32 * MIB);
	uint8_t code[64] = {0x90};
	struct tseg s = {0x200000, 0xffffffff80200000ULL, code, sizeof(code), sizeof(code)};
	size_t len;
	uint8_t *elf = telf(1, 0xffffffff80200010ULL, &s, 1, NULL, 0, &len);
	struct elf_image img;
	assert_int_equal(elf_load(&m, elf, len, "k", MIB, &img), 0);
	assert_int_equal(img.entry, 0x200010);
	free(elf);
	tmem_free(&m);
}

static void pvh_note_64_and_32(void **state)
{
	struct guest_mem m;
	tmem(&m, 8 * MIB);
	uint8_t code[256] = {0xf4};
	struct tseg s = {0x100000, 0x100000, code, sizeof(code), sizeof(code)};
	uint8_t notes[64];
	for (int is64 = 0; is64 <= 1; is64++) {
		size_t nl = tnotes(notes, 0x100020, is64 ? 8 : 4, 0), len;
		uint8_t *elf = telf(is64, 0x100000, &s, 1, notes, nl, &len);
		struct elf_image img;
		assert_int_equal(elf_load(&m, elf, len, "g", MIB, &img), 0);
		assert_int_equal(img.is64, is64);
		assert_false(img.linux_note);
		assert_int_equal(img.pvh_entry, 0x100020);
		assert_memory_equal(m.base + 0x100000, code, sizeof(code));
		free(elf);
	}
	tmem_free(&m);
}

/* Notes in a segment aligned to 8: a "Linux" note (name of 6 bytes: descriptor at 24, not 20),
 * then the PVH note, found only when the 8-byte layout is followed. */
static void notes_aligned_to_8(void **state)
{
	struct guest_mem m;
	tmem(&m, 8 * MIB);
	uint8_t code[64] = {0xf4};
	struct tseg s = {0x100000, 0x100000, code, sizeof(code), sizeof(code)};
	uint8_t notes[56];
	memset(notes, 0, sizeof(notes));
	tput(notes, 6, 4);
	tput(notes + 4, 4, 4);
	tput(notes + 8, 0x100, 4);
	memcpy(notes + 12, "Linux", 6);
	memcpy(notes + 24, "salt", 4);
	tput(notes + 32, 4, 4);
	tput(notes + 36, 4, 4);
	tput(notes + 40, 18, 4);
	memcpy(notes + 44, "Xen", 4);
	tput(notes + 48, 0x100008, 4);
	size_t len;
	uint8_t *elf = telf(1, 0x100000, &s, 1, notes, sizeof(notes), &len);
	tput(elf + 64 + 56 + 48, 8, 8); /* p_align of the PT_NOTE header */
	struct elf_image img;
	assert_int_equal(elf_load(&m, elf, len, "n8", MIB, &img), 0);
	assert_true(img.linux_note);
	assert_int_equal(img.pvh_entry, 0x100008);
	free(elf);
	tmem_free(&m);
}

/* Each malformed variant must fail with -1 and leave guest memory untouched. */
static void expect_reject(uint8_t *elf, size_t len, uint64_t ram)
{
	struct guest_mem m;
	tmem(&m, ram);
	struct elf_image img;
	assert_int_equal(elf_load(&m, elf, len, "bad", MIB, &img), -1);
	for (uint64_t i = 0; i < ram; i += 4096)
		assert_int_equal(m.base[i], 0);
	tmem_free(&m);
}

static void rejects_malformed(void **state)
{
	size_t len;
	uint8_t *elf = tvmlinux(0, &len);
	expect_reject(elf, 40, 20 * MIB);	    /* truncated header */
	expect_reject(elf, 0x1000 + 100, 20 * MIB); /* segment data cut off */
	uint8_t *bad = malloc(len);

	memcpy(bad, elf, len);
	tput(bad + 32, len - 10, 8); /* phoff beyond the file */
	expect_reject(bad, len, 20 * MIB);

	memcpy(bad, elf, len);
	tput(bad + 64 + 8, 0xffffffffffff0000ULL, 8); /* segment offset beyond the file */
	expect_reject(bad, len, 20 * MIB);

	memcpy(bad, elf, len);
	tput(bad + 64 + 32, 0x100000, 8); /* filesz > memsz */
	expect_reject(bad, len, 20 * MIB);

	memcpy(bad, elf, len);
	tput(bad + 64 + 24, 0xfffffffffffff000ULL, 8); /* paddr + memsz overflows */
	expect_reject(bad, len, 20 * MIB);

	memcpy(bad, elf, len);
	tput(bad + 64 + 24, 0x80000, 8); /* below 1 MiB: kite's boot data */
	expect_reject(bad, len, 20 * MIB);

	memcpy(bad, elf, len);
	tput(bad + 18, 40, 2); /* ARM */
	expect_reject(bad, len, 20 * MIB);

	memcpy(bad, elf, len);
	tput(bad + 54, 32, 2); /* wrong phentsize */
	expect_reject(bad, len, 20 * MIB);

	memcpy(bad, elf, len);
	bad[5] = 2; /* big endian */
	expect_reject(bad, len, 20 * MIB);

	/* The note segment is the third program header: claim a huge name. */
	memcpy(bad, elf, len);
	uint64_t note_off = tget(bad + 64 + 2 * 56 + 8, 8);
	tput(bad + note_off, 0x7fffffff, 4);
	expect_reject(bad, len, 20 * MIB);

	memcpy(bad, elf, len);
	tput(bad + 24, 0x5000000, 8); /* entry in no segment */
	expect_reject(bad, len, 20 * MIB);

	expect_reject(elf, len, 16 * MIB + 4096); /* segments end beyond RAM */
	free(bad);
	free(elf);
}

/* Random corruption of a valid ELF: any outcome but a crash or an out-of-bounds access
 * (the ASan build runs this too). */
static void survives_random_corruption(void **state)
{
	size_t len;
	uint8_t *elf = tvmlinux(1, &len);
	uint8_t *bad = malloc(len);
	struct guest_mem m;
	tmem(&m, 32 * MIB);
	srand(12345);
	/* Thousands of expected error lines: keep them out of the test log. */
	fflush(stderr);
	int saved = dup(2), devnull = open("/dev/null", O_WRONLY);
	assert_true(saved >= 0 && devnull >= 0);
	assert_true(dup2(devnull, 2) == 2);
	for (int round = 0; round < 3000; round++) {
		memcpy(bad, elf, len);
		int flips = 1 + rand() % 8;
		for (int i = 0; i < flips; i++) {
			/* Mostly headers and notes, where the parsing happens. */
			size_t at = rand() % 4 ? (size_t)rand() % 0x180
					       : 0x1000 + (size_t)rand() % (len - 0x1000);
			bad[at] = (uint8_t)rand();
		}
		struct elf_image img;
		size_t cut = rand() % 5 ? len : (size_t)rand() % len;
		int r = elf_load(&m, bad, cut, "fuzz", MIB, &img);
		assert_true(r == 0 || r == -1);
	}
	fflush(stderr);
	assert_true(dup2(saved, 2) == 2);
	close(saved);
	close(devnull);
	free(bad);
	free(elf);
	tmem_free(&m);
}

/* The freestanding guests the Makefile builds: each has a PVH entry inside its image. */
static void loads_built_test_guests(void **state)
{
	glob_t g;
	if (glob("build/guests/*.elf", 0, NULL, &g) != 0) {
		skip();
		return;
	}
	for (size_t i = 0; i < g.gl_pathc; i++) {
		FILE *f = fopen(g.gl_pathv[i], "rb");
		assert_non_null(f);
		static uint8_t buf[4 << 20];
		size_t len = fread(buf, 1, sizeof(buf), f);
		fclose(f);
		struct guest_mem m;
		tmem(&m, 64 * MIB);
		struct elf_image img;
		assert_int_equal(elf_load(&m, buf, len, g.gl_pathv[i], MIB, &img), 0);
		assert_true(img.pvh_entry >= img.start && img.pvh_entry < img.end);
		tmem_free(&m);
	}
	globfree(&g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(loads_segments_at_paddr_and_zeroes_bss),
	    cmocka_unit_test(virtual_entry_becomes_physical),
	    cmocka_unit_test(pvh_note_64_and_32),
	    cmocka_unit_test(notes_aligned_to_8),
	    cmocka_unit_test(rejects_malformed),
	    cmocka_unit_test(survives_random_corruption),
	    cmocka_unit_test(loads_built_test_guests),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
