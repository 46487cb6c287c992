/* reset: prints its banner, then pulls the reset line: method=kbd (i8042 command 0xFE, the
 * default) or method=cf9 (the PIIX/ICH reset control register). A VMM that reboots boots the
 * program again (the host sees the banner twice); with --no-reboot / -no-reboot it exits 0. */
#include "libguest.h"

const char guest_name[] = "reset";

void guest_main(void)
{
	char method[16] = "kbd";
	cmdline_get("method", method, sizeof(method));
	printf("reset: resetting through %s\n", method);
	if (strcmp(method, "cf9") == 0) {
		outb(0xcf9, 0x02); /* system reset, then the 0->1 edge of bit 2 starts it */
		outb(0xcf9, 0x06);
	} else {
		/* Wait for the controller's input buffer to drain, then pulse the reset line. */
		for (int i = 0; i < 100000 && (inb(0x64) & 0x02); i++)
			cpu_relax();
		outb(0x64, 0xfe);
	}
	udelay(1000000);
	report(false, "reset through %s restarted the machine", method);
}
