#include "machine/boot_cpu.h"
#include "util/err.h"
#include "machine/boot_bytes.h"

#include <string.h>

#define CR0_PE	  0x1ULL
#define CR0_ET	  0x10ULL
#define CR0_PG	  0x80000000ULL
#define CR4_PAE	  0x20ULL
#define EFER_LME  0x100ULL
#define EFER_LMA  0x400ULL
#define RFLAGS_RS 0x2ULL /* bit 1 is always set */

#define SEG_TYPE_CODE_XRA 0xb /* execute/read, accessed */
#define SEG_TYPE_DATA_RWA 0x3 /* read/write, accessed */
#define SEG_TYPE_TSS_BUSY 0xb /* 32/64-bit TSS, busy: what VMX wants in TR */
#define TSS_LIMIT	  0x67

static struct kvm_segment flat(uint16_t sel, uint8_t type, int l, int db)
{
	return (struct kvm_segment){.base = 0,
				    .limit = 0xffffffff,
				    .selector = sel,
				    .type = type,
				    .present = 1,
				    .dpl = 0,
				    .db = (uint8_t)db,
				    .s = 1,
				    .l = (uint8_t)l,
				    .g = 1};
}

static struct kvm_segment tss(void)
{
	return (struct kvm_segment){
	    .limit = TSS_LIMIT, .selector = BOOT_SEL_TSS, .type = SEG_TYPE_TSS_BUSY, .present = 1};
}

uint64_t boot_gdt_descriptor(const struct kvm_segment *s)
{
	uint64_t limit = s->g ? s->limit >> 12 : s->limit;
	uint64_t base = s->base;
	return (limit & 0xffff) | (base & 0xffffff) << 16 | (uint64_t)(s->type & 0xf) << 40 |
	       (uint64_t)(s->s & 1) << 44 | (uint64_t)(s->dpl & 3) << 45 |
	       (uint64_t)(s->present & 1) << 47 | ((limit >> 16) & 0xf) << 48 |
	       (uint64_t)(s->avl & 1) << 52 | (uint64_t)(s->l & 1) << 53 |
	       (uint64_t)(s->db & 1) << 54 | (uint64_t)(s->g & 1) << 55 |
	       ((base >> 24) & 0xff) << 56;
}

static int write_gdt(struct guest_mem *m, uint64_t addr, const struct kvm_segment *code)
{
	uint8_t gdt[BOOT_GDT_ENTRIES * 8];
	memset(gdt, 0, sizeof(gdt));
	struct kvm_segment data = flat(BOOT_SEL_DATA, SEG_TYPE_DATA_RWA, 0, 1);
	struct kvm_segment t = tss();
	put_le64(gdt + BOOT_SEL_CODE, boot_gdt_descriptor(code));
	put_le64(gdt + BOOT_SEL_DATA, boot_gdt_descriptor(&data));
	put_le64(gdt + BOOT_SEL_TSS, boot_gdt_descriptor(&t)); /* high half (base 63:32) stays 0 */
	if (gmem_write(m, addr, gdt, sizeof(gdt)) < 0)
		return kite_error("boot GDT at 0x%llx is not in guest RAM",
				  (unsigned long long)addr);
	return 0;
}

int boot_gdt_write(struct guest_mem *m)
{
	struct kvm_segment c64 = flat(BOOT_SEL_CODE, SEG_TYPE_CODE_XRA, 1, 0);
	struct kvm_segment c32 = flat(BOOT_SEL_CODE, SEG_TYPE_CODE_XRA, 0, 1);
	if (write_gdt(m, BOOT_GDT64_ADDR, &c64) < 0 || write_gdt(m, BOOT_GDT32_ADDR, &c32) < 0)
		return -1;
	return 0;
}

void boot_cpu_long64(struct boot_cpu_state *s, uint64_t entry, uint64_t boot_params, uint64_t cr3)
{
	memset(s, 0, sizeof(*s));
	s->rip = entry;
	s->rsi = boot_params;
	s->rsp = BOOT_STACK_TOP;
	s->rflags = RFLAGS_RS; /* interrupts off */
	s->cr0 = CR0_PE | CR0_ET | CR0_PG;
	s->cr3 = cr3;
	s->cr4 = CR4_PAE;
	s->efer = EFER_LME | EFER_LMA;
	s->gdt_base = BOOT_GDT64_ADDR;
	s->gdt_limit = BOOT_GDT_ENTRIES * 8 - 1;
	s->cs = flat(BOOT_SEL_CODE, SEG_TYPE_CODE_XRA, 1, 0);
	s->ds = flat(BOOT_SEL_DATA, SEG_TYPE_DATA_RWA, 0, 1);
	s->tr = tss();
}

void boot_cpu_pvh32(struct boot_cpu_state *s, uint64_t entry, uint64_t start_info)
{
	memset(s, 0, sizeof(*s));
	s->rip = entry;
	s->rbx = start_info;
	s->rsp = BOOT_STACK_TOP;
	s->rflags = RFLAGS_RS;
	s->cr0 = CR0_PE | CR0_ET; /* the PVH ABI: PE and ET set, paging off */
	s->gdt_base = BOOT_GDT32_ADDR;
	s->gdt_limit = BOOT_GDT_ENTRIES * 8 - 1;
	s->cs = flat(BOOT_SEL_CODE, SEG_TYPE_CODE_XRA, 0, 1);
	s->ds = flat(BOOT_SEL_DATA, SEG_TYPE_DATA_RWA, 0, 1);
	s->tr = tss();
}

void boot_cpu_multiboot32(struct boot_cpu_state *s, uint64_t entry, uint32_t magic, uint64_t info)
{
	boot_cpu_pvh32(s, entry, info);
	s->rax = magic;
	s->rsp = info;
}
