/* pvh: the machine state at the PVH entry point, held against the PVH boot ABI (Xen's
 * docs/misc/pvh.pandoc): EBX = start_info; CR0.PE set, the other writable CR0 bits clear (the
 * cache-disable pair included); CR4 clear; EFLAGS IF, TF, VM clear; CS a 32-bit execute/read
 * segment and DS, ES, SS 32-bit read/write segments, all flat (base 0, limit 4 GiB); checked
 * through the VMM's GDT, which must describe what the selectors hold (a guest reloading them
 * gets the table's entries). */
#include "libguest.h"

const char guest_name[] = "pvh";

#define CR0_PE	     (1u << 0)
#define CR0_WRITABLE 0xe005002eu /* PG CD NW AM WP NE TS EM MP */
#define EFLAGS_TF    (1u << 8)
#define EFLAGS_IF    (1u << 9)
#define EFLAGS_VM    (1u << 17)

struct seg {
	bool ok; /* selector inside the GDT */
	uint32_t base, limit;
	bool present, system, code, rw, big, lng;
};

static struct seg decode(uint16_t sel)
{
	const struct pvh_entry_state *e = &pvh_entry_state;
	struct seg s = {0};
	uint32_t off = sel & ~7u;
	if ((sel & 4) || off == 0 || off + 7 > e->gdt_limit || e->gdt_base == 0)
		return s; /* LDT, null or outside the table */
	uint64_t d;
	memcpy(&d, (const void *)(uint64_t)(e->gdt_base + off), 8);
	s.ok = true;
	s.base = (uint32_t)(((d >> 16) & 0xffffff) | (((d >> 56) & 0xff) << 24));
	s.limit = (uint32_t)((d & 0xffff) | (((d >> 48) & 0xf) << 16));
	if (d & (1ull << 55))
		s.limit = (s.limit << 12) | 0xfff;
	s.present = d & (1ull << 47);
	s.system = !(d & (1ull << 44));
	s.code = d & (1ull << 43);
	s.rw = d & (1ull << 41); /* readable code / writable data */
	s.lng = d & (1ull << 53);
	s.big = d & (1ull << 54);
	return s;
}

static void check_flat(const char *name, uint16_t sel, bool code)
{
	struct seg s = decode(sel);
	printf("pvh: %s %#x: base %#x limit %#x%s%s%s%s\n", name, sel, s.base, s.limit,
	       s.code ? " code" : " data", s.rw ? (s.code ? " readable" : " writable") : "",
	       s.big ? " 32-bit" : "", s.lng ? " 64-bit" : "");
	report(s.ok && s.present && !s.system && s.code == code && s.rw && s.big && !s.lng &&
		   s.base == 0 && s.limit == 0xffffffff,
	       "%s selects a flat 32-bit %s GDT entry", name, code ? "execute/read" : "read/write");
}

void guest_main(void)
{
	const struct pvh_entry_state *e = &pvh_entry_state;
	printf("pvh: cr0 %#x cr4 %#x eflags %#x gdt %#x+%#x tr %#x\n", e->cr0, e->cr4, e->eflags,
	       e->gdt_base, e->gdt_limit, e->tr);
	report(true, "EBX pointed at struct hvm_start_info (magic checked)");
	report(e->cr0 & CR0_PE, "CR0.PE set");
	report(!(e->cr0 & CR0_WRITABLE), "CR0 writable bits other than PE clear (%#x)",
	       e->cr0 & CR0_WRITABLE);
	report(e->cr4 == 0, "CR4 clear (%#x)", e->cr4);
	report(!(e->eflags & (EFLAGS_IF | EFLAGS_TF | EFLAGS_VM)), "EFLAGS IF, TF, VM clear (%#x)",
	       e->eflags);
	check_flat("CS", e->cs, true);
	check_flat("DS", e->ds, false);
	check_flat("ES", e->es, false);
	check_flat("SS", e->ss, false);

	report(boot_start_info_version >= 1, "start_info version %u has the memory map",
	       boot_start_info_version);
	char want[256];
	if (cmdline_get("expect", want, sizeof(want)))
		report(strcmp(want, "a=b=c") == 0 && cmdline_u64("n", 0) == 42,
		       "command line arrives intact");
}
