/* Local APIC (xAPIC, MMIO at the base IA32_APIC_BASE names), IOAPIC and the legacy PICs. */
#include "libguest.h"

#define IA32_APIC_BASE 0x1b

static uint64_t lapic_base = 0xfee00000;
static uint64_t ioapic_base;
static uint32_t ioapic_gsi0;

uint32_t lapic_read(uint32_t reg)
{
	return mmio_read32(lapic_base + reg);
}

void lapic_write(uint32_t reg, uint32_t v)
{
	mmio_write32(lapic_base + reg, v);
}

uint32_t lapic_id(void)
{
	return lapic_read(LAPIC_ID) >> 24;
}

void lapic_eoi(void)
{
	lapic_write(LAPIC_EOI, 0);
}

/* Ring 0: enables this CPU's APIC (global enable in the MSR, software enable in the SVR). */
void lapic_init(void)
{
	uint64_t msr = rdmsr(IA32_APIC_BASE);
	if (!(msr & (1 << 11)))
		wrmsr(IA32_APIC_BASE, msr | (1 << 11));
	lapic_base = msr & 0xffffff000ull;
	lapic_write(LAPIC_TPR, 0);
	lapic_write(LAPIC_SVR, 0x100 | SPURIOUS_VEC);
}

bool lapic_ipi(uint32_t dest, uint32_t icr_lo)
{
	lapic_write(LAPIC_ICR_HI, dest << 24);
	lapic_write(LAPIC_ICR_LO, icr_lo);
	for (int i = 0; i < 100000; i++) {
		if (!(lapic_read(LAPIC_ICR_LO) & (1 << 12))) /* delivery status: idle */
			return true;
		cpu_relax();
	}
	return false;
}

static uint32_t ioapic_read(uint32_t reg)
{
	mmio_write32(ioapic_base, reg);
	return mmio_read32(ioapic_base + 0x10);
}

static void ioapic_write(uint32_t reg, uint32_t v)
{
	mmio_write32(ioapic_base, reg);
	mmio_write32(ioapic_base + 0x10, v);
}

void ioapic_init(uint64_t base, uint32_t gsi_base)
{
	ioapic_base = base;
	ioapic_gsi0 = gsi_base;
}

uint32_t ioapic_max_redir(void)
{
	return (ioapic_read(1) >> 16) & 0xff;
}

void ioapic_route(uint32_t gsi, uint8_t vector, uint32_t dest, uint16_t flags)
{
	uint32_t pin = gsi - ioapic_gsi0;
	uint32_t lo = vector;
	if ((flags & 3) == 3)
		lo |= 1 << 13; /* active low */
	if (((flags >> 2) & 3) == 3)
		lo |= 1 << 15; /* level triggered */
	ioapic_write(0x10 + 2 * pin + 1, dest << 24);
	ioapic_write(0x10 + 2 * pin, lo);
}

void ioapic_mask(uint32_t gsi)
{
	uint32_t reg = 0x10 + 2 * (gsi - ioapic_gsi0);
	ioapic_write(reg, ioapic_read(reg) | (1 << 16));
}

void pic_disable(void)
{
	outb(0x20, 0x11); /* ICW1: init, ICW4 follows */
	outb(0xa0, 0x11);
	outb(0x21, 0x20); /* ICW2: vectors 0x20-0x27 and 0x28-0x2f */
	outb(0xa1, 0x28);
	outb(0x21, 0x04); /* ICW3: slave on IRQ 2 */
	outb(0xa1, 0x02);
	outb(0x21, 0x01); /* ICW4: 8086 mode */
	outb(0xa1, 0x01);
	outb(0x21, 0xff);
	outb(0xa1, 0xff);
}
