#include "test_boot_fixture.h"
#include "machine/acpi.h"
#include "machine/boot.h"
#include "machine/boot_cpu.h"
#include "machine/boot_initrd.h"
#include "machine/e820.h"

#define KIB (1ULL << 10)
#define MIB (1ULL << 20)
#define GIB (1ULL << 30)

static void check_e820(uint64_t ram, const struct e820_entry *want, int nwant)
{
	struct guest_mem m;
	gmem_init_from(&m, (uint8_t *)0x10000000, ram); /* sizes only: never dereferenced */
	struct e820_entry e[E820_MAX];
	int n = e820_build(&m, e, E820_MAX);
	assert_int_equal(n, nwant);
	for (int i = 0; i < n; i++) {
		assert_int_equal(e[i].addr, want[i].addr);
		assert_int_equal(e[i].size, want[i].size);
		assert_int_equal(e[i].type, want[i].type);
	}
}

static void e820_64m_3584m_8g(void **state)
{
	const struct e820_entry small[] = {
	    {0, 0x9fc00, 1}, {0x9fc00, 0x60400, 2}, {MIB, 63 * MIB, 1}};
	check_e820(64 * MIB, small, 3);
	const struct e820_entry mid[] = {
	    {0, 0x9fc00, 1}, {0x9fc00, 0x60400, 2}, {MIB, 3 * GIB - MIB, 1}, {4 * GIB, GIB / 2, 1}};
	check_e820(3 * GIB + GIB / 2, mid, 4);
	const struct e820_entry big[] = {
	    {0, 0x9fc00, 1}, {0x9fc00, 0x60400, 2}, {MIB, 3 * GIB - MIB, 1}, {4 * GIB, 5 * GIB, 1}};
	check_e820(8 * GIB, big, 4);
}

static void initrd_placement(void **state)
{
	struct guest_mem m;
	uint64_t a;
	gmem_init_from(&m, (uint8_t *)0x10000000, 64 * MIB);
	struct initrd_limits l = {.min_addr = 0x1005000, .addr_max = 0x37ffffff};
	assert_int_equal(initrd_place(&m, 4 * MIB + 5, &l, &a), 0);
	assert_int_equal(a, (64 * MIB - 4 * MIB - 5) & ~4095ULL);
	assert_int_equal(a % 4096, 0);
	assert_true(a + 4 * MIB + 5 <= 64 * MIB);
	/* The largest that fits, and one page more. */
	assert_int_equal(initrd_place(&m, 64 * MIB - 0x1005000, &l, &a), 0);
	assert_int_equal(a, 0x1005000);
	assert_int_equal(initrd_place(&m, 64 * MIB - 0x1005000 + 4096, &l, &a), -1);

	/* 2 GiB: initrd_addr_max caps it. */
	gmem_init_from(&m, (uint8_t *)0x10000000, 2 * GIB);
	assert_int_equal(initrd_place(&m, 10 * MIB, &l, &a), 0);
	assert_int_equal(a, 0x38000000 - 10 * MIB);
	/* 8 GiB with CAN_BE_LOADED_ABOVE_4G: top of high RAM. */
	gmem_init_from(&m, (uint8_t *)0x10000000, 8 * GIB);
	l.above_4g = true;
	assert_int_equal(initrd_place(&m, 10 * MIB, &l, &a), 0);
	assert_int_equal(a, 9 * GIB - 10 * MIB);
	/* Without it: below initrd_addr_max even with 8 GiB. */
	l.above_4g = false;
	assert_int_equal(initrd_place(&m, 10 * MIB, &l, &a), 0);
	assert_int_equal(a, 0x38000000 - 10 * MIB);
	assert_int_equal(initrd_place(&m, 0x38000000, &l, &a), -1);
}

static char *write_vmlinux(int pvh_note)
{
	size_t len;
	uint8_t *elf = tvmlinux(pvh_note, &len);
	char *path = twrite_temp(elf, len);
	free(elf);
	return path;
}

static uint64_t rd(const struct guest_mem *m, uint64_t gpa, int n)
{
	const uint8_t *p = gmem_ptr(m, gpa, (uint64_t)n);
	assert_non_null(p);
	return tget(p, n);
}

/* Walks kite's page tables like the MMU: returns the physical address for `va`. */
static uint64_t translate(const struct guest_mem *m, uint64_t cr3, uint64_t va)
{
	uint64_t pml4e = rd(m, cr3 + ((va >> 39) & 511) * 8, 8);
	assert_true(pml4e & 1);
	uint64_t pdpte = rd(m, (pml4e & ~0xfffULL) + ((va >> 30) & 511) * 8, 8);
	assert_true(pdpte & 1);
	uint64_t pde = rd(m, (pdpte & 0x000ffffffffff000ULL) + ((va >> 21) & 511) * 8, 8);
	assert_true((pde & 0x83) == 0x83); /* present, writable, 2 MiB page */
	return (pde & 0x000fffffffe00000ULL) | (va & 0x1fffff);
}

static void vmlinux_with_initrd_and_cmdline(void **state)
{
	struct guest_mem m;
	tmem(&m, 64 * MIB);
	char *k = write_vmlinux(0);
	uint8_t rd_data[10000];
	for (size_t i = 0; i < sizeof(rd_data); i++)
		rd_data[i] = (uint8_t)(i * 31);
	char *ird = twrite_temp(rd_data, sizeof(rd_data));
	const char *cmd = "console=ttyS0 noxsave";
	struct boot_info bi;
	assert_int_equal(kernel_load(&m, k, ird, cmd, &bi), 0);
	assert_int_equal(bi.kind, KERNEL_ELF_LINUX);
	assert_int_equal(bi.mode, BOOT_LONG64);
	assert_int_equal(bi.entry64, 0x1000000);
	assert_int_equal(bi.kernel_end, 0x1005000);

	/* Registers */
	assert_int_equal(bi.cpu.rip, 0x1000000);
	assert_int_equal(bi.cpu.rsi, BOOT_PARAMS_ADDR);
	assert_int_equal(bi.cpu.rflags, 2);
	assert_int_equal(bi.cpu.cr0 & 0x80000001, 0x80000001);
	assert_int_equal(bi.cpu.cr4 & 0x20, 0x20);
	assert_int_equal(bi.cpu.efer & 0x500, 0x500);
	assert_int_equal(bi.cpu.cs.selector, 0x10);
	assert_int_equal(bi.cpu.cs.l, 1);
	assert_int_equal(bi.cpu.ds.selector, 0x18);
	/* The GDT in guest memory agrees with the hidden segment state. */
	assert_int_equal(rd(&m, bi.cpu.gdt_base + 0x10, 8), 0x00af9b000000ffffULL);
	assert_int_equal(rd(&m, bi.cpu.gdt_base + 0x18, 8), 0x00cf93000000ffffULL);
	assert_int_equal(boot_gdt_descriptor(&bi.cpu.cs), 0x00af9b000000ffffULL);

	/* Identity map over the first 4 GiB */
	uint64_t probes[] = {0, 0x1000000, 0x1234567, 0x3fffffff, 0xC0000000, 0xFFFFFFFF};
	for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++)
		assert_int_equal(translate(&m, bi.cpu.cr3, probes[i]), probes[i]);

	/* boot_params */
	uint64_t bp = BOOT_PARAMS_ADDR;
	assert_int_equal(rd(&m, bp + 0x1fe, 2), 0xAA55);
	assert_int_equal(rd(&m, bp + 0x202, 4), 0x53726448);
	assert_int_equal(rd(&m, bp + 0x206, 2), 0x020f);
	assert_int_equal(rd(&m, bp + 0x210, 1), 0xff);
	assert_int_equal(rd(&m, bp + 0x211, 1) & 0x81, 0x81);
	uint64_t cl = rd(&m, bp + 0x228, 4) | rd(&m, bp + 0x0c8, 4) << 32;
	assert_string_equal((const char *)gmem_ptr(&m, cl, strlen(cmd) + 1), cmd);
	assert_int_equal(rd(&m, bp + 0x070, 8), ACPI_RSDP_ADDR);
	uint64_t ri = rd(&m, bp + 0x218, 4) | rd(&m, bp + 0x0c0, 4) << 32;
	uint64_t rs = rd(&m, bp + 0x21c, 4) | rd(&m, bp + 0x0c4, 4) << 32;
	assert_int_equal(ri, bi.initrd_addr);
	assert_int_equal(rs, sizeof(rd_data));
	assert_int_equal(ri % 4096, 0);
	assert_true(ri >= bi.kernel_end && ri + rs <= 64 * MIB);
	assert_memory_equal(gmem_ptr(&m, ri, rs), rd_data, sizeof(rd_data));
	/* e820 in boot_params */
	assert_int_equal(rd(&m, bp + 0x1e8, 1), 3);
	assert_int_equal(rd(&m, bp + 0x2d0 + 2 * 20, 8), MIB);
	assert_int_equal(rd(&m, bp + 0x2d0 + 2 * 20 + 8, 8), 63 * MIB);
	assert_int_equal(rd(&m, bp + 0x2d0 + 2 * 20 + 16, 4), 1);
	/* Kernel bytes */
	assert_int_equal(rd(&m, 0x1000000, 1), 1);
	tremove(k);
	tremove(ird);
	tmem_free(&m);
}

static void pvh_guest(void **state)
{
	struct guest_mem m;
	tmem(&m, 16 * MIB);
	uint8_t code[512];
	memset(code, 0xf4, sizeof(code));
	struct tseg s = {0x100000, 0x100000, code, sizeof(code), 0x2000};
	uint8_t notes[64];
	size_t nl = tnotes(notes, 0x100010, 4, 0), len;
	uint8_t *elf = telf(0, 0x100000, &s, 1, notes, nl, &len);
	char *k = twrite_temp(elf, len);
	char *ird = twrite_temp("INITRD", 6);
	struct boot_info bi;
	assert_int_equal(kernel_load(&m, k, ird, "hello pvh", &bi), 0);
	assert_int_equal(bi.kind, KERNEL_ELF_PVH);
	assert_int_equal(bi.mode, BOOT_PVH32);
	assert_int_equal(bi.cpu.rip, 0x100010);
	assert_int_equal(bi.cpu.rbx, BOOT_START_INFO_ADDR);
	assert_int_equal(bi.cpu.cr0 & 0x80000001, 1); /* protected mode, paging off */
	assert_int_equal(bi.cpu.efer, 0);
	assert_int_equal(bi.cpu.cs.selector, 0x10);
	assert_int_equal(bi.cpu.cs.db, 1);
	assert_int_equal(bi.cpu.cs.l, 0);
	assert_int_equal(rd(&m, bi.cpu.gdt_base + 0x10, 8), 0x00cf9b000000ffffULL);

	uint64_t si = bi.cpu.rbx;
	assert_int_equal(rd(&m, si, 4), 0x336ec578);
	assert_int_equal(rd(&m, si + 4, 4), 1);
	assert_int_equal(rd(&m, si + 12, 4), 1);
	assert_string_equal((const char *)gmem_ptr(&m, rd(&m, si + 24, 8), 10), "hello pvh");
	assert_int_equal(rd(&m, si + 32, 8), ACPI_RSDP_ADDR);
	uint64_t mod = rd(&m, si + 16, 8);
	assert_int_equal(rd(&m, mod + 8, 8), 6);
	assert_memory_equal(gmem_ptr(&m, rd(&m, mod, 8), 6), "INITRD", 6);
	assert_true(rd(&m, mod, 8) >= 0x102000);
	uint64_t mm = rd(&m, si + 40, 8);
	assert_int_equal(rd(&m, si + 48, 4), 3);
	assert_int_equal(rd(&m, mm + 24 * 2, 8), MIB);
	assert_int_equal(rd(&m, mm + 24 * 2 + 8, 8), 15 * MIB);
	assert_int_equal(rd(&m, mm + 24 * 2 + 16, 4), 1);
	free(elf);
	tremove(k);
	tremove(ird);
	tmem_free(&m);
}

static void linux_with_pvh_note_can_switch(void **state)
{
	struct guest_mem m;
	tmem(&m, 64 * MIB);
	char *k = write_vmlinux(1);
	struct boot_info bi;
	assert_int_equal(kernel_load(&m, k, NULL, NULL, &bi), 0);
	assert_int_equal(bi.mode, BOOT_LONG64);
	assert_int_equal(bi.pvh_entry, 0x1000040);
	assert_int_equal(bi.start_info_addr, BOOT_START_INFO_ADDR);
	assert_int_equal(boot_use_pvh(&bi), 0);
	assert_int_equal(bi.mode, BOOT_PVH32);
	assert_int_equal(bi.cpu.rip, 0x1000040);
	assert_int_equal(bi.cpu.rbx, BOOT_START_INFO_ADDR);
	assert_int_equal(rd(&m, BOOT_START_INFO_ADDR, 4), 0x336ec578);
	tremove(k);

	k = write_vmlinux(0);
	assert_int_equal(kernel_load(&m, k, NULL, "", &bi), 0);
	assert_int_equal(boot_use_pvh(&bi), -1);
	tremove(k);
	tmem_free(&m);
}

static void bad_input_gives_errors(void **state)
{
	struct guest_mem m;
	struct boot_info bi;
	tmem(&m, 64 * MIB);
	char *k = write_vmlinux(0);

	/* Command line longer than the kernel's 2047 */
	char longcmd[3000];
	memset(longcmd, 'a', sizeof(longcmd) - 1);
	longcmd[sizeof(longcmd) - 1] = 0;
	assert_int_equal(kernel_load(&m, k, NULL, longcmd, &bi), -1);
	longcmd[2047] = 0;
	assert_int_equal(kernel_load(&m, k, NULL, longcmd, &bi), 0);

	/* initrd larger than the RAM above the kernel */
	size_t big = 64 * MIB - 0x1005000 + 1;
	uint8_t *junk = calloc(1, big);
	char *ird = twrite_temp(junk, big);
	assert_int_equal(kernel_load(&m, k, ird, NULL, &bi), -1);
	tremove(ird);
	free(junk);

	assert_int_equal(kernel_load(&m, "/nonexistent/vmlinuz", NULL, NULL, &bi), -1);
	assert_int_equal(kernel_load(&m, k, "/nonexistent/initrd", NULL, &bi), -1);
	assert_int_equal(kernel_load(&m, "/tmp", NULL, NULL, &bi), -1);
	char *empty = twrite_temp("", 0);
	assert_int_equal(kernel_load(&m, empty, NULL, NULL, &bi), -1);
	tremove(empty);
	char *text = twrite_temp("#!/bin/sh\necho not a kernel\n", 28);
	assert_int_equal(kernel_load(&m, text, NULL, NULL, &bi), -1);
	tremove(text);
	tmem_free(&m);

	/* Memory too small for the kernel at 16 MiB */
	tmem(&m, 16 * MIB);
	assert_int_equal(kernel_load(&m, k, NULL, NULL, &bi), -1);
	tmem_free(&m);
	tmem(&m, 512 * KIB);
	assert_int_equal(kernel_load(&m, k, NULL, NULL, &bi), -1);
	tmem_free(&m);
	tremove(k);
}

/* 5 GiB of RAM (mapped, not touched): a kernel that may be loaded above 4 GiB gets its initrd at
 * the top of high RAM through the ext_ramdisk fields; one with a PVH entry keeps it below 4 GiB. */
static void initrd_above_4g(void **state)
{
	struct guest_mem m;
	struct boot_info bi;
	assert_int_equal(gmem_init(&m, 5 * GIB), 0);
	char *ird = twrite_temp("HIGH-INITRD", 11);
	char *k = write_vmlinux(0);
	assert_int_equal(kernel_load(&m, k, ird, NULL, &bi), 0);
	assert_int_equal(bi.initrd_addr, (6 * GIB - 11) & ~4095ULL);
	uint64_t bp = BOOT_PARAMS_ADDR;
	assert_int_equal(rd(&m, bp + 0x218, 4), (uint32_t)bi.initrd_addr);
	assert_int_equal(rd(&m, bp + 0x0c0, 4), 1); /* ext_ramdisk_image: bits 32-63 */
	assert_int_equal(rd(&m, bp + 0x21c, 4), 11);
	assert_memory_equal(gmem_ptr(&m, bi.initrd_addr, 11), "HIGH-INITRD", 11);
	assert_int_equal(rd(&m, bp + 0x1e8, 1), 4);
	assert_int_equal(rd(&m, bp + 0x2d0 + 3 * 20, 8), 4 * GIB);
	assert_int_equal(rd(&m, bp + 0x2d0 + 3 * 20 + 8, 8), 2 * GIB);
	tremove(k);
	k = write_vmlinux(1);
	assert_int_equal(kernel_load(&m, k, ird, NULL, &bi), 0);
	assert_int_equal(bi.initrd_addr, (0x80000000ULL - 11) & ~4095ULL);
	assert_int_equal(rd(&m, bp + 0x0c0, 4), 0);
	tremove(k);
	tremove(ird);
	gmem_free(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(e820_64m_3584m_8g),
	    cmocka_unit_test(initrd_placement),
	    cmocka_unit_test(vmlinux_with_initrd_and_cmdline),
	    cmocka_unit_test(pvh_guest),
	    cmocka_unit_test(linux_with_pvh_note_can_switch),
	    cmocka_unit_test(bad_input_gives_errors),
	    cmocka_unit_test(initrd_above_4g),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
