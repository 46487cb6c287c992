/* The multiboot v1 loader (machine/boot_multiboot.c) through kernel_load(): header detection, the
 * a.out kludge and ELF32 loading, modules, the multiboot information, the entry state, and the
 * refusals, each with the message a user sees. */
#include "test_boot_fixture.h"
#include "machine/boot.h"
#include "machine/boot_multiboot.h"

#include <fcntl.h>

#define MIB (1ULL << 20)

static uint64_t rd(const struct guest_mem *m, uint64_t gpa, int n)
{
	const uint8_t *p = gmem_ptr(m, gpa, (uint64_t)n);
	assert_non_null(p);
	return tget(p, n);
}

static const char *rds(const struct guest_mem *m, uint64_t gpa)
{
	const char *s = gmem_ptr(m, gpa, 1);
	assert_non_null(s);
	return s;
}

/* A multiboot header at `p`: magic, flags, checksum, then the five address fields. */
static void mb_header(uint8_t *p, uint32_t flags, uint32_t header_addr, uint32_t load_addr,
		      uint32_t load_end, uint32_t bss_end, uint32_t entry)
{
	tput(p, MB_HEADER_MAGIC, 4);
	tput(p + 4, flags, 4);
	tput(p + 8, (uint32_t) - (MB_HEADER_MAGIC + flags), 4);
	tput(p + 12, header_addr, 4);
	tput(p + 16, load_addr, 4);
	tput(p + 20, load_end, 4);
	tput(p + 24, bss_end, 4);
	tput(p + 28, entry, 4);
}

/* A flat kernel of 8 KiB loaded at 2 MiB with the header at offset 0x40, .bss to 2 MiB + 12
 * KiB, entered at 2 MiB + 0x80; bytes i*3. */
#define FLAT_LOAD  0x200000u
#define FLAT_LEN   8192u
#define FLAT_BSS   (FLAT_LOAD + 0x3000u)
#define FLAT_ENTRY (FLAT_LOAD + 0x80u)
static uint8_t *flat_kernel(uint32_t flags)
{
	uint8_t *b = malloc(FLAT_LEN);
	assert_non_null(b);
	for (size_t i = 0; i < FLAT_LEN; i++)
		b[i] = (uint8_t)(i * 3);
	mb_header(b + 0x40, flags | MB_FLAG_ADDRESSES, FLAT_LOAD + 0x40, FLAT_LOAD, 0, FLAT_BSS,
		  FLAT_ENTRY);
	return b;
}

/* Runs kernel_load with stderr captured; returns its result, the message in `err`. */
static int load_capture(struct guest_mem *m, const char *k, const char *initrd, const char *cmd,
			struct boot_info *bi, char *err, size_t errsz)
{
	char path[] = "/tmp/kite-mb-err-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	fflush(stderr);
	int saved = dup(2);
	assert_true(saved >= 0 && dup2(fd, 2) == 2);
	int r = kernel_load(m, k, initrd, cmd, bi);
	fflush(stderr);
	assert_true(dup2(saved, 2) == 2);
	close(saved);
	ssize_t n = pread(fd, err, errsz - 1, 0);
	err[n > 0 ? n : 0] = '\0';
	close(fd);
	unlink(path);
	return r;
}

/* kernel_load fails and says `want`. */
static void refused(const uint8_t *file, size_t len, const char *initrd, const char *want)
{
	struct guest_mem m;
	tmem(&m, 64 * MIB);
	char *k = twrite_temp(file, len);
	struct boot_info bi;
	char err[2048];
	assert_int_equal(load_capture(&m, k, initrd, "", &bi, err, sizeof(err)), -1);
	if (!strstr(err, want) || strncmp(err, "kite: error: ", 13) != 0)
		fail_msg("wanted \"%s\" in: %s", want, err);
	tremove(k);
	tmem_free(&m);
}

static void find_header(void **state)
{
	uint8_t b[MB_SEARCH_BYTES + 64];
	memset(b, 0, sizeof(b));
	struct mb_header h;
	assert_false(multiboot_find(b, sizeof(b), &h));
	mb_header(b + 0x1000, 0x3, 0, 0, 0, 0, 0);
	assert_true(multiboot_find(b, sizeof(b), &h));
	assert_int_equal(h.offset, 0x1000);
	assert_int_equal(h.flags, 3);
	assert_true(h.has_addresses);
	/* A wrong checksum is no header; neither is one off the 4-byte grid. */
	b[0x1008] ^= 1;
	assert_false(multiboot_find(b, sizeof(b), &h));
	memset(b, 0, sizeof(b));
	mb_header(b + 0x1002, 0x3, 0, 0, 0, 0, 0);
	assert_false(multiboot_find(b, sizeof(b), &h));
	/* Past the first 8 KiB. */
	memset(b, 0, sizeof(b));
	mb_header(b + MB_SEARCH_BYTES, 0x3, 0, 0, 0, 0, 0);
	assert_false(multiboot_find(b, sizeof(b), &h));
	/* The last place a 12-byte header fits: found, its address fields cut off. */
	memset(b, 0, sizeof(b));
	mb_header(b + MB_SEARCH_BYTES - 12, 0x3, 0, 0, 0, 0, 0);
	assert_true(multiboot_find(b, sizeof(b), &h));
	assert_false(h.has_addresses);
}

static void aout_kludge_info_and_entry(void **state)
{
	struct guest_mem m;
	tmem(&m, 64 * MIB);
	uint8_t *file = flat_kernel(MB_FLAG_MEMORY_INFO | MB_FLAG_PAGE_ALIGN);
	char *k = twrite_temp(file, FLAT_LEN);
	struct boot_info bi;
	assert_int_equal(kernel_load(&m, k, NULL, "a=1 b", &bi), 0);
	assert_int_equal(bi.kind, KERNEL_MULTIBOOT);
	assert_int_equal(bi.mode, BOOT_MULTIBOOT32);
	assert_int_equal(bi.kernel_start, FLAT_LOAD);
	assert_int_equal(bi.kernel_end, FLAT_BSS);
	/* The file's bytes, then zeros. */
	assert_memory_equal(gmem_ptr(&m, FLAT_LOAD, FLAT_LEN), file, FLAT_LEN);
	for (uint64_t a = FLAT_LOAD + FLAT_LEN; a < FLAT_BSS; a += 512)
		assert_int_equal(rd(&m, a, 8), 0);
	/* Entry state: EAX magic, EBX info, flat 32-bit, paging off. */
	assert_int_equal(bi.cpu.rip, FLAT_ENTRY);
	assert_int_equal(bi.cpu.rax, MB_BOOT_MAGIC);
	assert_int_equal(bi.cpu.rbx, BOOT_MB_INFO_ADDR);
	assert_int_equal(bi.cpu.cr0 & 0x80000001, 1);
	assert_int_equal(bi.cpu.efer, 0);
	assert_int_equal(bi.cpu.rflags & 0x200, 0);
	assert_int_equal(bi.cpu.cs.db, 1);
	assert_int_equal(bi.cpu.cs.l, 0);
	assert_int_equal(bi.cpu.cs.base, 0);
	assert_int_equal(bi.cpu.cs.limit, 0xffffffff);
	assert_int_equal(bi.cpu.ds.db, 1);
	/* The information. */
	uint64_t mi = BOOT_MB_INFO_ADDR;
	assert_int_equal(rd(&m, mi + MBI_FLAGS, 4), MBI_HAS_MEMORY | MBI_HAS_CMDLINE |
							MBI_HAS_MODS | MBI_HAS_MMAP |
							MBI_HAS_LOADER_NAME);
	assert_int_equal(rd(&m, mi + MBI_MEM_LOWER, 4), 639);
	assert_int_equal(rd(&m, mi + MBI_MEM_UPPER, 4), 63 * 1024);
	char want[4200];
	snprintf(want, sizeof(want), "%s a=1 b", k);
	assert_string_equal(rds(&m, rd(&m, mi + MBI_CMDLINE, 4)), want);
	assert_int_equal(rd(&m, mi + MBI_MODS_COUNT, 4), 0);
	assert_string_equal(rds(&m, rd(&m, mi + MBI_BOOT_LOADER_NAME, 4)), "kite");
	/* Memory map: the e820 map, each entry's size 20. */
	uint64_t mm = rd(&m, mi + MBI_MMAP_ADDR, 4);
	assert_int_equal(rd(&m, mi + MBI_MMAP_LENGTH, 4), 3 * 24);
	const uint64_t want_map[3][3] = {
	    {0, 0x9fc00, 1}, {0x9fc00, 0x60400, 2}, {MIB, 63 * MIB, 1}};
	for (int i = 0; i < 3; i++) {
		assert_int_equal(rd(&m, mm + i * 24, 4), 20);
		assert_int_equal(rd(&m, mm + i * 24 + 4, 8), want_map[i][0]);
		assert_int_equal(rd(&m, mm + i * 24 + 12, 8), want_map[i][1]);
		assert_int_equal(rd(&m, mm + i * 24 + 20, 4), want_map[i][2]);
	}
	/* An empty command line: "KERNEL ", as QEMU gives it. */
	memset(m.base, 0, 64 * MIB);
	assert_int_equal(kernel_load(&m, k, NULL, NULL, &bi), 0);
	snprintf(want, sizeof(want), "%s ", k);
	assert_string_equal(rds(&m, rd(&m, mi + MBI_CMDLINE, 4)), want);
	free(file);
	tremove(k);
	tmem_free(&m);
}

static void modules_in_order_page_aligned(void **state)
{
	struct guest_mem m;
	tmem(&m, 64 * MIB);
	uint8_t *file = flat_kernel(0);
	char *k = twrite_temp(file, FLAT_LEN);
	uint8_t a[5000], b[3];
	for (size_t i = 0; i < sizeof(a); i++)
		a[i] = (uint8_t)(i * 7 + 1);
	memcpy(b, "xyz", 3);
	char *pa = twrite_temp(a, sizeof(a)), *pb = twrite_temp(b, sizeof(b));
	char *empty = twrite_temp("", 0);
	char list[1000];
	snprintf(list, sizeof(list), "%s one two,%s,%s x,,y", pa, pb, empty);
	struct boot_info bi;
	assert_int_equal(kernel_load(&m, k, list, "", &bi), 0);
	assert_int_equal(bi.mb_modules, 3);
	uint64_t mi = BOOT_MB_INFO_ADDR, mods = rd(&m, mi + MBI_MODS_ADDR, 4);
	assert_int_equal(rd(&m, mi + MBI_MODS_COUNT, 4), 3);
	uint64_t s0 = rd(&m, mods, 4), e0 = rd(&m, mods + 4, 4);
	uint64_t s1 = rd(&m, mods + 16, 4), e1 = rd(&m, mods + 20, 4);
	uint64_t s2 = rd(&m, mods + 32, 4), e2 = rd(&m, mods + 36, 4);
	assert_int_equal(s0, FLAT_BSS); /* the first page after the kernel's .bss */
	assert_int_equal(e0, s0 + sizeof(a));
	assert_int_equal(s1, (e0 + 4095) & ~4095ULL);
	assert_int_equal(e1, s1 + 3);
	assert_int_equal(s2, (e1 + 4095) & ~4095ULL);
	assert_int_equal(e2, s2);
	assert_memory_equal(gmem_ptr(&m, s0, sizeof(a)), a, sizeof(a));
	assert_memory_equal(gmem_ptr(&m, s1, 3), "xyz", 3);
	char want[1000];
	snprintf(want, sizeof(want), "%s one two", pa);
	assert_string_equal(rds(&m, rd(&m, mods + 8, 4)), want);
	assert_string_equal(rds(&m, rd(&m, mods + 24, 4)), pb);
	snprintf(want, sizeof(want), "%s x,y", empty); /* ",," is a comma */
	assert_string_equal(rds(&m, rd(&m, mods + 40, 4)), want);
	free(file);
	tremove(k);
	tremove(pa);
	tremove(pb);
	tremove(empty);
	tmem_free(&m);
}

/* An ELF32 multiboot kernel with one segment at `paddr`, entry at its start. */
static uint8_t *elf32_kernel(uint64_t paddr, size_t memsz, size_t *len)
{
	static uint8_t text[0x2000];
	memset(text, 0x90, sizeof(text));
	mb_header(text, MB_FLAG_MEMORY_INFO, 0, 0, 0, 0, 0);
	struct tseg s = {paddr, paddr, text, sizeof(text), memsz};
	return telf(0, paddr + 0x40, &s, 1, NULL, 0, len);
}

static void elf32_loads_below_1mib(void **state)
{
	struct guest_mem m;
	tmem(&m, 64 * MIB);
	size_t len;
	uint8_t *file = elf32_kernel(0x8000, 0x4000, &len);
	char *k = twrite_temp(file, len);
	struct boot_info bi;
	assert_int_equal(kernel_load(&m, k, NULL, "x", &bi), 0);
	assert_int_equal(bi.kind, KERNEL_MULTIBOOT);
	assert_int_equal(bi.kernel_start, 0x8000);
	assert_int_equal(bi.kernel_end, 0xc000);
	assert_int_equal(bi.cpu.rip, 0x8040);
	assert_int_equal(rd(&m, 0x8000, 4), MB_HEADER_MAGIC);
	free(file);
	tremove(k);
	tmem_free(&m);
}

static void elf32_over_boot_area_names_it(void **state)
{
	size_t len;
	uint8_t *file = elf32_kernel(0x1f000, 0x2000, &len);
	refused(file, len, NULL,
		"overlaps kite's boot area: the command line and module strings at "
		"0x20000-0x2ffff");
	free(file);
	file = elf32_kernel(0x5000, 0x2000, &len);
	refused(file, len, NULL, "the multiboot information at 0x6000-0x6fff");
	free(file);
	file = elf32_kernel(0x9f000, 0x2000, &len);
	refused(file, len, NULL, "the EBDA and ACPI tables");
	free(file);
}

static void elf64_with_header(void **state)
{
	/* No PVH note: refused, not taken for a Linux vmlinux. */
	static uint8_t text[0x1000];
	mb_header(text, 0, 0, 0, 0, 0, 0);
	struct tseg s = {0x100000, 0x100000, text, sizeof(text), sizeof(text)};
	size_t len;
	uint8_t *file = telf(1, 0x100040, &s, 1, NULL, 0, &len);
	refused(file, len, NULL, "a 64-bit ELF with a multiboot header");
	free(file);
	/* With a PVH note: entered through PVH. */
	uint8_t notes[64];
	size_t nl = tnotes(notes, 0x100080, 4, 0);
	file = telf(1, 0x100040, &s, 1, notes, nl, &len);
	struct guest_mem m;
	tmem(&m, 64 * MIB);
	char *k = twrite_temp(file, len);
	struct boot_info bi;
	assert_int_equal(kernel_load(&m, k, NULL, NULL, &bi), 0);
	assert_int_equal(bi.kind, KERNEL_ELF_PVH);
	assert_int_equal(bi.mode, BOOT_PVH32);
	assert_int_equal(bi.cpu.rip, 0x100080);
	free(file);
	tremove(k);
	tmem_free(&m);
	/* With flag 16: the header's addresses, whatever the ELF says. */
	uint8_t *flat = flat_kernel(0);
	memcpy(flat, "\177ELF", 4);
	flat[4] = 2;
	char *k2 = twrite_temp(flat, FLAT_LEN);
	tmem(&m, 64 * MIB);
	assert_int_equal(kernel_load(&m, k2, NULL, NULL, &bi), 0);
	assert_int_equal(bi.kind, KERNEL_MULTIBOOT);
	assert_int_equal(bi.cpu.rip, FLAT_ENTRY);
	free(flat);
	tremove(k2);
	tmem_free(&m);
}

/* The flat kernel with one header field changed (the checksum kept). */
static void refused_flat(uint32_t flags, int field, uint32_t value, const char *want)
{
	uint8_t *b = flat_kernel(0);
	uint8_t *h = b + 0x40;
	flags |= (uint32_t)tget(h + 4, 4);
	tput(h + 4, flags, 4);
	tput(h + 8, (uint32_t) - (MB_HEADER_MAGIC + flags), 4);
	if (field)
		tput(h + field, value, 4);
	refused(b, FLAT_LEN, NULL, want);
	free(b);
}

static void malformed_headers_refused(void **state)
{
	refused_flat(MB_FLAG_VIDEO_MODE, 0, 0, "asks for a video mode");
	refused_flat(1u << 5, 0, 0, "requires features kite does not know");
	/* header_addr below load_addr; load_addr before the file's start. */
	refused_flat(0, 12, FLAT_LOAD - 4, "header_addr 0x1ffffc lies below load_addr");
	refused_flat(0, 16, FLAT_LOAD - 0x1000, "before the file begins");
	/* load_end_addr below load_addr, past the end of the file. */
	refused_flat(0, 20, FLAT_LOAD - 1, "load_end_addr 0x1fffff lies below load_addr");
	refused_flat(0, 20, FLAT_LOAD + FLAT_LEN + 1, "the file has 8192 bytes");
	/* bss_end_addr inside the loaded bytes. */
	refused_flat(0, 24, FLAT_LOAD + 16, "bss_end_addr 0x200010 lies below the end");
	/* Entry outside the image. */
	refused_flat(0, 28, FLAT_BSS, "entry_addr 0x203000 lies outside the image");
	refused_flat(0, 28, 0x100, "lies outside the image");
}

static void addresses_outside_ram_refused(void **state)
{
	/* The image past the end of 64 MiB of RAM, or past 4 GiB. */
	uint8_t *b = flat_kernel(0);
	mb_header(b + 0x40, MB_FLAG_ADDRESSES, 0x7f000040, 0x7f000000, 0, 0x7f003000, 0x7f000080);
	refused(b, FLAT_LEN, NULL, "does not fit in 64 MiB of guest RAM");
	mb_header(b + 0x40, MB_FLAG_ADDRESSES, 0xfffff040, 0xfffff000, 0, 0, 0xfffff080);
	refused(b, FLAT_LEN, NULL, "goes past 4 GiB");
	/* Over kite's boot area. */
	mb_header(b + 0x40, MB_FLAG_ADDRESSES, 0x20040, 0x20000, 0, 0, 0x20080);
	refused(b, FLAT_LEN, NULL, "the command line and module strings at 0x20000-0x2ffff");
	free(b);
	/* Flag 16 with the address fields cut off by the end of the file. */
	uint8_t whole[32];
	mb_header(whole, MB_FLAG_ADDRESSES, 0, 0, 0, 0, 0);
	refused(whole, 16, NULL, "its address fields lie past the first 8 KiB or the end");
	/* No flag 16 and not an ELF. */
	uint8_t flat[64] = {0};
	mb_header(flat, 0, 0, 0, 0, 0, 0);
	refused(flat, sizeof(flat), NULL, "not an ELF: kite cannot tell where to load it");
}

static void module_list_refusals(void **state)
{
	uint8_t *b = flat_kernel(0);
	/* A module that is not there, an empty module name, too big for RAM. */
	refused(b, FLAT_LEN, "/nonexistent/mod", "/nonexistent/mod");
	char *one = twrite_temp("m", 1);
	char list[600];
	snprintf(list, sizeof(list), "%s,", one);
	refused(b, FLAT_LEN, list, "boot module 2 has no file name");
	int fd = open(one, O_WRONLY);
	assert_true(fd >= 0 && ftruncate(fd, 80 * MIB) == 0);
	close(fd);
	refused(b, FLAT_LEN, one, "multiboot module 0");
	refused(b, FLAT_LEN, one, "does not fit in guest RAM below 4 GiB");
	tremove(one);
	free(b);
}

static void strings_past_their_area_refused(void **state)
{
	uint8_t *b = flat_kernel(0);
	char *cmd = malloc(BOOT_CMDLINE_MAX);
	assert_non_null(cmd);
	memset(cmd, 'x', BOOT_CMDLINE_MAX - 1);
	cmd[BOOT_CMDLINE_MAX - 1] = '\0';
	struct guest_mem m;
	tmem(&m, 64 * MIB);
	char *k = twrite_temp(b, FLAT_LEN);
	struct boot_info bi;
	char err[1024];
	assert_int_equal(load_capture(&m, k, NULL, cmd, &bi, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "command line and module strings take more than"));
	free(cmd);
	free(b);
	tremove(k);
	tmem_free(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(find_header),
	    cmocka_unit_test(aout_kludge_info_and_entry),
	    cmocka_unit_test(modules_in_order_page_aligned),
	    cmocka_unit_test(elf32_loads_below_1mib),
	    cmocka_unit_test(elf32_over_boot_area_names_it),
	    cmocka_unit_test(elf64_with_header),
	    cmocka_unit_test(malformed_headers_refused),
	    cmocka_unit_test(addresses_outside_ram_refused),
	    cmocka_unit_test(module_list_refusals),
	    cmocka_unit_test(strings_past_their_area_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
