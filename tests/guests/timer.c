/* timer: interrupts arrive from the LAPIC timer (periodic, one-shot, TSC-deadline when the CPU
 * has it), from PIT channel 0 through the IOAPIC (ISA IRQ 0 via the MADT override), and from the
 * LAPIC timer in x2APIC mode when CPUID offers x2APIC. Waiting happens in ring 3. */
#include "libguest.h"

const char guest_name[] = "timer";

#define LAPIC_TIMER_VEC	 0x40
#define PIT_VEC		 0x41
#define WANT		 10
#define X2APIC_MSR(reg)	 (0x800 + ((reg) >> 4))
#define MSR_TSC_DEADLINE 0x6e0

static volatile unsigned ticks;
static volatile bool x2apic_mode;

static void tick(struct intr_frame *f)
{
	ticks++;
	if (x2apic_mode)
		wrmsr(X2APIC_MSR(LAPIC_EOI), 0);
	else
		lapic_eoi();
}

/* Ring 3: waits until `ticks` reaches n or ms pass; returns the count seen. */
static uint64_t wait_ticks_n;
static uint64_t wait_ticks(uint64_t ms)
{
	uint64_t end = deadline_ms(ms);
	while (ticks < wait_ticks_n && !deadline_passed(end))
		cpu_relax();
	return ticks;
}

/* A periodic source keeps ticking while ring 3 returns to ring 0: more than asked for is
 * the expected count, reported as such (the raw count in parentheses). */
static unsigned at_most(unsigned got)
{
	return got < WANT ? got : WANT;
}

static unsigned wait_for(unsigned n, uint64_t ms)
{
	wait_ticks_n = n;
	return (unsigned)run_user(wait_ticks, ms);
}

static void lapic_periodic(void)
{
	ticks = 0;
	lapic_write(LAPIC_TMR_DIV, 0x3); /* divide by 16 */
	lapic_write(LAPIC_LVT_TMR, LAPIC_TIMER_VEC | (1 << 17));
	lapic_write(LAPIC_TMR_INIT, 100000);
	unsigned got = wait_for(WANT, 5000);
	lapic_write(LAPIC_LVT_TMR, 1 << 16);
	lapic_write(LAPIC_TMR_INIT, 0);
	report(got >= WANT, "LAPIC timer periodic: %u of %u interrupts (%u)", at_most(got), WANT,
	       got);
}

static void lapic_oneshot(void)
{
	ticks = 0;
	lapic_write(LAPIC_TMR_DIV, 0x3);
	lapic_write(LAPIC_LVT_TMR, LAPIC_TIMER_VEC);
	lapic_write(LAPIC_TMR_INIT, 50000);
	unsigned got = wait_for(1, 5000);
	uint32_t cur = lapic_read(LAPIC_TMR_CUR);
	unsigned later = wait_for(2, 50); /* a one-shot must not fire again */
	lapic_write(LAPIC_LVT_TMR, 1 << 16);
	report(got == 1 && cur == 0 && later == 1,
	       "LAPIC timer one-shot: one interrupt, count at 0 (%u, %u, current %u)", got, later,
	       cur);
}

static void lapic_tsc_deadline(void)
{
	uint32_t a, b, c, d;
	cpuid(1, 0, &a, &b, &c, &d);
	if (!(c & (1u << 24))) {
		report_skip("LAPIC TSC-deadline timer (not in CPUID)");
		return;
	}
	ticks = 0;
	lapic_write(LAPIC_LVT_TMR, LAPIC_TIMER_VEC | (2 << 17));
	__asm__ volatile("mfence" ::: "memory");      /* SDM: order the LVT write before the MSR */
	wrmsr(MSR_TSC_DEADLINE, rdtsc() + tsc_khz()); /* 1 ms */
	unsigned got = wait_for(1, 5000);
	lapic_write(LAPIC_LVT_TMR, 1 << 16);
	report(got == 1 && rdmsr(MSR_TSC_DEADLINE) == 0,
	       "LAPIC TSC-deadline timer: one interrupt, MSR cleared");
}

static void pit_ioapic(const struct madt_info *m)
{
	uint16_t flags;
	uint32_t gsi = acpi_isa_gsi(m, 0, &flags);
	ioapic_init(m->ioapic_addr, m->ioapic_gsi_base);
	ticks = 0;
	outb(0x43, 0x34); /* channel 0, lo/hi, mode 2 (rate generator) */
	outb(0x40, 1193 & 0xff);
	outb(0x40, 1193 >> 8); /* 1 kHz */
	ioapic_route(gsi, PIT_VEC, lapic_id(), flags);
	unsigned got = wait_for(WANT, 5000);
	ioapic_mask(gsi);
	outb(0x43, 0x30); /* mode 0 with no count loaded: the channel stops */
	report(got >= WANT, "PIT via IOAPIC (IRQ 0 -> GSI %u): %u of %u interrupts (%u)", gsi,
	       at_most(got), WANT, got);
}

static void x2apic(void)
{
	uint32_t a, b, c, d;
	cpuid(1, 0, &a, &b, &c, &d);
	if (!(c & (1u << 21))) {
		report_skip("x2APIC (not in CPUID)");
		return;
	}
	uint32_t xid = lapic_id();
	wrmsr(0x1b, rdmsr(0x1b) | (1 << 10) | (1 << 11));
	x2apic_mode = true;
	uint32_t id = (uint32_t)rdmsr(X2APIC_MSR(LAPIC_ID));
	report(id == xid, "x2APIC id %u matches the xAPIC id %u", id, xid);
	ticks = 0;
	wrmsr(X2APIC_MSR(LAPIC_TMR_DIV), 0x3);
	wrmsr(X2APIC_MSR(LAPIC_LVT_TMR), LAPIC_TIMER_VEC | (1 << 17));
	wrmsr(X2APIC_MSR(LAPIC_TMR_INIT), 100000);
	unsigned got = wait_for(WANT, 5000);
	wrmsr(X2APIC_MSR(LAPIC_LVT_TMR), 1 << 16);
	report(got >= WANT, "x2APIC timer periodic: %u of %u interrupts (%u)", at_most(got), WANT,
	       got);
}

void guest_main(void)
{
	struct madt_info m;
	lapic_init();
	set_intr_handler(LAPIC_TIMER_VEC, tick);
	set_intr_handler(PIT_VEC, tick);
	printf("timer: TSC %lu kHz\n", tsc_khz());
	lapic_periodic();
	lapic_oneshot();
	lapic_tsc_deadline();
	if (acpi_madt(&m) && m.nioapic)
		pit_ioapic(&m);
	else
		report(false, "MADT names an IOAPIC");
	x2apic(); /* last: the xAPIC MMIO interface is gone afterwards */
}
