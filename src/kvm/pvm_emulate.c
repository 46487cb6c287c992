/* One refused guest instruction, carried out with Unicorn 2 and Capstone (pvm_emulate.h).
 *
 * What Unicorn 2.0.1 (Debian 12) does and does not do, measured here and checked by
 * tests/unit/test_pvm_emulate.c against the host CPU:
 * - With CR0.PG set it walks the guest's page tables but then uses the virtual address as the
 *   physical one, so the pages are translated here (pvm_translate) and each touched page is
 *   mapped into Unicorn at its guest-virtual address, paging off, CPL 0.
 * - CR0.TS/EM written with uc_reg_write do not reach its decoder: #NM/#UD are decided here.
 * - No #GP for misaligned legacy-SSE 16-byte operands nor for reserved MXCSR bits (checked
 *   here against the host CPU's MXCSR_MASK, which on AMD allows MXCSR.MM), no SIMD
 *   floating-point exceptions, no popcnt (its CPUID lacks POPCNT in every CPU model), no AVX
 *   (VEX is decoded as the legacy instruction): all handled here.
 * - QEMU remembers the last exception to turn the next one into #DF: each instruction starts
 *   from the CPU as uc_open made it (a saved context).
 * - Its translated blocks are keyed by address and outlive uc_mem_unmap; a full flush costs
 *   100 ms or more, so the code pages' blocks are dropped (uc_ctl_remove_cache) before each
 *   run. */
#include "kvm/pvm_emulate.h"
#include "kvm/pvm_libs.h"
#include "util/err.h"

#include <capstone/capstone.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unicorn/unicorn.h>

#define PAGE_SIZE  4096ull
#define PAGE_MASK  (~(PAGE_SIZE - 1))
#define MAX_PAGES  8   /* pages one instruction may touch (code, data, stack) */
#define MAX_WRITES 128 /* stores one instruction may make (fxsave: 512 bytes) */
#define INSN_MAX   15

#define CR0_EM	       (1ull << 2)
#define CR0_TS	       (1ull << 3)
#define CR0_WP	       (1ull << 16)
#define CR0_PG	       (1ull << 31)
#define CR4_PAE	       (1ull << 5)
#define CR4_OSFXSR     (1ull << 9)
#define CR4_OSXMMEXCPT (1ull << 10)
#define CR4_LA57       (1ull << 12)
#define CR4_OSXSAVE    (1ull << 18)
#define CR4_SMEP       (1ull << 20)
#define CR4_SMAP       (1ull << 21)
#define EFER_LMA       (1ull << 10)
#define EFER_NXE       (1ull << 11)

#define RFLAGS_TF (1ull << 8)
#define RFLAGS_AC (1ull << 18)
/* What an instruction carried out here may change: CF PF AF ZF SF DF OF AC. TF, IF, IOPL,
 * NT, RF, VM stay as KVM has them (instructions that change those are refused). */
#define RFLAGS_OURS 0x40cd5ull

#define PTE_P	 (1ull << 0)
#define PTE_RW	 (1ull << 1)
#define PTE_US	 (1ull << 2)
#define PTE_A	 (1ull << 5)
#define PTE_D	 (1ull << 6)
#define PTE_PS	 (1ull << 7)
#define PTE_NX	 (1ull << 63)
#define PTE_ADDR 0x000ffffffffff000ull

#define PF_P	(1u << 0)
#define PF_W	(1u << 1)
#define PF_RSVD (1u << 3)
#define PF_ID	(1u << 4)

#define VEC_UD 6
#define VEC_NM 7
#define VEC_GP 13
#define VEC_PF 14
#define VEC_XM 19

#define MXCSR_MM (1u << 17) /* AMD misaligned SSE mode, where MXCSR_MASK has it */

static int page_fault(struct pvm_exception *exc, uint64_t va, uint32_t error)
{
	*exc =
	    (struct pvm_exception){.vector = VEC_PF, .has_error = true, .error = error, .cr2 = va};
	return 1;
}

static uint32_t access_error(const struct kvm_sregs *s, enum pvm_access acc)
{
	if (acc == PVM_WRITE)
		return PF_W;
	if (acc == PVM_FETCH && ((s->efer & EFER_NXE) || (s->cr4 & CR4_SMEP)))
		return PF_ID;
	return 0;
}

/* A supervisor-mode access of `acc` to a page with the walk's attributes. */
static bool access_allowed(const struct kvm_sregs *s, uint64_t rflags, const struct pvm_walk *w,
			   enum pvm_access acc)
{
	if (acc == PVM_FETCH)
		return !w->nx && !(w->user && (s->cr4 & CR4_SMEP));
	if (w->user && (s->cr4 & CR4_SMAP) && !(rflags & RFLAGS_AC))
		return false;
	return acc == PVM_READ || w->writable || !(s->cr0 & CR0_WP);
}

int pvm_translate(const struct guest_mem *mem, const struct kvm_sregs *sregs, uint64_t rflags,
		  uint64_t va, enum pvm_access acc, struct pvm_walk *w, struct pvm_exception *exc)
{
	if ((uint64_t)((int64_t)(va << 16) >> 16) != va) { /* non-canonical: #GP(0) */
		*exc = (struct pvm_exception){.vector = VEC_GP, .has_error = true};
		return 1;
	}
	bool nxe = sregs->efer & EFER_NXE;
	uint64_t table = sregs->cr3 & PTE_ADDR;
	w->user = w->writable = true;
	w->nx = false;
	for (int level = 3; level >= 0; level--) {
		uint64_t slot = table + ((va >> (12 + 9 * level)) & 511) * 8;
		uint64_t *p = gmem_ptr(mem, slot, 8);
		if (!p)
			return -1;
		uint64_t e = __atomic_load_n(p, __ATOMIC_RELAXED);
		if (!(e & PTE_P))
			return page_fault(exc, va, access_error(sregs, acc));
		if ((!nxe && (e & PTE_NX)) || (level == 3 && (e & PTE_PS)))
			return page_fault(exc, va, PF_P | PF_RSVD | access_error(sregs, acc));
		w->user = w->user && (e & PTE_US);
		w->writable = w->writable && (e & PTE_RW);
		w->nx = w->nx || (nxe && (e & PTE_NX));
		if (!(e & PTE_A))
			__atomic_fetch_or(p, PTE_A, __ATOMIC_RELAXED);
		if (level == 0 || (e & PTE_PS)) {
			uint64_t span = 1ull << (12 + 9 * level);
			w->gpa = (e & PTE_ADDR & ~(span - 1)) | (va & (span - 1));
			w->leaf_pte = slot;
			break;
		}
		table = e & PTE_ADDR;
	}
	if (!access_allowed(sregs, rflags, w, acc))
		return page_fault(exc, va, PF_P | access_error(sregs, acc));
	return 0;
}

struct emu_page {
	uint64_t va, gpa, leaf_pte;
	uint32_t prot;			/* UC_PROT_* as the walk allows */
	uint8_t *copy;			/* PAGE_SIZE bytes mapped into Unicorn at va */
	uint8_t written[PAGE_SIZE / 8]; /* bytes the instruction stored */
	bool dirty;
};

enum emu_stop { STOP_NONE, STOP_EXCEPTION, STOP_REFUSED };

struct pvm_emu {
	uc_engine *uc;
	uc_context *fresh; /* the CPU as uc_open left it: restored before each instruction */
	csh cs;
	uint32_t mxcsr_mask; /* the host CPU's, which is the guest's: ring 3 runs on it */
	uint8_t *pool;	     /* MAX_PAGES page copies */
	/* the instruction being carried out */
	const struct guest_mem *mem;
	const struct pvm_cpu *cpu;
	uint64_t rip, end; /* [rip, end): the instruction */
	struct emu_page pages[MAX_PAGES];
	int npages;
	struct {
		uint64_t va;
		int size;
	} writes[MAX_WRITES];
	int nwrites;
	bool writes_overflow, fetched_beyond, invalid;
	enum emu_stop stop;
	struct pvm_exception exc;
	char why[128];
};

static void refuse(struct pvm_emu *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void refuse(struct pvm_emu *e, const char *fmt, ...)
{
	if (e->stop != STOP_NONE)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->why, sizeof(e->why), fmt, ap);
	va_end(ap);
	e->stop = STOP_REFUSED;
}

static void raise_exc(struct pvm_emu *e, const struct pvm_exception *exc)
{
	if (e->stop != STOP_NONE)
		return;
	e->exc = *exc;
	e->stop = STOP_EXCEPTION;
}

static void raise_vector(struct pvm_emu *e, unsigned vector)
{
	/* #DF, #TS, #NP, #SS, #GP, #PF, #AC push an error code; ours is 0 (not a selector) */
	bool has_error = vector == 8 || (vector >= 10 && vector <= 14) || vector == 17;
	struct pvm_exception exc = {.vector = vector, .has_error = has_error};
	raise_exc(e, &exc);
}

static struct emu_page *page_find(struct pvm_emu *e, uint64_t va)
{
	for (int i = 0; i < e->npages; i++)
		if (e->pages[i].va == (va & PAGE_MASK))
			return &e->pages[i];
	return NULL;
}

/* Maps the page holding `va` into Unicorn, translated for `acc` (the access that needs it).
 * Returns the page, or NULL with e->stop set. */
static struct emu_page *page_map(struct pvm_emu *e, uint64_t va, enum pvm_access acc)
{
	struct emu_page *pg = page_find(e, va);
	if (pg)
		return pg;
	if (e->npages == MAX_PAGES) {
		refuse(e, "touches more than %d pages", MAX_PAGES);
		return NULL;
	}
	const struct kvm_sregs *s = &e->cpu->sregs;
	uint64_t rflags = e->cpu->regs.rflags;
	struct pvm_walk w;
	struct pvm_exception exc;
	int r = pvm_translate(e->mem, s, rflags, va, acc, &w, &exc);
	if (r < 0) {
		refuse(e, "the page tables for 0x%llx are not in guest RAM",
		       (unsigned long long)va);
		return NULL;
	}
	if (r > 0) {
		raise_exc(e, &exc);
		return NULL;
	}
	pg = &e->pages[e->npages];
	memset(pg, 0, sizeof(*pg));
	pg->va = va & PAGE_MASK;
	pg->gpa = w.gpa & PAGE_MASK;
	pg->leaf_pte = w.leaf_pte;
	pg->copy = e->pool + (size_t)e->npages * PAGE_SIZE;
	if (gmem_read(e->mem, pg->gpa, pg->copy, PAGE_SIZE) < 0) {
		refuse(e, "0x%llx is guest-physical 0x%llx, not RAM (MMIO)", (unsigned long long)va,
		       (unsigned long long)(w.gpa));
		return NULL;
	}
	pg->prot = (access_allowed(s, rflags, &w, PVM_READ) ? UC_PROT_READ : 0) |
		   (access_allowed(s, rflags, &w, PVM_WRITE) ? UC_PROT_WRITE : 0) |
		   (access_allowed(s, rflags, &w, PVM_FETCH) ? UC_PROT_EXEC : 0);
	uc_err err = uc_mem_map_ptr(e->uc, pg->va, PAGE_SIZE, pg->prot, pg->copy);
	if (err != UC_ERR_OK) {
		refuse(e, "Unicorn cannot map 0x%llx: %s", (unsigned long long)pg->va,
		       uc_strerror(err));
		return NULL;
	}
	e->npages++;
	return pg;
}

static void pages_unmap(struct pvm_emu *e)
{
	for (int i = 0; i < e->npages; i++)
		uc_mem_unmap(e->uc, e->pages[i].va, PAGE_SIZE);
}

static enum pvm_access access_of(uc_mem_type type)
{
	switch (type) {
	case UC_MEM_WRITE:
	case UC_MEM_WRITE_UNMAPPED:
	case UC_MEM_WRITE_PROT:
		return PVM_WRITE;
	case UC_MEM_FETCH:
	case UC_MEM_FETCH_UNMAPPED:
	case UC_MEM_FETCH_PROT:
		return PVM_FETCH;
	default:
		return PVM_READ;
	}
}

/* Unicorn touched a page not mapped yet: translate and map every page of the access. */
static bool on_unmapped(uc_engine *uc, uc_mem_type type, uint64_t addr, int size, int64_t value,
			void *opaque)
{
	struct pvm_emu *e = opaque;
	enum pvm_access acc = access_of(type);
	uint64_t last = addr + (uint64_t)(size > 0 ? size - 1 : 0);
	if (acc == PVM_FETCH && (addr >= e->end || addr < e->rip)) {
		/* the next instruction (a branch target): not ours to fetch */
		e->fetched_beyond = true;
		return false;
	}
	for (uint64_t p = addr & PAGE_MASK;; p += PAGE_SIZE) {
		if (!page_map(e, p < addr ? addr : p, acc))
			return false;
		if (p == (last & PAGE_MASK))
			break;
	}
	return true;
}

/* Unicorn was refused by a page's protection: the #PF the CPU would raise. */
static bool on_prot(uc_engine *uc, uc_mem_type type, uint64_t addr, int size, int64_t value,
		    void *opaque)
{
	struct pvm_emu *e = opaque;
	enum pvm_access acc = access_of(type);
	uint32_t need = acc == PVM_WRITE   ? UC_PROT_WRITE
			: acc == PVM_FETCH ? UC_PROT_EXEC
					   : UC_PROT_READ;
	uint64_t last = addr + (uint64_t)(size > 0 ? size - 1 : 0);
	for (uint64_t p = addr & PAGE_MASK;; p += PAGE_SIZE) {
		struct emu_page *pg = page_find(e, p);
		if (pg && !(pg->prot & need)) {
			struct pvm_exception exc;
			page_fault(&exc, p < addr ? addr : p,
				   PF_P | access_error(&e->cpu->sregs, acc));
			raise_exc(e, &exc);
			return false;
		}
		if (p == (last & PAGE_MASK))
			break;
	}
	refuse(e, "Unicorn refused an access to 0x%llx", (unsigned long long)addr);
	return false;
}

static void on_write(uc_engine *uc, uc_mem_type type, uint64_t addr, int size, int64_t value,
		     void *opaque)
{
	struct pvm_emu *e = opaque;
	if (e->nwrites == MAX_WRITES) {
		e->writes_overflow = true;
		return;
	}
	e->writes[e->nwrites].va = addr;
	e->writes[e->nwrites].size = size;
	e->nwrites++;
}

static void on_interrupt(uc_engine *uc, uint32_t intno, void *opaque)
{
	struct pvm_emu *e = opaque;
	raise_vector(e, intno);
	uc_emu_stop(uc);
}

static bool on_invalid(uc_engine *uc, void *opaque)
{
	struct pvm_emu *e = opaque;
	e->invalid = true;
	return false;
}

/* MXCSR_MASK from an fxsave image (0 there means the default, 0xffbf). */
static uint32_t host_mxcsr_mask(void)
{
	uint8_t area[512] __attribute__((aligned(16)));
	uint32_t mask;
	__asm__ volatile("fxsave %0" : "=m"(area));
	memcpy(&mask, area + 28, 4);
	return mask ? mask : 0xffbf;
}

struct pvm_emu *pvm_emu_new(void)
{
	if (pvm_libs_load() < 0)
		return NULL;
	struct pvm_emu *e = calloc(1, sizeof(*e));
	if (!e) {
		kite_error("PVM fallback: out of memory");
		return NULL;
	}
	e->mxcsr_mask = host_mxcsr_mask();
	e->pool = aligned_alloc(PAGE_SIZE, MAX_PAGES * PAGE_SIZE);
	if (!e->pool) {
		free(e);
		kite_error("PVM fallback: out of memory");
		return NULL;
	}
	uc_err err = uc_open(UC_ARCH_X86, UC_MODE_64, &e->uc);
	if (err != UC_ERR_OK) {
		kite_error("PVM fallback: Unicorn: %s", uc_strerror(err));
		e->uc = NULL;
		pvm_emu_free(e);
		return NULL;
	}
	if (cs_open(CS_ARCH_X86, CS_MODE_64, &e->cs) != CS_ERR_OK) {
		kite_error("PVM fallback: Capstone cannot decode x86-64");
		e->cs = 0;
		pvm_emu_free(e);
		return NULL;
	}
	cs_option(e->cs, CS_OPT_DETAIL, CS_OPT_ON);
	uc_hook h;
	if (uc_hook_add(e->uc, &h, UC_HOOK_MEM_UNMAPPED, (void *)on_unmapped, e, 1, 0) ||
	    uc_hook_add(e->uc, &h, UC_HOOK_MEM_PROT, (void *)on_prot, e, 1, 0) ||
	    uc_hook_add(e->uc, &h, UC_HOOK_MEM_WRITE, (void *)on_write, e, 1, 0) ||
	    uc_hook_add(e->uc, &h, UC_HOOK_INTR, (void *)on_interrupt, e, 1, 0) ||
	    uc_hook_add(e->uc, &h, UC_HOOK_INSN_INVALID, (void *)on_invalid, e, 1, 0)) {
		kite_error("PVM fallback: cannot add Unicorn hooks");
		pvm_emu_free(e);
		return NULL;
	}
	if (uc_context_alloc(e->uc, &e->fresh) || uc_context_save(e->uc, e->fresh)) {
		kite_error("PVM fallback: cannot save the Unicorn CPU");
		e->fresh = NULL;
		pvm_emu_free(e);
		return NULL;
	}
	return e;
}

void pvm_emu_free(struct pvm_emu *e)
{
	if (!e)
		return;
	if (e->fresh)
		uc_context_free(e->fresh);
	if (e->uc)
		uc_close(e->uc);
	if (e->cs)
		cs_close(&e->cs);
	free(e->pool);
	free(e);
}

/* ---- registers ---- */

/* kvm_regs in x86 encoding order (rax rcx rdx rbx rsp rbp rsi rdi r8-r15). */
static __u64 *gpr(struct kvm_regs *r, int i)
{
	__u64 *const order[16] = {&r->rax, &r->rcx, &r->rdx, &r->rbx, &r->rsp, &r->rbp,
				  &r->rsi, &r->rdi, &r->r8,  &r->r9,  &r->r10, &r->r11,
				  &r->r12, &r->r13, &r->r14, &r->r15};
	return order[i];
}

static const int uc_gpr[16] = {
    UC_X86_REG_RAX, UC_X86_REG_RCX, UC_X86_REG_RDX, UC_X86_REG_RBX, UC_X86_REG_RSP, UC_X86_REG_RBP,
    UC_X86_REG_RSI, UC_X86_REG_RDI, UC_X86_REG_R8,  UC_X86_REG_R9,  UC_X86_REG_R10, UC_X86_REG_R11,
    UC_X86_REG_R12, UC_X86_REG_R13, UC_X86_REG_R14, UC_X86_REG_R15,
};

/* Capstone's general registers: encoding index and width, or -1. */
static int cs_gpr(x86_reg reg, unsigned *width)
{
	static const x86_reg r64[16] = {X86_REG_RAX, X86_REG_RCX, X86_REG_RDX, X86_REG_RBX,
					X86_REG_RSP, X86_REG_RBP, X86_REG_RSI, X86_REG_RDI,
					X86_REG_R8,  X86_REG_R9,  X86_REG_R10, X86_REG_R11,
					X86_REG_R12, X86_REG_R13, X86_REG_R14, X86_REG_R15};
	static const x86_reg r32[16] = {X86_REG_EAX,  X86_REG_ECX,  X86_REG_EDX,  X86_REG_EBX,
					X86_REG_ESP,  X86_REG_EBP,  X86_REG_ESI,  X86_REG_EDI,
					X86_REG_R8D,  X86_REG_R9D,  X86_REG_R10D, X86_REG_R11D,
					X86_REG_R12D, X86_REG_R13D, X86_REG_R14D, X86_REG_R15D};
	static const x86_reg r16[16] = {X86_REG_AX,   X86_REG_CX,   X86_REG_DX,	  X86_REG_BX,
					X86_REG_SP,   X86_REG_BP,   X86_REG_SI,	  X86_REG_DI,
					X86_REG_R8W,  X86_REG_R9W,  X86_REG_R10W, X86_REG_R11W,
					X86_REG_R12W, X86_REG_R13W, X86_REG_R14W, X86_REG_R15W};
	for (int i = 0; i < 16; i++) {
		if (reg == r64[i] || reg == r32[i] || reg == r16[i]) {
			*width = reg == r64[i] ? 8 : reg == r32[i] ? 4 : 2;
			return i;
		}
	}
	return -1;
}

static uint64_t truncate_to(uint64_t v, unsigned width)
{
	return width >= 8 ? v : v & ((1ull << (8 * width)) - 1);
}

/* The linear address of the instruction's memory operand; *size its width from Capstone. */
static const cs_x86_op *mem_operand(const cs_insn *insn)
{
	const cs_x86 *x = &insn->detail->x86;
	for (int i = 0; i < x->op_count; i++)
		if (x->operands[i].type == X86_OP_MEM)
			return &x->operands[i];
	return NULL;
}

static uint64_t operand_address(const cs_insn *insn, const cs_x86_op *op, struct pvm_cpu *cpu)
{
	uint64_t a = (uint64_t)op->mem.disp;
	unsigned width;
	int i;
	if (op->mem.base == X86_REG_RIP || op->mem.base == X86_REG_EIP)
		a += cpu->regs.rip + insn->size;
	else if ((i = cs_gpr(op->mem.base, &width)) >= 0)
		a += truncate_to(*gpr(&cpu->regs, i), width);
	if ((i = cs_gpr(op->mem.index, &width)) >= 0)
		a += truncate_to(*gpr(&cpu->regs, i), width) * (uint64_t)op->mem.scale;
	if (insn->detail->x86.addr_size == 4)
		a = (uint32_t)a;
	if (op->mem.segment == X86_REG_FS)
		a += cpu->sregs.fs.base;
	else if (op->mem.segment == X86_REG_GS)
		a += cpu->sregs.gs.base;
	return a;
}

static int uc_load(struct pvm_emu *e, const struct pvm_cpu *c)
{
	struct kvm_regs r = c->regs;
	uc_err err = uc_context_restore(e->uc, e->fresh);
	for (int i = 0; i < 16 && !err; i++)
		err = uc_reg_write(e->uc, uc_gpr[i], gpr(&r, i));
	uint64_t flags = r.rflags & ~RFLAGS_TF;
	uint32_t mxcsr = c->fpu.mxcsr;
	uint16_t fcw = c->fpu.fcw, fsw = c->fpu.fsw, ftw = 0;
	for (int i = 0; i < 8; i++) /* abridged tag bit set: valid; full tag 11: empty */
		ftw |= (uint16_t)(((c->fpu.ftwx >> i) & 1) ? 0 : 3) << (2 * i);
	/* paging stays off in Unicorn; fxsave/fxrstor look at CR4.OSFXSR */
	uint64_t cr4 = c->sregs.cr4 & (CR4_OSFXSR | CR4_OSXMMEXCPT);
	if (!err)
		err = uc_reg_write(e->uc, UC_X86_REG_CR4, &cr4);
	if (!err)
		err = uc_reg_write(e->uc, UC_X86_REG_RIP, &r.rip);
	if (!err)
		err = uc_reg_write(e->uc, UC_X86_REG_RFLAGS, &flags);
	if (!err)
		err = uc_reg_write(e->uc, UC_X86_REG_FS_BASE, &c->sregs.fs.base);
	if (!err)
		err = uc_reg_write(e->uc, UC_X86_REG_GS_BASE, &c->sregs.gs.base);
	for (int i = 0; i < 16 && !err; i++)
		err = uc_reg_write(e->uc, UC_X86_REG_XMM0 + i, c->fpu.xmm[i]);
	if (!err)
		err = uc_reg_write(e->uc, UC_X86_REG_MXCSR, &mxcsr);
	if (!err)
		err = uc_reg_write(e->uc, UC_X86_REG_FPCW, &fcw);
	if (!err)
		err = uc_reg_write(e->uc, UC_X86_REG_FPSW, &fsw); /* TOP first: ST(i) below */
	if (!err)
		err = uc_reg_write(e->uc, UC_X86_REG_FPTAG, &ftw);
	for (int i = 0; i < 8 && !err; i++)
		err = uc_reg_write(e->uc, UC_X86_REG_ST0 + i, c->fpu.fpr[i]);
	if (err != UC_ERR_OK)
		return kite_error("PVM fallback: Unicorn register write: %s", uc_strerror(err));
	return 0;
}

/* The x87 part of the state as Unicorn holds it, to tell whether the instruction changed it. */
struct x87 {
	uint16_t fcw, fsw, ftw, fop;
	uint64_t fip, fdp;
	uint8_t st[8][10];
};

static int uc_read_x87(struct pvm_emu *e, struct x87 *x)
{
	memset(x, 0, sizeof(*x));
	uc_err err = uc_reg_read(e->uc, UC_X86_REG_FPCW, &x->fcw);
	if (!err)
		err = uc_reg_read(e->uc, UC_X86_REG_FPSW, &x->fsw);
	if (!err)
		err = uc_reg_read(e->uc, UC_X86_REG_FPTAG, &x->ftw);
	if (!err)
		err = uc_reg_read(e->uc, UC_X86_REG_FOP, &x->fop);
	if (!err)
		err = uc_reg_read(e->uc, UC_X86_REG_FIP, &x->fip);
	if (!err)
		err = uc_reg_read(e->uc, UC_X86_REG_FDP, &x->fdp);
	for (int i = 0; i < 8 && !err; i++)
		err = uc_reg_read(e->uc, UC_X86_REG_ST0 + i, x->st[i]);
	if (err != UC_ERR_OK)
		return kite_error("PVM fallback: Unicorn register read: %s", uc_strerror(err));
	return 0;
}

/* Reads the result back into *c (the original rflags bits outside RFLAGS_OURS kept). */
static int uc_store(struct pvm_emu *e, struct pvm_cpu *c, const struct x87 *before,
		    bool *fpu_changed)
{
	struct kvm_regs r = c->regs;
	uint64_t flags = 0;
	uint32_t mxcsr = 0;
	uc_err err = UC_ERR_OK;
	for (int i = 0; i < 16 && !err; i++)
		err = uc_reg_read(e->uc, uc_gpr[i], gpr(&r, i));
	if (!err)
		err = uc_reg_read(e->uc, UC_X86_REG_RIP, &r.rip);
	if (!err)
		err = uc_reg_read(e->uc, UC_X86_REG_RFLAGS, &flags);
	if (!err)
		err = uc_reg_read(e->uc, UC_X86_REG_MXCSR, &mxcsr);
	struct kvm_fpu f = c->fpu;
	for (int i = 0; i < 16 && !err; i++)
		err = uc_reg_read(e->uc, UC_X86_REG_XMM0 + i, f.xmm[i]);
	if (err != UC_ERR_OK)
		return kite_error("PVM fallback: Unicorn register read: %s", uc_strerror(err));
	f.mxcsr = mxcsr;
	struct x87 after;
	if (uc_read_x87(e, &after) < 0)
		return -1;
	if (memcmp(before, &after, sizeof(after)) != 0) {
		f.fcw = after.fcw;
		f.fsw = after.fsw;
		f.ftwx = 0;
		for (int i = 0; i < 8; i++)
			if (((after.ftw >> (2 * i)) & 3) != 3)
				f.ftwx |= (uint8_t)(1u << i);
		f.last_opcode = after.fop;
		f.last_ip = after.fip;
		f.last_dp = after.fdp;
		for (int i = 0; i < 8; i++)
			memcpy(f.fpr[i], after.st[i], 10);
	}
	r.rflags = (c->regs.rflags & ~RFLAGS_OURS) | (flags & RFLAGS_OURS);
	*fpu_changed = memcmp(&f, &c->fpu, sizeof(f)) != 0;
	c->regs = r;
	c->fpu = f;
	return 0;
}

/* ---- what is carried out, and the rules Unicorn lacks ---- */

static bool in_group(const cs_insn *insn, unsigned group)
{
	for (int i = 0; i < insn->detail->groups_count; i++)
		if (insn->detail->groups[i] == group)
			return true;
	return false;
}

/* Instructions that read or change state the fallback does not hand to Unicorn (MSRs, TSC,
 * CPUID, I/O ports, descriptor tables, segment selectors, IF, XCR0, extended state). */
static bool refused_insn(const cs_insn *insn)
{
	static const unsigned ids[] = {
	    X86_INS_CPUID,    X86_INS_RDTSC,	  X86_INS_RDTSCP,   X86_INS_RDPMC,
	    X86_INS_RDRAND,   X86_INS_RDSEED,	  X86_INS_XGETBV,   X86_INS_XSETBV,
	    X86_INS_XSAVE,    X86_INS_XSAVE64,	  X86_INS_XSAVEC,   X86_INS_XSAVEC64,
	    X86_INS_XSAVEOPT, X86_INS_XSAVEOPT64, X86_INS_XSAVES,   X86_INS_XSAVES64,
	    X86_INS_XRSTOR,   X86_INS_XRSTOR64,	  X86_INS_XRSTORS,  X86_INS_XRSTORS64,
	    X86_INS_IN,	      X86_INS_INSB,	  X86_INS_INSW,	    X86_INS_INSD,
	    X86_INS_OUT,      X86_INS_OUTSB,	  X86_INS_OUTSW,    X86_INS_OUTSD,
	    X86_INS_HLT,      X86_INS_SYSCALL,	  X86_INS_SYSENTER, X86_INS_SYSEXIT,
	    X86_INS_SYSRET,   X86_INS_SWAPGS,	  X86_INS_MONITOR,  X86_INS_MWAIT,
	    X86_INS_CLI,      X86_INS_STI,	  X86_INS_POPF,	    X86_INS_POPFD,
	    X86_INS_POPFQ,    X86_INS_LJMP,	  X86_INS_LCALL,    X86_INS_RETF,
	    X86_INS_RETFQ,    X86_INS_LDS,	  X86_INS_LES,	    X86_INS_LFS,
	    X86_INS_LGS,      X86_INS_LSS,	  X86_INS_LAR,	    X86_INS_LSL,
	    X86_INS_VERR,     X86_INS_VERW,	  X86_INS_SLDT,	    X86_INS_STR,
	    X86_INS_SGDT,     X86_INS_SIDT,	  X86_INS_SMSW,	    X86_INS_XBEGIN,
	};
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
		if (insn->id == ids[i])
			return true;
	if (insn->id == X86_INS_CLAC || insn->id == X86_INS_STAC)
		return false; /* RFLAGS.AC, which we carry */
	if (in_group(insn, X86_GRP_PRIVILEGE) || in_group(insn, X86_GRP_INT) ||
	    in_group(insn, X86_GRP_IRET) || in_group(insn, X86_GRP_VM) ||
	    in_group(insn, X86_GRP_SGX) || in_group(insn, X86_GRP_FSGSBASE) ||
	    in_group(insn, X86_GRP_3DNOW))
		return true;
	const cs_x86 *x = &insn->detail->x86;
	for (int i = 0; i < x->op_count; i++) {
		x86_reg r =
		    x->operands[i].type == X86_OP_REG ? x->operands[i].reg : X86_REG_INVALID;
		if (r == X86_REG_CS || r == X86_REG_DS || r == X86_REG_ES || r == X86_REG_SS ||
		    r == X86_REG_FS || r == X86_REG_GS)
			return true;
	}
	return false;
}

static bool is_sse(const cs_insn *insn)
{
	static const unsigned groups[] = {
	    X86_GRP_SSE1,  X86_GRP_SSE2,  X86_GRP_SSE3, X86_GRP_SSSE3,	X86_GRP_SSE41,
	    X86_GRP_SSE42, X86_GRP_SSE4A, X86_GRP_AES,	X86_GRP_PCLMUL, X86_GRP_SHA};
	for (size_t i = 0; i < sizeof(groups) / sizeof(groups[0]); i++)
		if (in_group(insn, groups[i]))
			return true;
	return insn->id == X86_INS_FXSAVE || insn->id == X86_INS_FXSAVE64 ||
	       insn->id == X86_INS_FXRSTOR || insn->id == X86_INS_FXRSTOR64;
}

static bool is_x87_or_mmx(const cs_insn *insn)
{
	return in_group(insn, X86_GRP_FPU) || in_group(insn, X86_GRP_MMX);
}

/* Legacy-SSE 16-byte memory operands must be aligned (#GP(0)) but for the explicitly unaligned
 * ones; with AMD's MXCSR.MM only the aligned moves, fxsave and fxrstor still must be. */
static unsigned alignment_needed(const struct pvm_emu *e, const cs_insn *insn, const cs_x86_op *op,
				 uint32_t mxcsr)
{
	switch (insn->id) {
	case X86_INS_FXSAVE:
	case X86_INS_FXSAVE64:
	case X86_INS_FXRSTOR:
	case X86_INS_FXRSTOR64:
	case X86_INS_MOVDQA:
	case X86_INS_MOVAPS:
	case X86_INS_MOVAPD:
	case X86_INS_MOVNTDQ:
	case X86_INS_MOVNTDQA:
	case X86_INS_MOVNTPS:
	case X86_INS_MOVNTPD:
		return 16;
	case X86_INS_MOVDQU:
	case X86_INS_MOVUPS:
	case X86_INS_MOVUPD:
	case X86_INS_LDDQU:
	case X86_INS_PCMPESTRI:
	case X86_INS_PCMPESTRM:
	case X86_INS_PCMPISTRI:
	case X86_INS_PCMPISTRM:
		return 1;
	default:
		if ((e->mxcsr_mask & MXCSR_MM) && (mxcsr & MXCSR_MM))
			return 1;
		return is_sse(insn) && op->size == 16 ? 16 : 1;
	}
}

/* VEX (c4, c5), EVEX (62) and XOP (8f with ModRM.reg != 0) after the legacy prefixes. */
static bool is_vex(const uint8_t *b, unsigned n)
{
	unsigned i = 0;
	while (i < n && (b[i] == 0x66 || b[i] == 0x67 || b[i] == 0xf0 || b[i] == 0xf2 ||
			 b[i] == 0xf3 || b[i] == 0x2e || b[i] == 0x36 || b[i] == 0x3e ||
			 b[i] == 0x26 || b[i] == 0x64 || b[i] == 0x65))
		i++;
	if (i >= n)
		return false;
	if (b[i] == 0xc4 || b[i] == 0xc5 || b[i] == 0x62)
		return true;
	return b[i] == 0x8f && i + 1 < n && ((b[i + 1] >> 3) & 7) != 0;
}

/* Reads guest-virtual bytes through the mapped page copies (mapping as needed). */
static int emu_read(struct pvm_emu *e, uint64_t va, void *buf, unsigned len, enum pvm_access acc)
{
	uint8_t *out = buf;
	while (len > 0) {
		struct emu_page *pg = page_map(e, va, acc);
		if (!pg)
			return -1;
		if (!(pg->prot & (acc == PVM_FETCH ? UC_PROT_EXEC : UC_PROT_READ))) {
			/* mapped earlier for another access that this one may not make */
			struct pvm_exception exc;
			page_fault(&exc, va, PF_P | access_error(&e->cpu->sregs, acc));
			raise_exc(e, &exc);
			return -1;
		}
		unsigned off = (unsigned)(va & (PAGE_SIZE - 1));
		unsigned chunk = (unsigned)PAGE_SIZE - off < len ? (unsigned)PAGE_SIZE - off : len;
		memcpy(out, pg->copy + off, chunk);
		out += chunk;
		va += chunk;
		len -= chunk;
	}
	return 0;
}

/* popcnt, which Unicorn 2.0's CPU lacks: dest = bits set in the source; ZF = source is 0;
 * CF OF SF AF PF cleared. */
static void do_popcnt(struct pvm_emu *e, const cs_insn *insn, struct pvm_cpu *c)
{
	const cs_x86 *x = &insn->detail->x86;
	unsigned width, swidth;
	int dst = x->op_count == 2 && x->operands[0].type == X86_OP_REG
		      ? cs_gpr(x->operands[0].reg, &width)
		      : -1;
	if (dst < 0) {
		refuse(e, "unexpected popcnt operands");
		return;
	}
	uint64_t v = 0;
	const cs_x86_op *src = &x->operands[1];
	if (src->type == X86_OP_MEM) {
		if (emu_read(e, operand_address(insn, src, c), &v, width, PVM_READ) < 0)
			return;
	} else {
		int s = cs_gpr(src->reg, &swidth);
		if (s < 0) {
			refuse(e, "unexpected popcnt operands");
			return;
		}
		v = *gpr(&c->regs, s);
	}
	v = truncate_to(v, width);
	uint64_t count = (uint64_t)__builtin_popcountll(v);
	__u64 *d = gpr(&c->regs, dst);
	if (width == 2)
		*d = (*d & ~0xffffull) | count;
	else
		*d = count;	     /* a 32-bit destination zero-extends */
	c->regs.rflags &= ~0x8d5ull; /* CF PF AF ZF SF OF */
	if (v == 0)
		c->regs.rflags |= 0x40;
	c->regs.rip += insn->size;
}

/* Decides from the decoded instruction and the control registers what the CPU would do
 * before executing it. Returns true when it is for Unicorn to run. */
static bool check_before(struct pvm_emu *e, const cs_insn *insn, struct pvm_cpu *c)
{
	const struct kvm_sregs *s = &c->sregs;
	if (insn->id == X86_INS_UD0 || insn->id == X86_INS_UD2 || insn->id == X86_INS_UD2B) {
		raise_vector(e, VEC_UD);
		return false;
	}
	if (refused_insn(insn)) {
		refuse(e, "the fallback does not carry out this instruction (it reads or changes "
			  "state kept outside Unicorn)");
		return false;
	}
	/* fxsave/fxrstor behave as x87 instructions here: #NM for EM or TS, no OSFXSR needed */
	bool fx = insn->id == X86_INS_FXSAVE || insn->id == X86_INS_FXSAVE64 ||
		  insn->id == X86_INS_FXRSTOR || insn->id == X86_INS_FXRSTOR64;
	bool sse =
	    !fx && (is_sse(insn) || insn->id == X86_INS_LDMXCSR || insn->id == X86_INS_STMXCSR);
	bool x87 = fx || is_x87_or_mmx(insn);
	if ((sse || in_group(insn, X86_GRP_MMX)) && (s->cr0 & CR0_EM)) {
		raise_vector(e, VEC_UD);
		return false;
	}
	if ((sse || x87) && ((s->cr0 & CR0_TS) || (x87 && (s->cr0 & CR0_EM)))) {
		raise_vector(e, VEC_NM);
		return false;
	}
	if (sse && !(s->cr4 & CR4_OSFXSR)) {
		raise_vector(e, VEC_UD);
		return false;
	}
	const cs_x86_op *op = mem_operand(insn);
	if (op) {
		unsigned align = alignment_needed(e, insn, op, c->fpu.mxcsr);
		if (operand_address(insn, op, c) & (align - 1)) {
			raise_vector(e, VEC_GP);
			return false;
		}
	}
	if (insn->id == X86_INS_POPCNT) {
		do_popcnt(e, insn, c);
		return false;
	}
	return true;
}

/* After Unicorn: the exceptions it does not raise. */
static void check_after(struct pvm_emu *e, const cs_insn *insn, const struct pvm_cpu *before,
			const struct pvm_cpu *after)
{
	if ((insn->id == X86_INS_LDMXCSR || insn->id == X86_INS_FXRSTOR ||
	     insn->id == X86_INS_FXRSTOR64) &&
	    (after->fpu.mxcsr & ~e->mxcsr_mask)) {
		raise_vector(e, VEC_GP);
		return;
	}
	if (!is_sse(insn))
		return;
	/* a SIMD floating-point exception whose flag the instruction raised while unmasked (one
	 * whose sticky flag was already set is not seen: the kernel keeps them all masked) */
	uint32_t raised = after->fpu.mxcsr & ~before->fpu.mxcsr & 0x3f;
	uint32_t unmasked = ~(before->fpu.mxcsr >> 7) & 0x3f;
	if (raised & unmasked)
		raise_vector(e, (before->sregs.cr4 & CR4_OSXMMEXCPT) ? VEC_XM : VEC_UD);
}

/* Writes what the instruction stored to guest memory and sets the dirty bits. */
static int commit(struct pvm_emu *e)
{
	if (e->writes_overflow) {
		refuse(e, "more than %d stores", MAX_WRITES);
		return -1;
	}
	for (int i = 0; i < e->nwrites; i++) {
		for (int b = 0; b < e->writes[i].size; b++) {
			uint64_t va = e->writes[i].va + (uint64_t)b;
			struct emu_page *pg = page_find(e, va);
			if (!pg) {
				refuse(e, "a store to 0x%llx outside the mapped pages",
				       (unsigned long long)va);
				return -1;
			}
			unsigned off = (unsigned)(va & (PAGE_SIZE - 1));
			pg->written[off / 8] |= (uint8_t)(1u << (off % 8));
			pg->dirty = true;
		}
	}
	for (int i = 0; i < e->npages; i++) {
		struct emu_page *pg = &e->pages[i];
		if (!pg->dirty)
			continue;
		uint64_t *pte = gmem_ptr(e->mem, pg->leaf_pte, 8);
		if (pte)
			__atomic_fetch_or(pte, PTE_D, __ATOMIC_RELAXED);
		for (unsigned off = 0; off < PAGE_SIZE;) {
			if (!(pg->written[off / 8] & (1u << (off % 8)))) {
				off++;
				continue;
			}
			unsigned run = off;
			while (run < PAGE_SIZE && (pg->written[run / 8] & (1u << (run % 8))))
				run++;
			if (gmem_write(e->mem, pg->gpa + off, pg->copy + off, run - off) < 0)
				return kite_error("PVM fallback: guest write at 0x%llx failed",
						  (unsigned long long)(pg->gpa + off));
			off = run;
		}
	}
	return 0;
}

static void outcome_from(struct pvm_emu *e, struct pvm_emu_outcome *out)
{
	if (e->stop == STOP_EXCEPTION) {
		out->result = PVM_EMU_EXCEPTION;
		out->exc = e->exc;
	} else if (e->stop == STOP_REFUSED) {
		out->result = PVM_EMU_REFUSED;
		snprintf(out->why, sizeof(out->why), "%s", e->why);
	}
}

/* Checks the mode the vCPU is in: the fallback carries out 64-bit ring-0 code only. */
static bool check_mode(struct pvm_emu *e, const struct pvm_cpu *c)
{
	const struct kvm_sregs *s = &c->sregs;
	if (!(s->efer & EFER_LMA) || !(s->cr0 & CR0_PG) || !(s->cr4 & CR4_PAE) || !s->cs.l)
		refuse(e, "the vCPU is not in 64-bit mode");
	else if (s->cr4 & CR4_LA57)
		refuse(e, "5-level paging is not supported");
	else if ((s->cs.selector & 3) != 0)
		refuse(e, "the vCPU is not in ring 0 (CPL %u)", s->cs.selector & 3);
	else if (c->regs.rflags & RFLAGS_TF)
		refuse(e, "RFLAGS.TF is set (single-step)");
	return e->stop == STOP_NONE;
}

/* Fetches and decodes the instruction at RIP from guest memory; checks it against the bytes
 * KVM reported. Returns the decoded instruction or NULL with e->stop set. */
static cs_insn *fetch_decode(struct pvm_emu *e, const uint8_t *insn, unsigned n,
			     struct pvm_emu_outcome *out)
{
	uint64_t rip = e->cpu->regs.rip;
	uint8_t bytes[INSN_MAX];
	unsigned in_page = (unsigned)(PAGE_SIZE - (rip & (PAGE_SIZE - 1)));
	unsigned avail = in_page < INSN_MAX ? in_page : INSN_MAX;
	if (emu_read(e, rip, bytes, avail, PVM_FETCH) < 0)
		return NULL;
	if (avail < INSN_MAX) {
		/* the instruction may continue on the next page: map it only if it does */
		cs_insn *probe;
		size_t got = cs_disasm(e->cs, bytes, avail, rip, 1, &probe);
		bool fits = got == 1 && probe->size <= avail;
		if (got)
			cs_free(probe, got);
		if (!fits) {
			if (emu_read(e, rip + avail, bytes + avail, INSN_MAX - avail, PVM_FETCH) <
			    0)
				return NULL;
			avail = INSN_MAX;
		}
	}
	cs_insn *d;
	bool decoded = cs_disasm(e->cs, bytes, avail, rip, 1, &d) == 1;
	if (decoded)
		snprintf(out->name, sizeof(out->name), "%s", d->mnemonic);
	if (is_vex(bytes, avail)) {
		if (e->cpu->sregs.cr4 & CR4_OSXSAVE)
			refuse(e, "AVX (VEX/EVEX) instructions are not carried out");
		else
			raise_vector(e, VEC_UD); /* the CPU's answer with CR4.OSXSAVE clear */
		if (decoded)
			cs_free(d, 1);
		return NULL;
	}
	if (!decoded) {
		refuse(e, "Capstone cannot decode it");
		return NULL;
	}
	for (unsigned i = 0; i < n && i < d->size; i++) {
		if (insn[i] != bytes[i]) {
			refuse(e, "the bytes at RIP changed since the emulation failure");
			cs_free(d, 1);
			return NULL;
		}
	}
	e->end = rip + d->size;
	return d;
}

static int run_unicorn(struct pvm_emu *e, const cs_insn *d, struct pvm_cpu *c)
{
	struct x87 x87_before;
	if (uc_load(e, c) < 0 || uc_read_x87(e, &x87_before) < 0)
		return -1;
	/* blocks translated earlier at these addresses were other code */
	uc_err err =
	    uc_ctl_remove_cache(e->uc, e->rip & PAGE_MASK, ((e->end - 1) & PAGE_MASK) + PAGE_SIZE);
	if (err != UC_ERR_OK)
		return kite_error("PVM fallback: Unicorn cache: %s", uc_strerror(err));
	err = uc_emu_start(e->uc, e->rip, e->end, 0, 1);
	if (e->stop != STOP_NONE)
		return 0;
	if (e->invalid) {
		refuse(e, "Unicorn 2.0 cannot execute it");
		return 0;
	}
	bool branched = err == UC_ERR_FETCH_UNMAPPED && e->fetched_beyond;
	if (err != UC_ERR_OK && !branched) {
		refuse(e, "Unicorn: %s", uc_strerror(err));
		return 0;
	}
	struct pvm_cpu after = *c;
	bool fpu_changed = false;
	if (uc_store(e, &after, &x87_before, &fpu_changed) < 0)
		return -1;
	if (branched && after.regs.rip == e->rip) {
		/* it stopped before the instruction ran: the next page's fetch failed first */
		refuse(e, "Unicorn did not execute it");
		return 0;
	}
	check_after(e, d, c, &after);
	if (e->stop != STOP_NONE)
		return 0;
	if (commit(e) < 0)
		return e->stop == STOP_REFUSED ? 0 : -1;
	*c = after;
	return fpu_changed ? 1 : 0;
}

int pvm_emulate(struct pvm_emu *e, const struct guest_mem *mem, struct pvm_cpu *cpu,
		const uint8_t *insn, unsigned n, bool smp, struct pvm_emu_outcome *out)
{
	memset(out, 0, sizeof(*out));
	snprintf(out->name, sizeof(out->name), "?");
	e->mem = mem;
	e->cpu = cpu;
	e->npages = 0;
	e->nwrites = 0;
	e->writes_overflow = e->fetched_beyond = e->invalid = false;
	e->stop = STOP_NONE;
	e->rip = cpu->regs.rip;
	e->end = e->rip + 1;
	int r = 0;
	cs_insn *d = NULL;
	if (check_mode(e, cpu))
		d = fetch_decode(e, insn, n, out);
	if (d) {
		struct pvm_cpu c = *cpu;
		if (d->detail->x86.prefix[0] == 0xf0 && smp)
			refuse(e, "lock-prefixed: not atomic with other vCPUs running");
		else if (check_before(e, d, &c)) {
			r = run_unicorn(e, d, &c);
			out->fpu_changed = r == 1;
		}
		if (r >= 0 && e->stop == STOP_NONE)
			*cpu = c;
		cs_free(d, 1);
	}
	pages_unmap(e);
	if (r < 0)
		return -1;
	outcome_from(e, out);
	return 0;
}
