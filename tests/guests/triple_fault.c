/* triple_fault: loads an empty IDT and executes ud2. #UD cannot be delivered, nor the #DF that
 * follows, so the CPU shuts down: a VMM must stop this vCPU and say so (kite: non-zero exit
 * naming the vCPU; QEMU: a reset, which -no-reboot turns into an exit). */
#include "libguest.h"

const char guest_name[] = "triple_fault";

void guest_main(void)
{
	struct {
		uint16_t limit;
		uint64_t base;
	} __attribute__((packed)) empty = {0, 0};
	printf("triple_fault: loading an empty IDT and faulting\n");
	__asm__ volatile("lidt %0\n\tud2" : : "m"(empty));
	report(false, "the CPU survived a fault with an empty IDT");
}
