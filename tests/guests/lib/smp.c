/* AP bring-up: INIT, then SIPI (twice if needed) at the trampoline copied to 0x8000. Each AP
 * enters ap_main() on its own stack, records its APIC id, reports and halts. One AP at a time,
 * so the single ap_boot_stack slot is enough. */
#include "libguest.h"

#define AP_TRAMPOLINE_BASE 0x8000
#define AP_STACK_SIZE	   8192

extern char ap_trampoline_start[], ap_trampoline_end[];

volatile uint32_t smp_ap_ids[MAX_CPUS];
volatile int smp_ap_count;
uint64_t ap_boot_stack; /* read by trampoline.S */

static volatile int ap_arrived;

void ap_main(void)
{
	idt_load();
	lapic_init();
	uint32_t id = lapic_id();
	int slot = __atomic_fetch_add(&smp_ap_count, 1, __ATOMIC_ACQ_REL);
	if (slot < MAX_CPUS)
		smp_ap_ids[slot] = id;
	printf("guest: AP with APIC id %u online\n", id);
	__atomic_store_n(&ap_arrived, 1, __ATOMIC_RELEASE);
}

static bool wait_arrival(uint64_t ms)
{
	uint64_t end = deadline_ms(ms);
	while (!deadline_passed(end)) {
		if (__atomic_load_n(&ap_arrived, __ATOMIC_ACQUIRE))
			return true;
		cpu_relax();
	}
	return __atomic_load_n(&ap_arrived, __ATOMIC_ACQUIRE);
}

bool smp_start_ap(uint32_t id)
{
	static bool copied;
	size_t len = (size_t)(ap_trampoline_end - ap_trampoline_start);
	if (!copied) {
		memcpy((void *)AP_TRAMPOLINE_BASE, ap_trampoline_start, len);
		copied = true;
	}
	if (__atomic_load_n(&smp_ap_count, __ATOMIC_ACQUIRE) >= MAX_CPUS)
		return false;
	/* From the page allocator rather than .bss: zeroing .bss is ring-0 work. */
	uint8_t *stack = pages_alloc(AP_STACK_SIZE / PAGE_SIZE);
	if (!stack)
		return false;
	ap_boot_stack = (uint64_t)(stack + AP_STACK_SIZE);
	__atomic_store_n(&ap_arrived, 0, __ATOMIC_RELEASE);

	/* INIT (level assert), 10 ms, then SIPI with vector = page number of the trampoline. */
	if (!lapic_ipi(id, 0x4500))
		return false;
	udelay(10000);
	uint32_t sipi = 0x4600 | (AP_TRAMPOLINE_BASE >> 12);
	for (int attempt = 0; attempt < 2; attempt++) {
		if (!lapic_ipi(id, sipi))
			return false;
		if (wait_arrival(attempt ? 2000 : 200))
			return true;
	}
	return false;
}
