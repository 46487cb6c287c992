/* What a platform device may ask of the machine it sits in: raise an interrupt line, end the
 * run (power-off, reset, an exit code from the test exit device), flush a guest page's mapping
 * (the pc-testdev). Kept as callbacks so that devices know nothing of KVM and can be
 * unit-tested alone. */
#ifndef KITE_DEVICES_PLATFORM_H
#define KITE_DEVICES_PLATFORM_H

#include <stdint.h>

enum machine_event {
	MACHINE_POWEROFF, /* ACPI S5 */
	MACHINE_RESET,	  /* i8042 or 0xCF9 reset line */
};

struct platform_ops {
	void (*set_irq)(void *opaque, unsigned gsi, int level);
	void (*event)(void *opaque, enum machine_event ev);
	/* The guest asked to end the run with `code` (devices/debug_exit.h). */
	void (*guest_exit)(void *opaque, uint32_t code);
	/* Drop the hypervisor's mapping of the guest page at `gpa` (its contents stay), so the
	 * guest's next touch faults it back in (devices/pc_testdev.h). Not RAM: nothing. */
	void (*flush_page)(void *opaque, uint64_t gpa);
	void *opaque;
};

#endif
