/* The DSDT's AML body, assembled by hand (no iasl in the build). */
#ifndef KITE_VMM_ACPI_DSDT_H
#define KITE_VMM_ACPI_DSDT_H

#include <stddef.h>
#include <stdint.h>

const uint8_t *acpi_dsdt_aml(void);
size_t acpi_dsdt_aml_len(void);

#endif
