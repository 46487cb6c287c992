/* poweroff: finds the ACPI tables a VMM provides (RSDP, XSDT/RSDT, FADT, DSDT with \_S5_,
 * MADT), then ends through the library's ACPI S5 power-off; the host checks the VMM exits 0
 * without the library falling back to other methods. */
#include "libguest.h"

const char guest_name[] = "poweroff";

void guest_main(void)
{
	uint64_t rsdp = acpi_rsdp();
	report(rsdp != 0, "ACPI RSDP found and checksummed at %#lx", rsdp);
	if (!rsdp)
		return;
	if (boot_rsdp_paddr)
		report(acpi_rsdp_from_start_info(), "start_info rsdp_paddr %#lx is a valid RSDP",
		       boot_rsdp_paddr);
	else
		report_skip("start_info rsdp_paddr (0: found by scanning)");
	uint64_t scanned = acpi_rsdp_scan();
	if (scanned)
		report(scanned == rsdp, "legacy BIOS-area scan finds the same RSDP (%#lx)",
		       scanned);
	else
		report_skip("legacy BIOS-area RSDP scan (the RSDP lies elsewhere)");

	struct fadt_info f;
	bool have_fadt = acpi_fadt(&f);
	report(have_fadt, "FADT found and checksummed");
	if (!have_fadt)
		return;
	if (f.hw_reduced)
		report(f.sleep_ctl_addr != 0, "HW-reduced FADT has a sleep control register (%#lx)",
		       f.sleep_ctl_addr);
	else
		report(f.pm1a_cnt != 0, "FADT PM1a_CNT block at port %#x", f.pm1a_cnt);

	int typ = acpi_s5_slp_typ();
	report(typ >= 0, "DSDT \\_S5_ package gives SLP_TYPa %d", typ);

	struct madt_info m;
	bool have_madt = acpi_madt(&m);
	report(have_madt && m.ncpus > 0, "MADT lists %d processors", m.ncpus);
	printf("poweroff: powering off through ACPI\n");
}
