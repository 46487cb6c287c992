/* ACPI fixed hardware (PM1a event and control blocks, PM timer) as our FADT describes it:
 * the guest powers off by writing SLP_TYP=5 with SLP_EN, and the host's shutdown request
 * reaches it as a power-button event on the SCI. Ports from machine/acpi.h's layout. */
#ifndef KITE_DEVICES_ACPI_PM_H
#define KITE_DEVICES_ACPI_PM_H

#include "devices/platform.h"
#include "util/state.h"
#include "machine/acpi.h"
#include "kvm/iobus.h"

#include <pthread.h>
#include <stdint.h>

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
