/* ACPI tables for the guest: RSDP, XSDT (and RSDT), FADT, FACS, DSDT, MADT, MCFG, written into
 * guest memory between ACPI_RSDP_ADDR and 1 MiB, where a guest's scan of 0xE0000-0xFFFFF finds
 * the RSDP. The DSDT describes the PCI host bridge of devices/pci.h (\_SB.PCI0: bus 0-255, the
 * MMIO window, _PRT: INTx pin p of slot s on GSI 16 + ((s + p) & 3)) and reserves its ECAM
 * window as a motherboard resource (\_SB.MRES); the MCFG announces that ECAM window.
 *
 * The fixed hardware the FADT, DSDT and MADT describe (PM1 blocks, PM timer, reset register,
 * SCI, sleep types) is the ACPI PM device's: devices/acpi_pm.h. The rest of the platform:
 *   IRQ 0  overridden to GSI 2 (the PIT on the IOAPIC).
 *   Local APIC 0xFEE00000; IOAPIC id = ncpus at 0xFEC00000, GSI base 0.
 */
#ifndef KITE_MACHINE_ACPI_H
#define KITE_MACHINE_ACPI_H

#include "devices/acpi_pm.h"
#include "kvm/memory.h"

#include <stdint.h>

#define ACPI_RSDP_ADDR	 0xE0000ULL
#define ACPI_AREA_END	 0x100000ULL
#define ACPI_LAPIC_ADDR	 0xFEE00000u
#define ACPI_IOAPIC_ADDR 0xFEC00000u
#define ACPI_MAX_CPUS	 254 /* xAPIC ids are 8 bit; 0xFF is broadcast, and the IOAPIC needs one */

/* Writes all tables for `ncpus` vCPUs (APIC id = index). Returns 0, or -1 with an error printed
 * when ncpus is out of range or the tables do not fit in guest memory. */
int acpi_build(struct guest_mem *m, int ncpus);

#endif
