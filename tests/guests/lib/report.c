/* Result lines the host parses: "PASS: name", "FAIL: name", "SKIP: name", then one
 * "SUMMARY: N passed, M failed" before power-off. */
#include "libguest.h"

static int passed, failed;

static void report_line(const char *tag, const char *fmt, va_list ap)
{
	char name[400];
	vsnprintf(name, sizeof(name), fmt, ap);
	printf("%s: %s\n", tag, name);
}

void report(bool pass, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	__atomic_add_fetch(pass ? &passed : &failed, 1, __ATOMIC_RELAXED);
	report_line(pass ? "PASS" : "FAIL", fmt, ap);
	va_end(ap);
}

void report_skip(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	report_line("SKIP", fmt, ap);
	va_end(ap);
}

int report_failures(void)
{
	return __atomic_load_n(&failed, __ATOMIC_RELAXED);
}

void guest_exit(void)
{
	irq_disable();
	printf("SUMMARY: %d passed, %d failed\n", __atomic_load_n(&passed, __ATOMIC_RELAXED),
	       __atomic_load_n(&failed, __ATOMIC_RELAXED));
	acpi_poweroff(true);
	/* No ACPI S5: QEMU's PM1a_CNT (q35 0x604, piix 0xb004), then the i8042 reset line, which
	 * ends a VMM started with --no-reboot / -no-reboot. */
	printf("guest: ACPI power-off failed, trying fallbacks\n");
	outw(0x604, 0x2000);
	outw(0xb004, 0x2000);
	outb(0x64, 0xfe);
	halt_forever();
}
