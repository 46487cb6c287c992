/* exit_device: ends the VM through the test exit device (QEMU's isa-debug-exit; kite's
 * --exit-device port=N): reads port=N (default 0xf4), checks the device reads as zeros, then
 * writes code=C with width=4 (outl, default), 2 (outw) or 1 (outb). The host asserts the VMM's
 * exit status (C << 1) | 1 and the absence of SUMMARY: a write that returns is a failure. */
#include "libguest.h"

const char guest_name[] = "exit_device";

void guest_main(void)
{
	uint16_t port = (uint16_t)cmdline_u64("port", 0xf4);
	uint32_t code = (uint32_t)cmdline_u64("code", 0);
	uint64_t width = cmdline_u64("width", 4);
	report(inl(port) == 0, "exit device at %#x reads as zeros", port);
	report(width == 1 || width == 2 || width == 4, "width=%lu is 1, 2 or 4", width);
	printf("guest: writing %u (%lu bytes) to port %#x\n", code, width, port);
	if (width == 1)
		outb(port, (uint8_t)code);
	else if (width == 2)
		outw(port, (uint16_t)code);
	else
		outl(port, code);
	report(false, "the VM ended at the exit device's write");
}
