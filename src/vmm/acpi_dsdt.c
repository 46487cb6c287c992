#include "vmm/acpi_dsdt.h"
#include "vmm/acpi.h"

#define AML_NAME    0x08
#define AML_PACKAGE 0x12
#define AML_BYTE    0x0A
#define AML_ZERO    0x00
#define AML_ROOT    0x5C /* '\' */

/* Name (\_Sx_, Package (4) { typ_a, typ_b, 0, 0 }): the values a guest writes to SLP_TYP in
 * PM1a_CNT / PM1b_CNT to enter sleep state x. PkgLength 8 counts itself, NumElements and the
 * four elements. The power button is a fixed feature (FADT), so it needs no AML. */
#define SLEEP_PKG(c, typ)                                                                          \
	AML_NAME, AML_ROOT, '_', 'S', (c), '_', AML_PACKAGE, 8, 4, AML_BYTE, (typ), AML_BYTE,      \
	    (typ), AML_ZERO, AML_ZERO

static const uint8_t aml[] = {
    SLEEP_PKG('0', 0),
    SLEEP_PKG('5', ACPI_SLP_TYP_S5),
};

const uint8_t *acpi_dsdt_aml(void)
{
	return aml;
}

size_t acpi_dsdt_aml_len(void)
{
	return sizeof(aml);
}
