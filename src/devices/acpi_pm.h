/* ACPI fixed hardware (PM1a event and control blocks, PM timer) as our FADT describes it:
 * the guest powers off by writing SLP_TYP=5 with SLP_EN, and the host's shutdown request
 * reaches it as a power-button event on the SCI.
 *
 * Its fixed hardware, which machine/acpi.c describes to the guest in the FADT (and the
 * DSDT's \_S5, the MADT's SCI override) from the constants below:
 *   0x600  PM1a event block, 4 bytes: PM1_STS (16 bit) at 0x600, PM1_EN (16 bit) at 0x602.
 *          PM1_STS bit 8 = PWRBTN_STS (write 1 to clear); PM1_EN bit 8 = PWRBTN_EN. The power
 *          button is a fixed feature: raise SCI (IRQ 9, level, active high) when both are set.
 *   0x604  PM1a control block, 2 bytes: PM1_CNT. SLP_TYP in bits 10-12, SLP_EN = bit 13.
 *          A write with SLP_EN set and SLP_TYP = ACPI_SLP_TYP_S5 (5) means power off.
 *          Bit 0 (SCI_EN) reads as 1: the platform is always in ACPI mode (FADT SMI_CMD = 0).
 *   0x608  PM timer, 4 bytes: 32-bit counter at 3.579545 MHz (FADT TMR_VAL_EXT set).
 *   0xCF9  reset register (FADT RESET_REG, I/O, 8 bit): writing 0x06 resets the machine.
 *   SCI    IRQ 9 (ISA), overridden in the MADT to GSI 9 level-triggered, active high.
 */
#ifndef KITE_DEVICES_ACPI_PM_H
#define KITE_DEVICES_ACPI_PM_H

#include "devices/platform.h"
#include "util/state.h"
#include "kvm/iobus.h"

#include <pthread.h>
#include <stdint.h>

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

#define ACPI_PM_BASE ACPI_PM1_EVT_BLK /* status, enable, control, pad, timer */
#define ACPI_PM_LEN  12

struct acpi_pm {
	pthread_mutex_t lock;
	const struct platform_ops *platform;
	uint16_t status, enable, control;
	int sci_level;
	uint64_t start_ns;
};

extern const struct io_ops acpi_pm_ops;
extern const struct io_ops acpi_reset_ops; /* the 0xCF9 reset control register */
/* PM1 status, enable, control and the PM timer (section "acpi-pm"). */
extern const struct state_ops acpi_pm_state_ops;

void acpi_pm_init(struct acpi_pm *pm, const struct platform_ops *platform);
void acpi_pm_destroy(struct acpi_pm *pm);
/* Presses the power button: sets PWRBTN_STS and raises the SCI when the guest enabled it. */
void acpi_pm_power_button(struct acpi_pm *pm);

#endif
