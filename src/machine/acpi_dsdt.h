/* The DSDT's AML body: the sleep-state packages and the PCI host bridge. */
#ifndef KITE_MACHINE_ACPI_DSDT_H
#define KITE_MACHINE_ACPI_DSDT_H

#include "machine/acpi_aml.h"

/* Appends the DSDT body (everything after the table header) to `out`. Returns 0, or -1 when
 * memory ran out. */
int acpi_dsdt_build(struct aml *out);

#endif
