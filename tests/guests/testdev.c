/* testdev: QEMU's pc-testdev (kite's --testdev) as kvm-unit-tests drives it. Ring 0 does every
 * port access; ring 3 only waits (IOPL=0: it never touches a port).
 *   - the latch at 0xe0-0xe3: a 32-bit write reads back whole and by bytes and words, byte and
 *     word writes replace only their bytes, and 0xe8 reads the same latch;
 *   - IRQ lines through ports 0x2000 + n: GSI 10 routed edge-triggered raises one interrupt on
 *     the IOAPIC; GSI 11 routed level-triggered raises one, its handler lowers the line before
 *     the EOI and no second one follows (each awaited up to irq_ms=, default 5000);
 *   - the flush-page port 0xe4: a page's bytes are the same after its flush, and it takes writes;
 *   - the 64 KiB MMIO window at 0xff000000: zeros at first, 1-, 2-, 4- and 8-byte writes read
 *     back, at its first and last bytes, overlapping writes merge byte by byte. */
#include "libguest.h"

const char guest_name[] = "testdev";

#define LATCH	   0xe0
#define LATCH_BYTE 0xe8
#define FLUSH	   0xe4
#define IRQ_PORT   0x2000
#define IOMEM	   0xff000000ull
#define IOMEM_LEN  0x10000ull
#define EDGE_GSI   10
#define LEVEL_GSI  11
#define EDGE_VEC   0x50
#define LEVEL_VEC  0x51
#define INTI_EDGE  0x5 /* MPS INTI flags: active high, edge */
#define INTI_LEVEL 0xd /* active high, level */

static volatile unsigned edge_count, level_count;

static void edge_irq(struct intr_frame *f)
{
	edge_count++;
	lapic_eoi();
}

static void level_irq(struct intr_frame *f)
{
	level_count++;
	outb(IRQ_PORT + LEVEL_GSI, 0); /* lower the line first, or the IOAPIC sends it again */
	lapic_eoi();
}

static void latch(void)
{
	outl(LATCH, 0x12345678);
	report(inl(LATCH) == 0x12345678, "latch reads back 0x12345678 (0x%x)", inl(LATCH));
	report(inb(LATCH + 1) == 0x56 && inw(LATCH + 2) == 0x1234 && inb(LATCH + 3) == 0x12,
	       "latch reads by byte and word from each port");
	outb(LATCH + 2, 0xab);
	report(inl(LATCH) == 0x12ab5678, "a byte write replaces its byte (0x%x)", inl(LATCH));
	outw(LATCH + 1, 0xcdef); /* QEMU's memory core drops unaligned accesses */
	report(inl(LATCH) == 0x12ab5678 && inw(LATCH + 1) == 0 && inl(LATCH + 2) == 0,
	       "unaligned accesses are dropped, read as 0 (0x%x 0x%x 0x%x)", inl(LATCH),
	       inw(LATCH + 1), inl(LATCH + 2));
	outw(LATCH, 0xcdef);
	report(inl(LATCH) == 0x12abcdef, "a word write replaces two bytes (0x%x)", inl(LATCH));
	report(inl(LATCH_BYTE) == 0x12abcdef && inw(LATCH_BYTE + 2) == 0x12ab,
	       "0xe8 reads the same latch (0x%x)", inl(LATCH_BYTE));
	outb(LATCH_BYTE + 3, 0x9a);
	report(inl(LATCH) == 0x9aabcdef, "a byte written at 0xeb is the latch's top (0x%x)",
	       inl(LATCH));
}

static uint64_t wait_n;
static volatile unsigned *wait_counter;

/* Ring 3: waits until the counter reaches wait_n or ms pass; returns the count. */
static uint64_t wait_count(uint64_t ms)
{
	uint64_t end = deadline_ms(ms);
	while (*wait_counter < wait_n && !deadline_passed(end))
		cpu_relax();
	return *wait_counter;
}

static unsigned wait_for(volatile unsigned *counter, unsigned n, uint64_t ms)
{
	wait_counter = counter;
	wait_n = n;
	return (unsigned)run_user(wait_count, ms);
}

static void irq_lines(void)
{
	struct madt_info m;
	if (!acpi_madt(&m) || !m.nioapic) {
		report(false, "MADT names an IOAPIC");
		return;
	}
	lapic_init();
	ioapic_init(m.ioapic_addr, m.ioapic_gsi_base);
	set_intr_handler(EDGE_VEC, edge_irq);
	set_intr_handler(LEVEL_VEC, level_irq);
	ioapic_route(EDGE_GSI, EDGE_VEC, lapic_id(), INTI_EDGE);
	ioapic_route(LEVEL_GSI, LEVEL_VEC, lapic_id(), INTI_LEVEL);

	uint64_t ms = cmdline_u64("irq_ms", 5000);
	outb(IRQ_PORT + EDGE_GSI, 1);
	unsigned got = wait_for(&edge_count, 1, ms);
	unsigned later = wait_for(&edge_count, 2, 20); /* an edge is one interrupt */
	outb(IRQ_PORT + EDGE_GSI, 0);
	report(got == 1 && later == 1, "IRQ line %d (edge) raised by port 0x%x: one interrupt (%u)",
	       EDGE_GSI, IRQ_PORT + EDGE_GSI, later);

	outb(IRQ_PORT + LEVEL_GSI, 1);
	got = wait_for(&level_count, 1, ms);
	later = wait_for(&level_count, 2, 20); /* lowered by the handler: no second one */
	report(
	    got == 1 && later == 1,
	    "IRQ line %d (level) raised by port 0x%x, lowered by its handler: one interrupt (%u)",
	    LEVEL_GSI, IRQ_PORT + LEVEL_GSI, later);
	report(inb(IRQ_PORT + EDGE_GSI) == 0, "IRQ line ports read as 0");
	ioapic_mask(EDGE_GSI);
	ioapic_mask(LEVEL_GSI);
}

static uint8_t flush_buf[2 * PAGE_SIZE] __attribute__((aligned(4096)));

static void flush_page(void)
{
	uint8_t *p = flush_buf;
	for (unsigned i = 0; i < PAGE_SIZE; i++)
		p[i] = (uint8_t)(i * 7 + 3);
	outl(FLUSH, (uint32_t)(uint64_t)p + 0x123); /* any address in the page */
	bool same = true;
	for (unsigned i = 0; i < PAGE_SIZE; i++)
		same &= p[i] == (uint8_t)(i * 7 + 3);
	p[100] = 0x5a;
	outl(FLUSH, (uint32_t)(uint64_t)p);
	report(same && p[100] == 0x5a, "a flushed page keeps its bytes and takes writes");
	report(inl(FLUSH) == 0, "the flush port reads as 0");
}

static void iomem(void)
{
	bool zero = mmio_read32(IOMEM) == 0 && mmio_read32(IOMEM + IOMEM_LEN - 4) == 0 &&
		    *(volatile uint64_t *)(IOMEM + 0x800) == 0;
	report(zero, "MMIO window reads zeros at first");
	mmio_write8(IOMEM, 0x11);
	mmio_write16(IOMEM + 2, 0x2233);
	mmio_write32(IOMEM + 4, 0x44556677);
	*(volatile uint64_t *)(IOMEM + 8) = 0x8899aabbccddeeffull;
	mmio_write8(IOMEM + IOMEM_LEN - 1, 0xee);
	bool back = mmio_read8(IOMEM) == 0x11 && mmio_read16(IOMEM + 2) == 0x2233 &&
		    mmio_read32(IOMEM + 4) == 0x44556677 &&
		    *(volatile uint64_t *)(IOMEM + 8) == 0x8899aabbccddeeffull &&
		    mmio_read8(IOMEM + IOMEM_LEN - 1) == 0xee;
	report(back, "MMIO window reads back 1-, 2-, 4- and 8-byte writes, first and last byte");
	report(mmio_read32(IOMEM) == 0x22330011 && mmio_read32(IOMEM + IOMEM_LEN - 4) == 0xee000000,
	       "MMIO window bytes merge across widths (0x%x, 0x%x)", mmio_read32(IOMEM),
	       mmio_read32(IOMEM + IOMEM_LEN - 4));
}

void guest_main(void)
{
	latch();
	irq_lines();
	flush_page();
	iomem();
}
