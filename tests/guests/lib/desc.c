/* IDT (every vector through isr.S stubs but #UD, which goes to ureq_entry for the requests of
 * ring 3, user.S), the BSP's TSS (RSP0 for interrupts taken in ring 3; no I/O bitmap and
 * IOPL=0, so ring 3 touches no port itself) and the C interrupt dispatcher. */
#include "libguest.h"

struct idt_gate {
	uint16_t off_lo;
	uint16_t sel;
	uint8_t ist;
	uint8_t type;
	uint16_t off_mid;
	uint32_t off_hi;
	uint32_t zero;
} __attribute__((packed));

struct tss {
	uint32_t reserved0;
	uint64_t rsp[3];
	uint64_t reserved1;
	uint64_t ist[7];
	uint64_t reserved2;
	uint16_t reserved3;
	uint16_t iomap_base;
} __attribute__((packed));

extern char isr_stubs[], ureq_entry[], intr_stack_top[];
extern uint64_t gdt[];

static struct idt_gate idt[256] __attribute__((aligned(16)));
static struct tss tss __attribute__((aligned(16)));
static intr_handler handlers[256];

static void set_gate(int vec, void *fn, int dpl)
{
	uint64_t a = (uint64_t)fn;
	idt[vec] = (struct idt_gate){
	    .off_lo = (uint16_t)a,
	    .sel = 0x08,
	    .type = (uint8_t)(0x8e | (dpl << 5)), /* present 64-bit interrupt gate */
	    .off_mid = (uint16_t)(a >> 16),
	    .off_hi = (uint32_t)(a >> 32),
	};
}

void idt_load(void)
{
	struct {
		uint16_t limit;
		uint64_t base;
	} __attribute__((packed)) ptr = {sizeof(idt) - 1, (uint64_t)idt};
	__asm__ volatile("lidt %0" : : "m"(ptr));
}

static void ignore(struct intr_frame *f)
{
}

void desc_init(void)
{
	for (int v = 0; v < 256; v++)
		set_gate(v, isr_stubs + 16 * v, 0);
	set_gate(6, ureq_entry, 0);
	/* The APIC spurious vector and the masked PICs' spurious IRQ 7/15 need no EOI. */
	handlers[SPURIOUS_VEC] = ignore;
	handlers[0x27] = ignore;
	handlers[0x2f] = ignore;
	idt_load();

	tss.rsp[0] = (uint64_t)intr_stack_top;
	tss.iomap_base = sizeof(tss);
	uint64_t base = (uint64_t)&tss, limit = sizeof(tss) - 1;
	gdt[6] = (limit & 0xffff) | ((base & 0xffffff) << 16) | (0x89ull << 40) |
		 (((limit >> 16) & 0xf) << 48) | (((base >> 24) & 0xff) << 56);
	gdt[7] = base >> 32;
	__asm__ volatile("ltr %w0" : : "r"(0x30));
}

void set_intr_handler(int vector, intr_handler h)
{
	handlers[vector & 0xff] = h;
}

static const char *const exception_names[32] = {
    "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "CSO", "#TS",
    "#NP", "#SS", "#GP", "#PF", "15",  "#MF", "#AC", "#MC", "#XM", "#VE", "#CP",
};

void interrupt_dispatch(struct intr_frame *f)
{
	intr_handler h = handlers[f->vector & 0xff];
	if (h) {
		h(f);
		return;
	}
	uint64_t cr2;
	__asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
	const char *name =
	    f->vector < 32 && exception_names[f->vector] ? exception_names[f->vector] : "interrupt";
	report(false, "unexpected %s (vector %lu) on apic %u: error %#lx rip %#lx cs %#lx cr2 %#lx",
	       name, f->vector, lapic_id(), f->error, f->rip, f->cs, cr2);
	guest_exit();
}
