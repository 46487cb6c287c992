/* ACPI tables, laid out from ACPI_RSDP_ADDR upwards, each 64-byte aligned:
 *   RSDP (v2) -> XSDT and RSDT -> FADT, MADT, MCFG;  FADT -> FACS, DSDT.
 * Field offsets follow the ACPI 6.x specification, chapter 5.2. */
#include "machine/acpi.h"
#include "util/err.h"
#include "devices/pci.h"
#include "machine/acpi_dsdt.h"
#include "machine/boot_bytes.h"

#include <stdlib.h>
#include <string.h>

#define SDT_HEADER 36
#define FADT_LEN   276
#define FADT_REV   6
#define FACS_LEN   64
#define RSDP_LEN   36
#define MCFG_LEN   (SDT_HEADER + 8 + 16)
#define NTABLES	   3 /* in the XSDT/RSDT: FADT, MADT, MCFG */

/* FADT flags (table 5.10) */
#define FADT_WBINVD	   (1u << 0)
#define FADT_SLP_BUTTON	   (1u << 5) /* set: no fixed-feature sleep button */
#define FADT_TMR_VAL_EXT   (1u << 8) /* 32-bit PM timer */
#define FADT_RESET_REG_SUP (1u << 10)
/* IA-PC boot architecture flags */
#define IAPC_LEGACY_DEVICES (1u << 0)
#define IAPC_8042	    (1u << 1)
#define IAPC_NO_VGA	    (1u << 2)

#define GAS_SYSTEM_IO 1
#define GAS_BYTE      1
#define GAS_WORD      2
#define GAS_DWORD     3

#define MADT_LAPIC	 0
#define MADT_IOAPIC	 1
#define MADT_OVERRIDE	 2
#define MADT_LAPIC_NMI	 4
#define MADT_PCAT_COMPAT 1
#define MPS_ACTIVE_HIGH	 0x1
#define MPS_LEVEL	 (0x3 << 2)

struct acpi_buf {
	uint8_t *p;
	uint64_t used;
	uint64_t cap;
};

/* Reserves `len` bytes, 64-byte aligned; returns the offset from ACPI_RSDP_ADDR. */
static uint64_t reserve(struct acpi_buf *b, uint64_t len)
{
	uint64_t off = (b->used + 63) & ~63ULL;
	b->used = off + len;
	return off;
}

static uint8_t checksum(const uint8_t *p, uint64_t len)
{
	uint8_t sum = 0;
	for (uint64_t i = 0; i < len; i++)
		sum = (uint8_t)(sum + p[i]);
	return (uint8_t)-sum;
}

static void sdt_header(uint8_t *p, const char *sig, uint32_t len, uint8_t rev)
{
	memcpy(p, sig, 4);
	put_le32(p + 4, len);
	p[8] = rev;
	memcpy(p + 10, "KITE  ", 6);
	memcpy(p + 16, "KITEVM  ", 8);
	put_le32(p + 24, 1);
	memcpy(p + 28, "KITE", 4);
	put_le32(p + 32, 1);
}

static void sdt_finish(uint8_t *p)
{
	p[9] = 0;
	p[9] = checksum(p, get_le32(p + 4));
}

static void gas_io(uint8_t *p, uint16_t port, uint8_t bits, uint8_t access)
{
	p[0] = GAS_SYSTEM_IO;
	p[1] = bits;
	p[2] = 0;
	p[3] = access;
	put_le64(p + 4, port);
}

static void build_fadt(uint8_t *f, uint64_t facs, uint64_t dsdt)
{
	sdt_header(f, "FACP", FADT_LEN, FADT_REV);
	put_le32(f + 36, (uint32_t)facs);
	put_le32(f + 40, (uint32_t)dsdt);
	put_le16(f + 46, ACPI_SCI_IRQ);
	/* SMI_CMD (48) stays 0: no SMM, the platform is always in ACPI mode. */
	put_le32(f + 56, ACPI_PM1_EVT_BLK);
	put_le32(f + 64, ACPI_PM1_CNT_BLK);
	put_le32(f + 76, ACPI_PM_TMR_BLK);
	f[88] = 4;		/* PM1_EVT_LEN */
	f[89] = 2;		/* PM1_CNT_LEN */
	f[91] = 4;		/* PM_TMR_LEN */
	put_le16(f + 96, 101);	/* P_LVL2_LAT > 100: no C2 */
	put_le16(f + 98, 1001); /* P_LVL3_LAT > 1000: no C3 */
	put_le16(f + 109, IAPC_LEGACY_DEVICES | IAPC_8042 | IAPC_NO_VGA);
	put_le32(f + 112, FADT_WBINVD | FADT_SLP_BUTTON | FADT_TMR_VAL_EXT | FADT_RESET_REG_SUP);
	gas_io(f + 116, ACPI_RESET_PORT, 8, GAS_BYTE);
	f[128] = ACPI_RESET_VALUE;
	f[131] = 0; /* FADT minor version: 6.0 */
	put_le64(f + 132, facs);
	put_le64(f + 140, dsdt);
	gas_io(f + 148, ACPI_PM1_EVT_BLK, 32, GAS_WORD);
	gas_io(f + 172, ACPI_PM1_CNT_BLK, 16, GAS_WORD);
	gas_io(f + 208, ACPI_PM_TMR_BLK, 32, GAS_DWORD);
	memcpy(f + 268, "KITE", 4); /* hypervisor vendor identity */
	sdt_finish(f);
}

static void build_facs(uint8_t *p)
{
	memcpy(p, "FACS", 4);
	put_le32(p + 4, FACS_LEN);
	p[32] = 2; /* version */
}

static uint32_t madt_len(int ncpus)
{
	return SDT_HEADER + 8 + (uint32_t)ncpus * 8 + 12 + 2 * 10 + 6;
}

static void build_madt(uint8_t *t, int ncpus)
{
	sdt_header(t, "APIC", madt_len(ncpus), 5);
	put_le32(t + 36, ACPI_LAPIC_ADDR);
	put_le32(t + 40, MADT_PCAT_COMPAT);
	uint8_t *e = t + 44;
	for (int i = 0; i < ncpus; i++, e += 8) {
		e[0] = MADT_LAPIC;
		e[1] = 8;
		e[2] = (uint8_t)i;  /* ACPI processor UID */
		e[3] = (uint8_t)i;  /* APIC id */
		put_le32(e + 4, 1); /* enabled */
	}
	e[0] = MADT_IOAPIC;
	e[1] = 12;
	e[2] = (uint8_t)ncpus; /* IOAPIC id after the CPUs' */
	put_le32(e + 4, ACPI_IOAPIC_ADDR);
	put_le32(e + 8, 0); /* GSI base */
	e += 12;
	/* ISA IRQ0 (PIT) arrives on IOAPIC pin 2; the SCI is level-triggered, active high. */
	const struct {
		uint8_t irq;
		uint32_t gsi;
		uint16_t flags;
	} ov[2] = {{0, 2, 0}, {ACPI_SCI_IRQ, ACPI_SCI_IRQ, MPS_ACTIVE_HIGH | MPS_LEVEL}};
	for (int i = 0; i < 2; i++, e += 10) {
		e[0] = MADT_OVERRIDE;
		e[1] = 10;
		e[2] = 0; /* ISA bus */
		e[3] = ov[i].irq;
		put_le32(e + 4, ov[i].gsi);
		put_le16(e + 8, ov[i].flags);
	}
	e[0] = MADT_LAPIC_NMI; /* LINT1 is NMI on every processor (UID 0xff) */
	e[1] = 6;
	e[2] = 0xff;
	put_le16(e + 3, 0);
	e[5] = 1;
	sdt_finish(t);
}

/* PCI ECAM: one allocation for segment 0, buses 0-255 (devices/pci.h). */
static void build_mcfg(uint8_t *t)
{
	sdt_header(t, "MCFG", MCFG_LEN, 1);
	uint8_t *e = t + SDT_HEADER + 8;
	put_le64(e, PCI_ECAM_BASE);
	put_le16(e + 8, 0);
	e[10] = 0;
	e[11] = (uint8_t)(PCI_ECAM_SIZE / (1u << 20) - 1); /* 1 MiB per bus */
	sdt_finish(t);
}

int acpi_build(struct guest_mem *m, int ncpus)
{
	if (ncpus < 1 || ncpus > ACPI_MAX_CPUS)
		return kite_error("%d vCPUs: kite's ACPI tables describe 1 to %d", ncpus,
				  ACPI_MAX_CPUS);
	struct aml aml = {0};
	if (acpi_dsdt_build(&aml) < 0) {
		aml_free(&aml);
		return kite_error("out of memory for the ACPI tables");
	}
	struct acpi_buf b = {.cap = ACPI_AREA_END - ACPI_RSDP_ADDR};
	b.p = calloc(1, b.cap);
	if (!b.p) {
		aml_free(&aml);
		return kite_error("out of memory for the ACPI tables");
	}
	uint64_t rsdp = reserve(&b, RSDP_LEN);
	uint64_t xsdt = reserve(&b, SDT_HEADER + NTABLES * 8);
	uint64_t rsdt = reserve(&b, SDT_HEADER + NTABLES * 4);
	uint64_t fadt = reserve(&b, FADT_LEN);
	uint64_t facs = reserve(&b, FACS_LEN);
	uint64_t dsdt = reserve(&b, SDT_HEADER + aml.len);
	uint64_t madt = reserve(&b, madt_len(ncpus));
	uint64_t mcfg = reserve(&b, MCFG_LEN);
	const uint64_t base = ACPI_RSDP_ADDR;
	int ret = 0;
	if (b.used > b.cap) {
		ret = kite_error("ACPI tables (%llu bytes) exceed the 0x%llx-0x%llx area",
				 (unsigned long long)b.used, (unsigned long long)ACPI_RSDP_ADDR,
				 (unsigned long long)ACPI_AREA_END);
		goto out;
	}

	uint8_t *d = b.p + dsdt;
	sdt_header(d, "DSDT", (uint32_t)(SDT_HEADER + aml.len), 2);
	memcpy(d + SDT_HEADER, aml.p, aml.len);
	sdt_finish(d);
	build_facs(b.p + facs);
	build_fadt(b.p + fadt, base + facs, base + dsdt);
	build_madt(b.p + madt, ncpus);
	build_mcfg(b.p + mcfg);

	const uint64_t tables[NTABLES] = {base + fadt, base + madt, base + mcfg};
	uint8_t *x = b.p + xsdt;
	uint8_t *r = b.p + rsdt;
	sdt_header(x, "XSDT", SDT_HEADER + NTABLES * 8, 1);
	sdt_header(r, "RSDT", SDT_HEADER + NTABLES * 4, 1);
	for (int i = 0; i < NTABLES; i++) {
		put_le64(x + SDT_HEADER + 8 * i, tables[i]);
		put_le32(r + SDT_HEADER + 4 * i, (uint32_t)tables[i]);
	}
	sdt_finish(x);
	sdt_finish(r);

	uint8_t *p = b.p + rsdp;
	memcpy(p, "RSD PTR ", 8);
	memcpy(p + 9, "KITE  ", 6);
	p[15] = 2; /* revision: ACPI 2.0+ */
	put_le32(p + 16, (uint32_t)(base + rsdt));
	put_le32(p + 20, RSDP_LEN);
	put_le64(p + 24, base + xsdt);
	p[8] = checksum(p, 20);	       /* ACPI 1.0 part */
	p[32] = checksum(p, RSDP_LEN); /* whole structure */

	if (gmem_write(m, base, b.p, b.used) < 0)
		ret = kite_error("ACPI tables at 0x%llx do not fit in guest RAM (%llu KiB)",
				 (unsigned long long)base, (unsigned long long)(m->ram_size >> 10));
out:
	free(b.p);
	aml_free(&aml);
	return ret;
}
