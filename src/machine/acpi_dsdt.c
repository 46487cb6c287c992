/* DSDT body:
 *   \_S0_, \_S5_   sleep packages: SLP_TYP values for PM1a_CNT (S5 = power off)
 *   \_SB.PCI0      host bridge (PNP0A03): bus 0-255, I/O and the 32-bit MMIO window of
 *                  devices/pci.h, and _PRT routing INTx of every slot to IOAPIC GSIs 16-19
 *   \_SB.MRES      motherboard resources (PNP0C02): the ECAM window that the MCFG announces,
 *                  so Linux accepts it without an e820 entry
 * The power button is a fixed feature (FADT), so it needs no AML. */
#include "machine/acpi_dsdt.h"
#include "devices/pci.h"
#include "machine/acpi.h"

static void sleep_package(struct aml *a, const char *name, uint8_t typ)
{
	struct aml p = {0};
	aml_int(&p, typ); /* SLP_TYPa */
	aml_int(&p, typ); /* SLP_TYPb */
	aml_int(&p, 0);
	aml_int(&p, 0);
	aml_name_decl(a, name);
	aml_package(a, 4, &p);
}

/* INTx pin p (0 = INTA) of slot s reaches GSI 16 + ((s + p) & 3): the usual swizzle, and for
 * INTA exactly what PCI_INTX_GSI() wires in devices/pci.c. */
static void prt(struct aml *a)
{
	struct aml all = {0};
	for (unsigned slot = 0; slot < PCI_MAX_SLOTS; slot++) {
		for (unsigned pin = 0; pin < 4; pin++) {
			struct aml e = {0};
			aml_int(&e, (uint64_t)slot << 16 | 0xffff); /* any function of the slot */
			aml_int(&e, pin);
			aml_int(&e, 0); /* no link device: the next field is a GSI */
			aml_int(&e, PCI_INTX_GSI(slot + pin));
			aml_package(&all, 4, &e);
		}
	}
	aml_name_decl(a, "_PRT");
	aml_package(a, PCI_MAX_SLOTS * 4, &all);
}

static void pci0(struct aml *sb)
{
	struct aml d = {0}, crs = {0};
	aml_name_decl(&d, "_HID");
	aml_int(&d, aml_eisaid("PNP0A03"));
	aml_name_decl(&d, "_UID");
	aml_int(&d, 0);
	aml_name_decl(&d, "_SEG");
	aml_int(&d, 0);
	aml_name_decl(&d, "_BBN");
	aml_int(&d, 0);
	aml_res_word_bus(&crs, 0, 0xff);
	aml_res_io(&crs, PCI_CONFIG_ADDR_PORT, 8);
	aml_res_word_io(&crs, 0x0000, PCI_CONFIG_ADDR_PORT - 1);
	aml_res_word_io(&crs, 0x0d00, 0xffff);
	aml_res_dword_mem(&crs, (uint32_t)PCI_MMIO_BASE,
			  (uint32_t)(PCI_MMIO_BASE + PCI_MMIO_SIZE - 1));
	aml_res_end(&crs);
	aml_name_decl(&d, "_CRS");
	aml_buffer(&d, &crs);
	prt(&d);
	aml_device(sb, "PCI0", &d);
}

static void motherboard_resources(struct aml *sb)
{
	struct aml d = {0}, crs = {0};
	aml_name_decl(&d, "_HID");
	aml_int(&d, aml_eisaid("PNP0C02"));
	aml_name_decl(&d, "_UID");
	aml_int(&d, 1);
	aml_res_mem32_fixed(&crs, (uint32_t)PCI_ECAM_BASE, (uint32_t)PCI_ECAM_SIZE);
	aml_res_end(&crs);
	aml_name_decl(&d, "_CRS");
	aml_buffer(&d, &crs);
	aml_device(sb, "MRES", &d);
}

int acpi_dsdt_build(struct aml *out)
{
	sleep_package(out, "\\_S0_", 0);
	sleep_package(out, "\\_S5_", ACPI_SLP_TYP_S5);
	struct aml sb = {0};
	pci0(&sb);
	motherboard_resources(&sb);
	aml_scope(out, "\\_SB_", &sb);
	return out->failed ? -1 : 0;
}
