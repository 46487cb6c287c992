/* smp: counts the CPUs in the MADT (expecting cpus= from the command line), starts every AP
 * with INIT/SIPI/SIPI through the LAPIC, and checks each reported its own APIC id. */
#include "libguest.h"

const char guest_name[] = "smp";

void guest_main(void)
{
	struct madt_info m;
	if (!acpi_madt(&m)) {
		report(false, "MADT present");
		return;
	}
	lapic_init();
	uint32_t bsp = lapic_id();
	uint64_t want = cmdline_u64("cpus", 0);
	printf("smp: MADT lists %d CPUs, BSP APIC id %u, cpus= %lu\n", m.ncpus, bsp, want);
	if (want)
		report((uint64_t)m.ncpus == want, "MADT lists cpus= %lu processors", want);
	else
		report_skip("MADT count vs cpus= (no cpus= on the command line)");

	bool bsp_listed = false;
	for (int i = 0; i < m.ncpus; i++)
		bsp_listed |= m.apic_ids[i] == bsp;
	report(bsp_listed, "BSP APIC id %u is in the MADT", bsp);

	bool tramp_ram = false;
	for (int i = 0; i < e820_count; i++) {
		const struct e820_entry *e = &e820_map[i];
		tramp_ram |=
		    e->type == E820_RAM && e->addr <= 0x8000 && e->addr + e->size >= 0x9000;
	}
	report(tramp_ram, "AP trampoline page 0x8000 is e820 RAM");
	if (!tramp_ram)
		return;

	int expected = 0;
	for (int i = 0; i < m.ncpus; i++) {
		uint32_t id = m.apic_ids[i];
		if (id == bsp)
			continue;
		expected++;
		int before = smp_ap_count;
		bool up = smp_start_ap(id);
		report(up && smp_ap_count == before + 1 && smp_ap_ids[before] == id,
		       "AP with APIC id %u started and reported its id", id);
	}
	report(smp_ap_count == expected, "all %d APs online (%d CPUs)", expected, smp_ap_count + 1);

	bool distinct = true;
	for (int i = 0; i < smp_ap_count && i < MAX_CPUS; i++) {
		distinct &= smp_ap_ids[i] != bsp;
		for (int j = 0; j < i; j++)
			distinct &= smp_ap_ids[i] != smp_ap_ids[j];
	}
	report(distinct, "APIC ids of all CPUs are distinct");
}
