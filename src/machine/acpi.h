/* ACPI tables for the guest: RSDP, XSDT (and RSDT), FADT, FACS, DSDT, MADT, MCFG, written into
 * guest memory between ACPI_RSDP_ADDR and 1 MiB, where a guest's scan of 0xE0000-0xFFFFF finds
 * the RSDP. The DSDT describes the PCI host bridge of devices/pci.h (\_SB.PCI0: bus 0-255, the
 * MMIO window, _PRT: INTx pin p of slot s on GSI 16 + ((s + p) & 3)) and reserves its ECAM
 * window as a motherboard resource (\_SB.MRES); the MCFG announces that ECAM window.
 *
 * Platform contract (the ACPI PM device in src/devices/ must match these ports):
 *   0x600  PM1a event block, 4 bytes: PM1_STS (16 bit) at 0x600, PM1_EN (16 bit) at 0x602.
 *          PM1_STS bit 8 = PWRBTN_STS (write 1 to clear); PM1_EN bit 8 = PWRBTN_EN. The power
 *          button is a fixed feature: raise SCI (IRQ 9, level, active high) when both are set.
 *   0x604  PM1a control block, 2 bytes: PM1_CNT. SLP_TYP in bits 10-12, SLP_EN = bit 13.
 *          A write with SLP_EN set and SLP_TYP = ACPI_SLP_TYP_S5 (5) means power off.
 *          Bit 0 (SCI_EN) reads as 1: the platform is always in ACPI mode (FADT SMI_CMD = 0).
 *   0x608  PM timer, 4 bytes: 32-bit counter at 3.579545 MHz (FADT TMR_VAL_EXT set).
 *   0xCF9  reset register (FADT RESET_REG, I/O, 8 bit): writing 0x06 resets the machine.
 *   SCI    IRQ 9 (ISA), overridden in the MADT to GSI 9 level-triggered, active high.
 *   IRQ 0  overridden to GSI 2 (the PIT on the IOAPIC).
 *   Local APIC 0xFEE00000; IOAPIC id = ncpus at 0xFEC00000, GSI base 0.
 */
#ifndef KITE_MACHINE_ACPI_H
#define KITE_MACHINE_ACPI_H

#include "kvm/memory.h"

#include <stdint.h>

#define ACPI_RSDP_ADDR	   0xE0000ULL
#define ACPI_AREA_END	   0x100000ULL
#define ACPI_PM1_EVT_BLK   0x600
#define ACPI_PM1_CNT_BLK   0x604
#define ACPI_PM_TMR_BLK	   0x608
#define ACPI_RESET_PORT	   0xCF9
#define ACPI_RESET_VALUE   0x06
#define ACPI_SCI_IRQ	   9
#define ACPI_SLP_TYP_S5	   5
#define ACPI_SLP_TYP_SHIFT 10
#define ACPI_SLP_TYP_MASK  (7u << ACPI_SLP_TYP_SHIFT)
#define ACPI_SLP_EN	   (1u << 13)
#define ACPI_PM1_PWRBTN	   (1u << 8)
#define ACPI_LAPIC_ADDR	   0xFEE00000u
#define ACPI_IOAPIC_ADDR   0xFEC00000u
#define ACPI_MAX_CPUS	   254 /* xAPIC ids are 8 bit; 0xFF is broadcast, and the IOAPIC needs one */

/* Writes all tables for `ncpus` vCPUs (APIC id = index). Returns 0, or -1 with an error printed
 * when ncpus is out of range or the tables do not fit in guest memory. */
int acpi_build(struct guest_mem *m, int ncpus);

#endif
