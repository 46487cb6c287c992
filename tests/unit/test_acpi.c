#include "test_boot_fixture.h"
#include "machine/acpi.h"

#include <stdio.h>

#define MIB (1ULL << 20)

static uint8_t sum(const uint8_t *p, size_t n)
{
	uint8_t s = 0;
	for (size_t i = 0; i < n; i++)
		s = (uint8_t)(s + p[i]);
	return s;
}

/* A table at guest address `gpa`: checks its signature and checksum, returns a pointer. */
static const uint8_t *table(const struct guest_mem *m, uint64_t gpa, const char *sig)
{
	const uint8_t *t = gmem_ptr(m, gpa, 36);
	assert_non_null(t);
	assert_memory_equal(t, sig, 4);
	uint32_t len = (uint32_t)tget(t + 4, 4);
	assert_non_null(gmem_ptr(m, gpa, len));
	assert_int_equal(sum(t, len), 0);
	return t;
}

/* Finds the RSDP the way a guest does: a 16-byte aligned scan of 0xE0000-0xFFFFF. */
static uint64_t scan_rsdp(const struct guest_mem *m)
{
	for (uint64_t a = 0xE0000; a < 0x100000; a += 16) {
		const uint8_t *p = gmem_ptr(m, a, 36);
		if (memcmp(p, "RSD PTR ", 8) == 0 && sum(p, 20) == 0)
			return a;
	}
	return 0;
}

static void check_tables(int ncpus)
{
	struct guest_mem m;
	tmem(&m, 64 * MIB);
	assert_int_equal(acpi_build(&m, ncpus), 0);
	uint64_t rsdp_addr = scan_rsdp(&m);
	assert_int_equal(rsdp_addr, ACPI_RSDP_ADDR);
	const uint8_t *rsdp = gmem_ptr(&m, rsdp_addr, 36);
	assert_int_equal(rsdp[15], 2);
	assert_int_equal(tget(rsdp + 20, 4), 36);
	assert_int_equal(sum(rsdp, 36), 0);

	const uint8_t *xsdt = table(&m, tget(rsdp + 24, 8), "XSDT");
	const uint8_t *rsdt = table(&m, tget(rsdp + 16, 4), "RSDT");
	int n = (int)(tget(xsdt + 4, 4) - 36) / 8;
	assert_int_equal(n, 3);
	assert_int_equal((tget(rsdt + 4, 4) - 36) / 4, 3);
	const uint8_t *fadt = NULL, *madt = NULL, *mcfg = NULL;
	for (int i = 0; i < n; i++) {
		uint64_t a = tget(xsdt + 36 + 8 * i, 8);
		assert_int_equal(tget(rsdt + 36 + 4 * i, 4), a);
		const uint8_t *t = gmem_ptr(&m, a, 4);
		if (memcmp(t, "FACP", 4) == 0)
			fadt = table(&m, a, "FACP");
		else if (memcmp(t, "MCFG", 4) == 0)
			mcfg = table(&m, a, "MCFG");
		else
			madt = table(&m, a, "APIC");
	}
	assert_non_null(fadt);
	assert_non_null(madt);
	assert_non_null(mcfg);

	/* MCFG: ECAM of devices/pci.h for segment 0, buses 0-255 */
	assert_int_equal(tget(mcfg + 4, 4), 60);
	assert_int_equal(tget(mcfg + 44, 8), 0xE0000000u);
	assert_int_equal(tget(mcfg + 52, 2), 0);
	assert_int_equal(mcfg[54], 0);
	assert_int_equal(mcfg[55], 255);

	/* FADT: the PM ports the ACPI PM device implements, the reset register, no HW_REDUCED. */
	assert_int_equal(fadt[8], 6);
	assert_int_equal(tget(fadt + 4, 4), 276);
	assert_int_equal(tget(fadt + 46, 2), 9);
	assert_int_equal(tget(fadt + 48, 4), 0);
	assert_int_equal(tget(fadt + 56, 4), 0x600);
	assert_int_equal(tget(fadt + 64, 4), 0x604);
	assert_int_equal(tget(fadt + 76, 4), 0x608);
	assert_int_equal(fadt[88], 4);
	assert_int_equal(fadt[89], 2);
	assert_int_equal(fadt[91], 4);
	uint32_t flags = (uint32_t)tget(fadt + 112, 4);
	assert_true(flags & (1u << 10));  /* RESET_REG_SUP */
	assert_false(flags & (1u << 20)); /* HW_REDUCED_ACPI */
	assert_false(flags & (1u << 4));  /* power button: fixed feature */
	assert_int_equal(fadt[116], 1);	  /* reset register in I/O space */
	assert_int_equal(tget(fadt + 120, 8), 0xCF9);
	assert_int_equal(fadt[128], 6);
	assert_int_equal(tget(fadt + 148 + 4, 8), 0x600);
	assert_int_equal(tget(fadt + 172 + 4, 8), 0x604);
	assert_int_equal(tget(fadt + 40, 4), tget(fadt + 140, 8));

	/* DSDT: \_S5_ is Package(4) {5, 5, 0, 0}. */
	const uint8_t *dsdt = table(&m, tget(fadt + 140, 8), "DSDT");
	const uint8_t s5[] = {0x08, '\\', '_', 'S', '5', '_', 0x12, 8, 4, 0x0A, 5, 0x0A, 5, 0, 0};
	uint32_t dlen = (uint32_t)tget(dsdt + 4, 4);
	assert_non_null(memmem(dsdt + 36, dlen - 36, s5, sizeof(s5)));
	const uint8_t *facs = gmem_ptr(&m, tget(fadt + 132, 8), 64);
	assert_memory_equal(facs, "FACS", 4);
	assert_int_equal(tget(fadt + 132, 8) % 64, 0);

	/* MADT: one enabled LAPIC per vCPU with APIC id = index, one IOAPIC, two overrides. */
	assert_int_equal(tget(madt + 36, 4), 0xFEE00000u);
	int lapics = 0, ioapics = 0, overrides = 0;
	uint32_t mlen = (uint32_t)tget(madt + 4, 4);
	for (uint32_t off = 44; off < mlen;) {
		const uint8_t *e = madt + off;
		assert_true(e[1] >= 2 && off + e[1] <= mlen);
		if (e[0] == 0) {
			assert_int_equal(e[3], lapics);
			assert_int_equal(tget(e + 4, 4) & 1, 1);
			lapics++;
		} else if (e[0] == 1) {
			assert_int_equal(e[2], ncpus);
			assert_int_equal(tget(e + 4, 4), 0xFEC00000u);
			assert_int_equal(tget(e + 8, 4), 0);
			ioapics++;
		} else if (e[0] == 2) {
			if (e[3] == 0)
				assert_int_equal(tget(e + 4, 4), 2);
			else {
				assert_int_equal(e[3], 9);
				assert_int_equal(tget(e + 4, 4), 9);
				assert_int_equal(tget(e + 8, 2), 0xD); /* level, active high */
			}
			overrides++;
		}
		off += e[1];
	}
	assert_int_equal(lapics, ncpus);
	assert_int_equal(ioapics, 1);
	assert_int_equal(overrides, 2);
	tmem_free(&m);
}

static void tables_for_1_cpu(void **state)
{
	check_tables(1);
}

static void tables_for_4_cpus(void **state)
{
	check_tables(4);
}

static void tables_for_254_cpus(void **state)
{
	check_tables(254);
}

static void rejects_bad_cpu_counts_and_tiny_memory(void **state)
{
	struct guest_mem m;
	tmem(&m, 64 * MIB);
	assert_int_equal(acpi_build(&m, 0), -1);
	assert_int_equal(acpi_build(&m, 255), -1);
	tmem_free(&m);
	tmem(&m, 512 * 1024);
	assert_int_equal(acpi_build(&m, 1), -1);
	tmem_free(&m);
}

/* Runs `cmd` and returns its combined output (malloc'd), exit status in *status. */
static char *run_capture(const char *cmd, int *status)
{
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	size_t cap = 1 << 16, n = 0;
	char *out = malloc(cap);
	assert_non_null(out);
	size_t r;
	while ((r = fread(out + n, 1, cap - n - 1, p)) > 0) {
		n += r;
		if (n + 1 == cap) {
			cap *= 2;
			out = realloc(out, cap);
			assert_non_null(out);
		}
	}
	out[n] = 0;
	*status = pclose(p);
	return out;
}

static void dump_table(const struct guest_mem *m, uint64_t gpa, uint32_t len, const char *dir,
		       const char *name)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s.dat", dir, name);
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(gmem_ptr(m, gpa, len), 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

/* ACPICA, the interpreter Linux itself uses, as referee: iasl disassembles every table without
 * a warning (checksums, lengths, field values), and acpiexec evaluates \_S5_ to {5, 5, 0, 0}. */
static void acpica_accepts_the_tables(void **state)
{
	if (system("command -v iasl >/dev/null && command -v acpiexec >/dev/null") != 0) {
		print_message("iasl/acpiexec missing: run scripts/setup (acpica-tools)\n");
		skip();
		return;
	}
	struct guest_mem m;
	tmem(&m, 64 * MIB);
	assert_int_equal(acpi_build(&m, 4), 0);
	char dir[] = "/tmp/kite-acpi-XXXXXX";
	assert_non_null(mkdtemp(dir));
	const uint8_t *rsdp = gmem_ptr(&m, ACPI_RSDP_ADDR, 36);
	uint64_t xsdt = tget(rsdp + 24, 8);
	const uint8_t *x = gmem_ptr(&m, xsdt, 60);
	uint64_t fadt = tget(x + 36, 8), madt = tget(x + 44, 8);
	const uint8_t *f = gmem_ptr(&m, fadt, 276);
	uint64_t dsdt = tget(f + 140, 8);
	dump_table(&m, xsdt, (uint32_t)tget(x + 4, 4), dir, "xsdt");
	dump_table(&m, tget(rsdp + 16, 4),
		   (uint32_t)tget(gmem_ptr(&m, tget(rsdp + 16, 4), 8) + 4, 4), dir, "rsdt");
	dump_table(&m, fadt, 276, dir, "facp");
	dump_table(&m, madt, (uint32_t)tget(gmem_ptr(&m, madt, 8) + 4, 4), dir, "apic");
	dump_table(&m, dsdt, (uint32_t)tget(gmem_ptr(&m, dsdt, 8) + 4, 4), dir, "dsdt");
	dump_table(&m, tget(f + 132, 8), 64, dir, "facs");
	uint64_t mcfg = tget(x + 52, 8);
	dump_table(&m, mcfg, 60, dir, "mcfg");
	const char *tables[] = {"xsdt", "rsdt", "facp", "apic", "dsdt", "facs", "mcfg"};
	char cmd[512];
	int status;
	for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
		snprintf(cmd, sizeof(cmd), "cd %s && iasl -d %s.dat 2>&1", dir, tables[i]);
		char *out = run_capture(cmd, &status);
		if (status != 0 || strstr(out, "Warning") || strstr(out, "Error"))
			fail_msg("iasl -d %s.dat:\n%s", tables[i], out);
		free(out);
	}
	snprintf(cmd, sizeof(cmd), "cd %s && acpiexec -b 'evaluate \\_S5_' dsdt.dat 2>&1", dir);
	char *out = run_capture(cmd, &status);
	const char *want = "[Integer] = 0000000000000005\n    [Integer] = 0000000000000005\n"
			   "    [Integer] = 0000000000000000\n    [Integer] = 0000000000000000";
	if (status != 0 || !strstr(out, want) || strstr(out, "Error"))
		fail_msg("acpiexec evaluate \\_S5_:\n%s", out);
	free(out);

	/* The host bridge: _PRT has an entry per slot and pin (INTA of slot 1 on GSI 17), and the
	 * disassembled resources are the windows of devices/pci.h. */
	snprintf(
	    cmd, sizeof(cmd),
	    "cd %s && acpiexec -b 'evaluate \\_SB.PCI0._HID;evaluate \\_SB.PCI0._PRT' dsdt.dat "
	    "2>&1 && cat dsdt.dsl",
	    dir);
	out = run_capture(cmd, &status);
	const char *wants[] = {
	    "[Integer] = 00000000030AD041", /* EISAID("PNP0A03") */
	    "[Package] Contains 128 Elements:",
	    "[Integer] = 000000000001FFFF\n      [Integer] = 0000000000000000\n"
	    "      [Integer] = 0000000000000000\n      [Integer] = 0000000000000011",
	    "Device (PCI0)",
	    "0x0CF8,             // Range Minimum",
	    "0xC0000000,         // Range Minimum\n                    0xDFFFFFFF,",
	    "EisaId (\"PNP0C02\")",
	    "Memory32Fixed (ReadWrite,\n                    0xE0000000,         // Address Base\n"
	    "                    0x10000000,",
	};
	for (size_t i = 0; i < sizeof(wants) / sizeof(wants[0]); i++)
		if (status != 0 || !strstr(out, wants[i]) || strstr(out, "Error"))
			fail_msg("acpiexec/iasl on the DSDT lack \"%s\" (status %d, %zu bytes of "
				 "output)",
				 wants[i], status, strlen(out));
	free(out);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
	tmem_free(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(tables_for_1_cpu),
	    cmocka_unit_test(tables_for_4_cpus),
	    cmocka_unit_test(tables_for_254_cpus),
	    cmocka_unit_test(rejects_bad_cpu_counts_and_tiny_memory),
	    cmocka_unit_test(acpica_accepts_the_tables),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
