/* The PVM fallback (src/kvm/pvm_emulate.c) against the CPU itself: each instruction of the
 * table runs natively in this process (ring 3, from a stub that loads and stores every
 * register, at the same addresses) and through pvm_emulate on a fake vCPU whose page tables
 * map the same virtual pages onto scattered guest-physical pages holding the same bytes. The
 * registers, flags, XMM registers, MXCSR and memory afterwards must agree; where the CPU
 * faults (SIGSEGV/SIGILL/SIGFPE with the trap number), the fallback must raise the same
 * vector (and, for #PF, the same address) and change nothing. */
#include "unit.h"
#include "kvm/memory.h"
#include "kvm/pvm_emulate.h"

#include <asm/prctl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

/* ---- the native side ---- */

struct nctx {
	uint64_t gpr[16]; /* x86 encoding order: rax rcx rdx rbx rsp rbp rsi rdi r8-r15 */
	uint64_t rflags;
	uint8_t xmm[16][16];
	uint32_t mxcsr;
};
_Static_assert(__builtin_offsetof(struct nctx, rflags) == 0x80, "nctx layout");
_Static_assert(__builtin_offsetof(struct nctx, xmm) == 0x88, "nctx layout");
_Static_assert(__builtin_offsetof(struct nctx, mxcsr) == 0x188, "nctx layout");

/* A position-independent stub, copied to an executable page: loads every register from the
 * nctx that tpl_ctxp points to, runs the 16-byte slot at tpl_insn (the instruction, then
 * NOPs), stores every register back. */
__asm__(".text\n"
	".globl tpl_begin, tpl_insn, tpl_ctxp, tpl_end\n"
	"tpl_begin:\n"
	"push %rbx; push %rbp; push %r12; push %r13; push %r14; push %r15\n"
	"mov %rsp, tpl_hostsp(%rip)\n"
	"mov tpl_ctxp(%rip), %rax\n"
	".irp n,0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15\n"
	"movdqu 0x88+\\n*16(%rax), %xmm\\n\n"
	".endr\n"
	"ldmxcsr 0x188(%rax)\n"
	"pushq 0x80(%rax); popfq\n"
	"mov 0x08(%rax), %rcx; mov 0x10(%rax), %rdx; mov 0x18(%rax), %rbx\n"
	"mov 0x28(%rax), %rbp; mov 0x30(%rax), %rsi; mov 0x38(%rax), %rdi\n"
	"mov 0x40(%rax), %r8; mov 0x48(%rax), %r9; mov 0x50(%rax), %r10\n"
	"mov 0x58(%rax), %r11; mov 0x60(%rax), %r12; mov 0x68(%rax), %r13\n"
	"mov 0x70(%rax), %r14; mov 0x78(%rax), %r15\n"
	"mov 0x20(%rax), %rsp; mov 0x00(%rax), %rax\n"
	"tpl_insn:\n"
	".fill 16, 1, 0x90\n"
	"mov %rax, tpl_scratch(%rip)\n"
	"mov tpl_ctxp(%rip), %rax\n"
	"mov %rcx, 0x08(%rax); mov %rdx, 0x10(%rax); mov %rbx, 0x18(%rax)\n"
	"mov %rsp, 0x20(%rax); mov %rbp, 0x28(%rax); mov %rsi, 0x30(%rax)\n"
	"mov %rdi, 0x38(%rax); mov %r8, 0x40(%rax); mov %r9, 0x48(%rax)\n"
	"mov %r10, 0x50(%rax); mov %r11, 0x58(%rax); mov %r12, 0x60(%rax)\n"
	"mov %r13, 0x68(%rax); mov %r14, 0x70(%rax); mov %r15, 0x78(%rax)\n"
	"mov tpl_scratch(%rip), %rcx; mov %rcx, 0x00(%rax)\n"
	"mov tpl_hostsp(%rip), %rsp\n"
	"pushfq; pop %rcx; mov %rcx, 0x80(%rax); cld\n"
	".irp n,0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15\n"
	"movdqu %xmm\\n, 0x88+\\n*16(%rax)\n"
	".endr\n"
	"stmxcsr 0x188(%rax)\n"
	"ldmxcsr tpl_mxcsr(%rip)\n"
	"pop %r15; pop %r14; pop %r13; pop %r12; pop %rbp; pop %rbx\n"
	"ret\n"
	".balign 8\n"
	"tpl_ctxp: .quad 0\n"
	"tpl_hostsp: .quad 0\n"
	"tpl_scratch: .quad 0\n"
	"tpl_mxcsr: .long 0x1f80\n"
	"tpl_end:\n");
extern const uint8_t tpl_begin[], tpl_insn[], tpl_ctxp[], tpl_end[];

#define PG    4096ul
#define NDATA 4 /* data pages D0-D3, then a page that is mapped nowhere */

/* One area: the code page, NDATA data pages, the unmapped page. */
static uint8_t *area, *code, *data;

static sigjmp_buf fault_jmp;
static volatile int fault_trapno;
static volatile uint64_t fault_addr;

static void on_fault(int sig, siginfo_t *si, void *uc_)
{
	ucontext_t *uc = uc_;
	fault_trapno = (int)uc->uc_mcontext.gregs[REG_TRAPNO];
	fault_addr = (uint64_t)si->si_addr;
	siglongjmp(fault_jmp, 1);
}

static void native_setup(void)
{
	area = mmap(NULL, (NDATA + 2) * PG, PROT_READ | PROT_WRITE | PROT_EXEC,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(area != MAP_FAILED);
	code = area;
	data = area + PG;
	assert_int_equal(mprotect(data, NDATA * PG, PROT_READ | PROT_WRITE), 0);
	assert_int_equal(mprotect(data + NDATA * PG, PG, PROT_NONE), 0);
	memcpy(code, tpl_begin, (size_t)(tpl_end - tpl_begin));
	static stack_t ss;
	ss.ss_sp = malloc(1 << 16);
	ss.ss_size = 1 << 16;
	assert_int_equal(sigaltstack(&ss, NULL), 0);
}

static uint64_t insn_va(void)
{
	return (uint64_t)(code + (tpl_insn - tpl_begin));
}

/* Runs the instruction natively on *c. Returns -1, or the trap number of the fault. */
static int native_run(const uint8_t *insn, unsigned len, struct nctx *c, uint64_t gs_base)
{
	uint8_t *slot = code + (tpl_insn - tpl_begin);
	memset(slot, 0x90, 16);
	memcpy(slot, insn, len);
	uint64_t ctxp = (uint64_t)c;
	memcpy(code + (tpl_ctxp - tpl_begin), &ctxp, 8);
	__builtin___clear_cache((char *)code, (char *)code + PG);
	if (gs_base)
		assert_int_equal(syscall(SYS_arch_prctl, ARCH_SET_GS, gs_base), 0);
	/* cmocka installs its own handlers around each test: ours go in for this run only */
	static const int sigs[] = {SIGSEGV, SIGILL, SIGFPE, SIGBUS};
	struct sigaction sa, old[4];
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_fault;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	for (int i = 0; i < 4; i++)
		assert_int_equal(sigaction(sigs[i], &sa, &old[i]), 0);
	int trap = -1;
	if (sigsetjmp(fault_jmp, 1) == 0)
		((void (*)(void))code)();
	else
		trap = fault_trapno;
	__asm__ volatile("ldmxcsr %0" ::"m"((uint32_t){0x1f80}));
	for (int i = 0; i < 4; i++)
		assert_int_equal(sigaction(sigs[i], &old[i], NULL), 0);
	if (gs_base)
		assert_int_equal(syscall(SYS_arch_prctl, ARCH_SET_GS, 0), 0);
	return trap;
}

/* ---- the fake vCPU ---- */

#define GUEST_RAM (8ul << 20)
#define PT_BASE	  0x1000ul /* PML4; further tables follow */
#define PTE_P	  1ull
#define PTE_RW	  2ull
#define PTE_US	  4ull
#define PTE_A	  0x20ull
#define PTE_D	  0x40ull

static uint8_t *ram;
static struct guest_mem gmem;
static uint64_t next_table;

static uint64_t *entry(uint64_t table, uint64_t va, int level)
{
	uint64_t *p = gmem_ptr(&gmem, table + ((va >> (12 + 9 * level)) & 511) * 8, 8);
	assert_non_null(p);
	return p;
}

/* Maps the 4 KiB page at va to gpa with the leaf flags (the tables above allow everything). */
static uint64_t *map_page(uint64_t va, uint64_t gpa, uint64_t flags)
{
	uint64_t table = PT_BASE;
	for (int level = 3; level > 0; level--) {
		uint64_t *e = entry(table, va, level);
		if (!(*e & PTE_P)) {
			*e = next_table | PTE_P | PTE_RW | PTE_US;
			next_table += PG;
		}
		table = *e & 0x000ffffffffff000ull;
	}
	uint64_t *leaf = entry(table, va, 0);
	*leaf = gpa | flags;
	return leaf;
}

static void fake_reset(void)
{
	memset(ram, 0, GUEST_RAM);
	next_table = PT_BASE + PG;
}

/* Guest-physical page of the code page and of data page i: scattered, in no order. */
static uint64_t code_gpa(void)
{
	return 0x300000;
}

static uint64_t data_gpa(int i)
{
	return 0x500000 - (uint64_t)i * 0x23000;
}

/* The guest sees the code page and D0-D3 as they are now; the page after stays unmapped. */
static void fake_map_area(void)
{
	fake_reset();
	memcpy(ram + code_gpa(), code, PG);
	map_page((uint64_t)code, code_gpa(), PTE_P | PTE_RW);
	for (int i = 0; i < NDATA; i++) {
		memcpy(ram + data_gpa(i), data + i * PG, PG);
		map_page((uint64_t)(data + i * PG), data_gpa(i), PTE_P | PTE_RW);
	}
}

static void fake_cpu(struct pvm_cpu *cpu, const struct nctx *c, uint64_t gs_base)
{
	memset(cpu, 0, sizeof(*cpu));
	struct kvm_regs *r = &cpu->regs;
	__u64 *order[16] = {&r->rax, &r->rcx, &r->rdx, &r->rbx, &r->rsp, &r->rbp, &r->rsi, &r->rdi,
			    &r->r8,  &r->r9,  &r->r10, &r->r11, &r->r12, &r->r13, &r->r14, &r->r15};
	for (int i = 0; i < 16; i++)
		*order[i] = c->gpr[i];
	r->rip = insn_va();
	r->rflags = c->rflags;
	struct kvm_sregs *s = &cpu->sregs;
	s->cr0 = 0x80050033; /* PG AM WP NE ET MP PE */
	s->cr3 = PT_BASE;
	s->cr4 = 0x620;	 /* OSXMMEXCPT OSFXSR PAE */
	s->efer = 0xd00; /* NXE LMA LME */
	s->cs.selector = 0x10;
	s->cs.l = 1;
	s->gs.base = gs_base;
	memcpy(cpu->fpu.xmm, c->xmm, sizeof(c->xmm));
	cpu->fpu.mxcsr = c->mxcsr;
	cpu->fpu.fcw = 0x37f;
}

static void nctx_from_cpu(struct nctx *c, const struct pvm_cpu *cpu)
{
	const struct kvm_regs *r = &cpu->regs;
	const uint64_t v[16] = {r->rax, r->rcx, r->rdx, r->rbx, r->rsp, r->rbp, r->rsi, r->rdi,
				r->r8,	r->r9,	r->r10, r->r11, r->r12, r->r13, r->r14, r->r15};
	memcpy(c->gpr, v, sizeof(v));
	c->rflags = r->rflags;
	memcpy(c->xmm, cpu->fpu.xmm, sizeof(c->xmm));
	c->mxcsr = cpu->fpu.mxcsr;
}

/* ---- the table ---- */

struct run {
	struct nctx ctx;
	uint8_t insn[16];
	unsigned len;
	uint64_t gs_base;
};

struct tcase {
	const char *name;
	uint8_t insn[16];
	unsigned len;
	void (*setup)(struct run *r);
	int vector; /* -1: completes; else the exception both must raise */
	bool mm;    /* runs with AMD's MXCSR.MM (misaligned SSE), where the CPU has it */
};

static uint64_t D(int page, uint64_t off)
{
	return (uint64_t)(data + (uint64_t)page * PG + off);
}

static void put64(uint64_t va, uint64_t v)
{
	memcpy((void *)va, &v, 8);
}

static void put32(uint64_t va, uint32_t v)
{
	memcpy((void *)va, &v, 4);
}

enum { RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8, R9, R10, R11, R12, R13, R14, R15 };

static void base_setup(struct run *r)
{
	for (unsigned i = 0; i < NDATA * PG; i++)
		data[i] = (uint8_t)(i * 7 + (i >> 8) * 13 + 1);
	struct nctx *c = &r->ctx;
	memset(c, 0, sizeof(*c));
	c->gpr[RAX] = D(0, 0x100); /* 16-aligned */
	c->gpr[RCX] = 0x1234567887654321;
	c->gpr[RDX] = D(1, 0x44);
	c->gpr[RBX] = 0xfedcba9876543210;
	c->gpr[RSP] = D(1, 0x800);
	c->gpr[RBP] = D(1, 0x20);
	c->gpr[RSI] = D(0, 0x208); /* 8 past a 16-byte boundary */
	c->gpr[RDI] = D(2, 0x10);
	c->gpr[R8] = 0x0f0f0f0f00000000;
	c->gpr[R9] = 0;
	c->gpr[R10] = 0xffffffffffffffff;
	c->gpr[R11] = 0x8000000000000001;
	c->gpr[R12] = 4;
	c->gpr[R13] = D(2, 0x100);
	c->gpr[R14] = 0x5555;
	c->gpr[R15] = 0xaaaa0000aaaa;
	for (int i = 0; i < 16; i++)
		for (int b = 0; b < 16; b++)
			c->xmm[i][b] = (uint8_t)(0x11 * i + b * 3 + 5);
	c->mxcsr = 0x1f80;
	c->rflags = 0x203; /* CF, IF */
}

static void set_rsi(struct run *r, uint64_t v)
{
	r->ctx.gpr[RSI] = v;
}

static void rsi_across_pages(struct run *r)
{
	set_rsi(r, D(1, 0) - 8);
}

static void rsi_unmapped(struct run *r)
{
	set_rsi(r, D(NDATA, 0x10));
}

static void rsi_into_unmapped(struct run *r)
{
	set_rsi(r, D(NDATA, 0) - 8);
}

static void rsi_noncanonical(struct run *r)
{
	set_rsi(r, 0x8000000000001000ull);
}

static void mxcsr_at_rsp(struct run *r)
{
	put32(r->ctx.gpr[RSP] + 4, 0x7f80); /* all masked, round toward zero */
}

static void mxcsr_reserved_at_rsp(struct run *r)
{
	put32(r->ctx.gpr[RSP] + 4, 0x11f80);
}

static void stmxcsr_value(struct run *r)
{
	r->ctx.mxcsr = 0x3f80 | 0x21; /* rounding down, PE and IE flags */
}

static void cmpxchg16b_equal(struct run *r)
{
	uint64_t m = r->ctx.gpr[RDI];
	r->ctx.gpr[RAX] = 0x1111;
	r->ctx.gpr[RDX] = 0x2222;
	put64(m, 0x1111);
	put64(m + 8, 0x2222);
}

static void cmpxchg16b_misaligned(struct run *r)
{
	r->ctx.gpr[RDI] += 8;
}

static void rip_relative(struct run *r)
{
	/* movdqu disp32(%rip), %xmm6 with the operand at D2+0x30 */
	int64_t disp = (int64_t)D(2, 0x30) - (int64_t)(insn_va() + 8);
	int32_t d32 = (int32_t)disp;
	assert_true(d32 == disp);
	memcpy(r->insn + 4, &d32, 4);
}

static void gs_at_d2(struct run *r)
{
	r->gs_base = D(2, 0);
}

static void gs_mxcsr(struct run *r)
{
	r->gs_base = D(2, 0);
	put32(D(2, 4), 0x5f80); /* all masked, round up */
}

static void mxcsr_mm_at_rsp(struct run *r)
{
	put32(r->ctx.gpr[RSP] + 4, 0x21f80);
}

static void popcnt_source(struct run *r)
{
	put32(r->ctx.gpr[RDX], 0xf00f0110);
}

static void sse_data(struct run *r)
{
	/* a few recognisable values in memory where the moves read */
	put64(r->ctx.gpr[RAX], 0x0123456789abcdef);
	put64(r->ctx.gpr[RAX] + 8, 0xfedcba9876543210);
}

static const struct tcase table[] = {
    /* the one the stock kernel stopped at, and the other movd/movq forms */
    {"movd %ecx,%xmm15", {0x66, 0x44, 0x0f, 0x6e, 0xf9}, 5, NULL, -1, false},
    {"movd %xmm3,%ecx", {0x66, 0x0f, 0x7e, 0xd9}, 4, NULL, -1, false},
    {"movq %rcx,%xmm2", {0x66, 0x48, 0x0f, 0x6e, 0xd1}, 5, NULL, -1, false},
    {"movq %xmm1,%rax", {0x66, 0x48, 0x0f, 0x7e, 0xc8}, 5, NULL, -1, false},
    {"movq (%rax),%xmm0", {0xf3, 0x0f, 0x7e, 0x00}, 4, sse_data, -1, false},
    {"movq %xmm0,(%rax)", {0x66, 0x0f, 0xd6, 0x00}, 4, NULL, -1, false},
    {"movd (%rdx),%xmm5", {0x66, 0x0f, 0x6e, 0x2a}, 4, NULL, -1, false},
    {"movd %xmm5,(%rdx)", {0x66, 0x0f, 0x7e, 0x2a}, 4, NULL, -1, false},
    /* 16-byte loads and stores, aligned and not */
    {"movdqa (%rax),%xmm0", {0x66, 0x0f, 0x6f, 0x00}, 4, sse_data, -1, false},
    {"movdqa %xmm1,(%rdi)", {0x66, 0x0f, 0x7f, 0x0f}, 4, NULL, -1, false},
    {"movdqa (%rsi),%xmm0 misaligned", {0x66, 0x0f, 0x6f, 0x06}, 4, NULL, 13, false},
    {"movdqa -0x10(%rsp),%xmm0", {0x66, 0x0f, 0x6f, 0x44, 0x24, 0xf0}, 6, NULL, -1, false},
    {"movdqu (%rsi),%xmm0", {0xf3, 0x0f, 0x6f, 0x06}, 4, NULL, -1, false},
    {"movdqu %xmm7,(%rsi)", {0xf3, 0x0f, 0x7f, 0x3e}, 4, NULL, -1, false},
    {"movaps (%rax),%xmm4", {0x0f, 0x28, 0x20}, 3, NULL, -1, false},
    {"movaps %xmm4,(%rdi)", {0x0f, 0x29, 0x27}, 3, NULL, -1, false},
    {"movaps %xmm4,(%rsi) misaligned", {0x0f, 0x29, 0x26}, 3, NULL, 13, false},
    {"movups (%rsi),%xmm9", {0x44, 0x0f, 0x10, 0x0e}, 4, NULL, -1, false},
    {"movups %xmm9,(%rdi)", {0x44, 0x0f, 0x11, 0x0f}, 4, NULL, -1, false},
    {"movntdq %xmm2,(%rdi)", {0x66, 0x0f, 0xe7, 0x17}, 4, NULL, -1, false},
    {"pxor (%rax),%xmm3", {0x66, 0x0f, 0xef, 0x18}, 4, NULL, -1, false},
    {"pxor %xmm1,%xmm2", {0x66, 0x0f, 0xef, 0xd1}, 4, NULL, -1, false},
    {"pxor (%rsi),%xmm3 misaligned", {0x66, 0x0f, 0xef, 0x1e}, 4, NULL, 13, false},
    {"pshufb %xmm1,%xmm0", {0x66, 0x0f, 0x38, 0x00, 0xc1}, 5, NULL, -1, false},
    /* MXCSR through memory */
    {"ldmxcsr 0x4(%rsp)", {0x0f, 0xae, 0x54, 0x24, 0x04}, 5, mxcsr_at_rsp, -1, false},
    {"ldmxcsr MXCSR.MM", {0x0f, 0xae, 0x54, 0x24, 0x04}, 5, mxcsr_mm_at_rsp, -1, true},
    {"pxor (%rsi),%xmm3 misaligned, MXCSR.MM", {0x66, 0x0f, 0xef, 0x1e}, 4, NULL, -1, true},
    {"movdqa (%rsi),%xmm0 misaligned, MXCSR.MM", {0x66, 0x0f, 0x6f, 0x06}, 4, NULL, 13, true},
    {"ldmxcsr reserved bits", {0x0f, 0xae, 0x54, 0x24, 0x04}, 5, mxcsr_reserved_at_rsp, 13, false},
    {"stmxcsr 0x8(%rsp)", {0x0f, 0xae, 0x5c, 0x24, 0x08}, 5, stmxcsr_value, -1, false},
    /* popcnt (not in Unicorn 2.0: by hand) */
    {"popcnt %rcx,%rax", {0xf3, 0x48, 0x0f, 0xb8, 0xc1}, 5, NULL, -1, false},
    {"popcnt (%rdx),%eax", {0xf3, 0x0f, 0xb8, 0x02}, 4, popcnt_source, -1, false},
    {"popcnt %cx,%ax", {0x66, 0xf3, 0x0f, 0xb8, 0xc1}, 5, NULL, -1, false},
    {"popcnt %r9,%r10 (zero)", {0xf3, 0x4d, 0x0f, 0xb8, 0xd1}, 5, NULL, -1, false},
    /* cmpxchg16b */
    {"cmpxchg16b (%rdi) equal", {0x48, 0x0f, 0xc7, 0x0f}, 4, cmpxchg16b_equal, -1, false},
    {"lock cmpxchg16b (%rdi) differ", {0xf0, 0x48, 0x0f, 0xc7, 0x0f}, 5, NULL, -1, false},
    {"cmpxchg16b misaligned", {0x48, 0x0f, 0xc7, 0x0f}, 4, cmpxchg16b_misaligned, 13, false},
    /* flags */
    {"add %rbx,%rcx", {0x48, 0x01, 0xd9}, 3, NULL, -1, false},
    {"sub %r10,%r9", {0x4d, 0x29, 0xd1}, 3, NULL, -1, false},
    {"div %r9 (zero)", {0x49, 0xf7, 0xf1}, 3, NULL, 0, false},
    {"ud2", {0x0f, 0x0b}, 2, NULL, 6, false},
    /* operands: across pages, unmapped, non-canonical, RIP-relative, SIB, GS */
    {"movdqu (%rsi),%xmm0 across pages", {0xf3, 0x0f, 0x6f, 0x06}, 4, rsi_across_pages, -1, false},
    {"movdqu %xmm7,(%rsi) across pages", {0xf3, 0x0f, 0x7f, 0x3e}, 4, rsi_across_pages, -1, false},
    {"movdqu (%rsi),%xmm0 unmapped", {0xf3, 0x0f, 0x6f, 0x06}, 4, rsi_unmapped, 14, false},
    {"movdqu %xmm7,(%rsi) into unmapped",
     {0xf3, 0x0f, 0x7f, 0x3e},
     4,
     rsi_into_unmapped,
     14,
     false},
    {"movq %xmm0,(%rsi) non-canonical", {0x66, 0x0f, 0xd6, 0x06}, 4, rsi_noncanonical, 13, false},
    {"movdqu disp32(%rip),%xmm6",
     {0xf3, 0x0f, 0x6f, 0x35, 0, 0, 0, 0, false},
     8,
     rip_relative,
     -1,
     false},
    {"movdqu -0x10(%r13,%r12,8),%xmm1",
     {0xf3, 0x43, 0x0f, 0x6f, 0x4c, 0xe5, 0xf0},
     7,
     NULL,
     -1,
     false},
    {"movups %gs:0x40,%xmm0",
     {0x65, 0x0f, 0x10, 0x04, 0x25, 0x40, 0, 0, 0, false},
     9,
     gs_at_d2,
     -1,
     false},
    {"movups %xmm3,%gs:0x80",
     {0x65, 0x0f, 0x11, 0x1c, 0x25, 0x80, 0, 0, 0, false},
     9,
     gs_at_d2,
     -1,
     false},
    {"ldmxcsr %gs:0x4",
     {0x65, 0x0f, 0xae, 0x14, 0x25, 0x04, 0, 0, 0, false},
     9,
     gs_mxcsr,
     -1,
     false},
};

static struct pvm_emu *emu;

static void setup_run(const struct tcase *t, struct run *r)
{
	memset(r, 0, sizeof(*r));
	memcpy(r->insn, t->insn, sizeof(r->insn));
	r->len = t->len;
	base_setup(r);
	if (t->setup)
		t->setup(r);
}

static uint32_t cpu_mxcsr_mask(void)
{
	uint8_t area[512] __attribute__((aligned(16)));
	uint32_t mask;
	__asm__ volatile("fxsave %0" : "=m"(area));
	memcpy(&mask, area + 28, 4);
	return mask ? mask : 0xffbf;
}

static void check_case(const struct tcase *t)
{
	struct run r;
	if (t->mm && !(cpu_mxcsr_mask() & (1u << 17))) {
		print_message("skipped (no MXCSR.MM on this CPU): %s\n", t->name);
		return;
	}
	setup_run(t, &r);
	if (t->mm)
		r.ctx.mxcsr |= 1u << 17;
	/* the guest gets the same bytes, the native run then changes them */
	struct nctx native = r.ctx;
	uint8_t slot[16];
	memset(slot, 0x90, 16);
	memcpy(slot, r.insn, r.len);
	memcpy(code + (tpl_insn - tpl_begin), slot, 16);
	fake_map_area();
	uint8_t before[NDATA * PG];
	memcpy(before, data, sizeof(before));

	int trap = native_run(r.insn, r.len, &native, r.gs_base);
	uint64_t native_addr = fault_addr;

	struct pvm_cpu cpu, cpu0;
	fake_cpu(&cpu, &r.ctx, r.gs_base);
	cpu0 = cpu;
	struct pvm_emu_outcome out;
	assert_int_equal(pvm_emulate(emu, &gmem, &cpu, r.insn, r.len, false, &out), 0);

	if (trap != t->vector)
		fail_msg("%s: the CPU gave trap %d, the table says %d", t->name, trap, t->vector);
	if (t->vector >= 0) {
		if (out.result != PVM_EMU_EXCEPTION || (int)out.exc.vector != t->vector)
			fail_msg("%s: expected vector %d, got result %d vector %u (%s)", t->name,
				 t->vector, out.result, out.exc.vector, out.why);
		if (t->vector == 14 && out.exc.cr2 != native_addr)
			fail_msg("%s: CR2 0x%llx, the CPU faulted at 0x%llx", t->name,
				 (unsigned long long)out.exc.cr2, (unsigned long long)native_addr);
		if (memcmp(&cpu, &cpu0, sizeof(cpu)) != 0)
			fail_msg("%s: the vCPU state changed although the instruction faulted",
				 t->name);
		for (int i = 0; i < NDATA; i++)
			if (memcmp(ram + data_gpa(i), before + i * PG, PG) != 0)
				fail_msg("%s: guest memory changed although it faulted", t->name);
		return;
	}
	if (out.result != PVM_EMU_DONE)
		fail_msg("%s: not carried out: result %d vector %u %s", t->name, out.result,
			 out.exc.vector, out.why);
	if (cpu.regs.rip != insn_va() + r.len)
		fail_msg("%s: RIP advanced by %lld, not %u", t->name,
			 (long long)(cpu.regs.rip - insn_va()), r.len);
	struct nctx emulated;
	nctx_from_cpu(&emulated, &cpu);
	for (int i = 0; i < 16; i++)
		if (emulated.gpr[i] != native.gpr[i])
			fail_msg("%s: register %d is 0x%llx, the CPU has 0x%llx", t->name, i,
				 (unsigned long long)emulated.gpr[i],
				 (unsigned long long)native.gpr[i]);
	const uint64_t arith = 0xcd5; /* CF PF AF ZF SF DF OF */
	if ((emulated.rflags & arith) != (native.rflags & arith))
		fail_msg("%s: flags 0x%llx, the CPU has 0x%llx", t->name,
			 (unsigned long long)(emulated.rflags & arith),
			 (unsigned long long)(native.rflags & arith));
	for (int i = 0; i < 16; i++)
		if (memcmp(emulated.xmm[i], native.xmm[i], 16) != 0)
			fail_msg("%s: xmm%d differs from the CPU's", t->name, i);
	if (emulated.mxcsr != native.mxcsr)
		fail_msg("%s: MXCSR 0x%x, the CPU has 0x%x", t->name, emulated.mxcsr, native.mxcsr);
	for (int i = 0; i < NDATA; i++)
		if (memcmp(ram + data_gpa(i), data + i * PG, PG) != 0)
			fail_msg("%s: data page %d differs from the CPU's", t->name, i);
}

static void table_matches_the_cpu(void **state)
{
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		check_case(&table[i]);
}

/* ---- the rules that have no ring-3 referee ---- */

static struct pvm_cpu simple_cpu(void)
{
	struct run r;
	memset(&r, 0, sizeof(r));
	base_setup(&r);
	fake_map_area();
	struct pvm_cpu cpu;
	fake_cpu(&cpu, &r.ctx, 0);
	return cpu;
}

static struct pvm_emu_outcome emulate(struct pvm_cpu *cpu, const uint8_t *insn, unsigned len,
				      bool smp)
{
	uint8_t *slot = ram + code_gpa() + (tpl_insn - tpl_begin);
	memset(slot, 0x90, 16);
	memcpy(slot, insn, len);
	struct pvm_emu_outcome out;
	assert_int_equal(pvm_emulate(emu, &gmem, cpu, insn, len, smp, &out), 0);
	return out;
}

/* clac/stac: the guest executed them believing SMAP exists (its CPUID may show the host's);
 * they change RFLAGS.AC only, as on a CPU with SMAP. */
static void clac_stac_change_ac(void **state)
{
	struct pvm_cpu cpu = simple_cpu();
	const uint8_t stac[] = {0x0f, 0x01, 0xcb}, clac[] = {0x0f, 0x01, 0xca};
	struct pvm_emu_outcome out = emulate(&cpu, stac, 3, false);
	assert_int_equal(out.result, PVM_EMU_DONE);
	assert_string_equal(out.name, "stac");
	assert_true(cpu.regs.rflags & (1u << 18));
	assert_int_equal(cpu.regs.rip, insn_va() + 3);
	cpu.regs.rip = insn_va();
	out = emulate(&cpu, clac, 3, false);
	assert_int_equal(out.result, PVM_EMU_DONE);
	assert_false(cpu.regs.rflags & (1u << 18));
	assert_int_equal(cpu.regs.rflags & 0x203, 0x203); /* IF and CF kept */
}

/* VEX: Unicorn 2.0 has no AVX. With CR4.OSXSAVE clear the CPU raises #UD, and so do we;
 * with it set the instruction is refused by name rather than run wrongly. */
static void vex_is_ud_or_refused(void **state)
{
	const uint8_t vmovdqu[] = {0xc5, 0xfa, 0x6f, 0x00};
	struct pvm_cpu cpu = simple_cpu();
	struct pvm_emu_outcome out = emulate(&cpu, vmovdqu, 4, false);
	assert_int_equal(out.result, PVM_EMU_EXCEPTION);
	assert_int_equal(out.exc.vector, 6);
	cpu.sregs.cr4 |= 1u << 18;
	out = emulate(&cpu, vmovdqu, 4, false);
	assert_int_equal(out.result, PVM_EMU_REFUSED);
	assert_non_null(strstr(out.why, "AVX"));
}

/* xrstor needs XCR0 and the XSAVE area, which the fallback does not carry: refused (the PVM
 * kernel parameters include noxsave). So are instructions that touch state outside the
 * registers handed to Unicorn. */
static void system_state_is_refused(void **state)
{
	const struct {
		uint8_t b[4];
		unsigned n;
		const char *name;
	} refused[] = {
	    {{0x48, 0x0f, 0xae, 0x2f}, 4, "xrstor64"},
	    {{0x0f, 0xa2}, 2, "cpuid"},
	    {{0x0f, 0x31}, 2, "rdtsc"},
	    {{0xfa}, 1, "cli"},
	    {{0x9d}, 1, "popfq"},
	    {{0x0f, 0x22, 0xd8}, 3, "mov"}, /* mov %rax,%cr3 */
	    {{0x8e, 0xd8}, 2, "mov"},	    /* mov %eax,%ds */
	    {{0xec}, 1, "in"},
	};
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		struct pvm_cpu cpu = simple_cpu(), cpu0 = cpu;
		struct pvm_emu_outcome out = emulate(&cpu, refused[i].b, refused[i].n, false);
		if (out.result != PVM_EMU_REFUSED || strcmp(out.name, refused[i].name) != 0)
			fail_msg("%s: result %d name %s", refused[i].name, out.result, out.name);
		assert_memory_equal(&cpu, &cpu0, sizeof(cpu));
	}
}

/* A locked read-modify-write is not atomic here: refused while other vCPUs run. */
static void lock_refused_with_smp(void **state)
{
	const uint8_t lock_cx16[] = {0xf0, 0x48, 0x0f, 0xc7, 0x0f};
	struct pvm_cpu cpu = simple_cpu();
	struct pvm_emu_outcome out = emulate(&cpu, lock_cx16, 5, true);
	assert_int_equal(out.result, PVM_EMU_REFUSED);
	assert_string_equal(out.name, "lock cmpxchg16b");
}

/* An operand in a page that maps to no RAM (MMIO): refused, nothing written. */
static void mmio_operand_is_refused(void **state)
{
	struct pvm_cpu cpu = simple_cpu();
	map_page(D(3, 0), 0xfee00000, PTE_P | PTE_RW);
	cpu.regs.rsi = D(3, 0x40);
	const uint8_t store[] = {0xf3, 0x0f, 0x7f, 0x3e}; /* movdqu %xmm7,(%rsi) */
	struct pvm_emu_outcome out = emulate(&cpu, store, 4, false);
	assert_int_equal(out.result, PVM_EMU_REFUSED);
	assert_non_null(strstr(out.why, "MMIO"));
	assert_int_equal(cpu.regs.rip, insn_va());
}

/* Page protections and the accessed/dirty bits, as the CPU's page walk has them. */
static void page_bits_and_protection(void **state)
{
	struct pvm_cpu cpu = simple_cpu();
	const uint8_t store[] = {0xf3, 0x0f, 0x7f, 0x3e}; /* movdqu %xmm7,(%rsi) */
	const uint8_t load[] = {0xf3, 0x0f, 0x6f, 0x06};  /* movdqu (%rsi),%xmm0 */
	uint64_t *leaf = map_page(D(3, 0), data_gpa(3), PTE_P | PTE_RW);
	cpu.regs.rsi = D(3, 0x80);
	assert_int_equal(emulate(&cpu, load, 4, false).result, PVM_EMU_DONE);
	assert_int_equal(*leaf & (PTE_A | PTE_D), PTE_A);
	cpu.regs.rip = insn_va();
	assert_int_equal(emulate(&cpu, store, 4, false).result, PVM_EMU_DONE);
	assert_int_equal(*leaf & (PTE_A | PTE_D), PTE_A | PTE_D);
	assert_memory_equal(ram + data_gpa(3) + 0x80, cpu.fpu.xmm[7], 16);

	/* read-only page, CR0.WP: #PF, error code present|write */
	*leaf = data_gpa(3) | PTE_P;
	cpu.regs.rip = insn_va();
	struct pvm_emu_outcome out = emulate(&cpu, store, 4, false);
	assert_int_equal(out.result, PVM_EMU_EXCEPTION);
	assert_int_equal(out.exc.vector, 14);
	assert_int_equal(out.exc.error, 3);
	assert_int_equal(out.exc.cr2, D(3, 0x80));
	/* without CR0.WP ring 0 writes read-only pages */
	cpu.sregs.cr0 &= ~(1ull << 16);
	assert_int_equal(emulate(&cpu, store, 4, false).result, PVM_EMU_DONE);
	cpu.sregs.cr0 |= 1ull << 16;

	/* a user page under SMAP: #PF unless RFLAGS.AC */
	*leaf = data_gpa(3) | PTE_P | PTE_RW | PTE_US;
	cpu.sregs.cr4 |= 1ull << 21;
	cpu.regs.rip = insn_va();
	out = emulate(&cpu, load, 4, false);
	assert_int_equal(out.result, PVM_EMU_EXCEPTION);
	assert_int_equal(out.exc.error, 1);
	cpu.regs.rflags |= 1ull << 18;
	assert_int_equal(emulate(&cpu, load, 4, false).result, PVM_EMU_DONE);
}

/* A page mapped for the fetch and then read as data: the read obeys SMAP on its own. */
static void smap_on_a_page_fetched_before(void **state)
{
	struct pvm_cpu cpu = simple_cpu();
	map_page((uint64_t)code, code_gpa(), PTE_P | PTE_RW | PTE_US);
	cpu.sregs.cr4 |= 1ull << 21;
	const uint8_t popcnt[] = {0xf3, 0x0f, 0xb8, 0x05, 0, 0, 0, 0}; /* popcnt 0(%rip),%eax */
	struct pvm_emu_outcome out = emulate(&cpu, popcnt, 8, false);
	assert_int_equal(out.result, PVM_EMU_EXCEPTION);
	assert_int_equal(out.exc.vector, 14);
	assert_int_equal(out.exc.error, 1);
	assert_int_equal(out.exc.cr2, insn_va() + 8);
	cpu.regs.rflags |= 1ull << 18;
	out = emulate(&cpu, popcnt, 8, false);
	assert_int_equal(out.result, PVM_EMU_DONE);
	assert_int_equal(cpu.regs.rax, 8); /* four nop bytes, 0x90: two bits each */
}

/* FS override (the table's GS case, with the base ring 3 cannot move without breaking TLS). */
static void fs_override(void **state)
{
	const uint8_t movups[] = {0x64, 0x0f, 0x10, 0x04, 0x25, 0x40, 0, 0, 0};
	struct pvm_cpu cpu = simple_cpu();
	cpu.sregs.fs.base = D(2, 0);
	assert_int_equal(emulate(&cpu, movups, 9, false).result, PVM_EMU_DONE);
	assert_memory_equal(cpu.fpu.xmm[0], ram + data_gpa(2) + 0x40, 16);
}

/* A branch completes with RIP at its target, in a page the guest maps or not (the fetch
 * there is the next instruction's business). */
static void branches_complete(void **state)
{
	const uint8_t jmp_rax[] = {0xff, 0xe0}, call_rax[] = {0xff, 0xd0};
	struct pvm_cpu cpu = simple_cpu();
	cpu.regs.rax = D(0, 0x40);
	assert_int_equal(emulate(&cpu, jmp_rax, 2, false).result, PVM_EMU_DONE);
	assert_int_equal(cpu.regs.rip, D(0, 0x40));
	cpu.regs.rip = insn_va();
	cpu.regs.rax = D(NDATA, 0x40); /* unmapped */
	uint64_t rsp = cpu.regs.rsp;
	assert_int_equal(emulate(&cpu, call_rax, 2, false).result, PVM_EMU_DONE);
	assert_int_equal(cpu.regs.rip, D(NDATA, 0x40));
	assert_int_equal(cpu.regs.rsp, rsp - 8);
	uint64_t ret;
	memcpy(&ret, ram + data_gpa(1) + 0x800 - 8, 8);
	assert_int_equal(ret, insn_va() + 2);
}

/* CR0.TS gives #NM to SSE, CR0.EM #UD; ring 3 or 32-bit code is not ours. */
static void control_registers_and_mode(void **state)
{
	const uint8_t movd[] = {0x66, 0x44, 0x0f, 0x6e, 0xf9};
	struct pvm_cpu cpu = simple_cpu();
	cpu.sregs.cr0 |= 8;
	struct pvm_emu_outcome out = emulate(&cpu, movd, 5, false);
	assert_int_equal(out.result, PVM_EMU_EXCEPTION);
	assert_int_equal(out.exc.vector, 7);
	cpu.sregs.cr0 = (cpu.sregs.cr0 & ~8ull) | 4;
	out = emulate(&cpu, movd, 5, false);
	assert_int_equal(out.exc.vector, 6);
	cpu = simple_cpu();
	cpu.sregs.cs.selector = 0x33;
	assert_int_equal(emulate(&cpu, movd, 5, false).result, PVM_EMU_REFUSED);
	cpu = simple_cpu();
	cpu.sregs.cs.l = 0;
	assert_int_equal(emulate(&cpu, movd, 5, false).result, PVM_EMU_REFUSED);
}

/* The instruction is fetched from guest memory; bytes that differ from what KVM reported are
 * refused, and so is code in an unmapped page (with the #PF the fetch would raise). */
static void fetch_checks(void **state)
{
	const uint8_t movd[] = {0x66, 0x44, 0x0f, 0x6e, 0xf9}, other[] = {0x66, 0x0f, 0xef, 0xd1};
	struct pvm_cpu cpu = simple_cpu();
	uint8_t *slot = ram + code_gpa() + (tpl_insn - tpl_begin);
	memset(slot, 0x90, 16);
	memcpy(slot, other, sizeof(other));
	struct pvm_emu_outcome out;
	assert_int_equal(pvm_emulate(emu, &gmem, &cpu, movd, 5, false, &out), 0);
	assert_int_equal(out.result, PVM_EMU_REFUSED);
	cpu.regs.rip = D(NDATA, 0);
	assert_int_equal(pvm_emulate(emu, &gmem, &cpu, movd, 5, false, &out), 0);
	assert_int_equal(out.result, PVM_EMU_EXCEPTION);
	assert_int_equal(out.exc.vector, 14);
	assert_int_equal(out.exc.cr2, D(NDATA, 0));
}

/* An instruction that straddles two code pages mapped to scattered physical pages. */
static void instruction_across_pages(void **state)
{
	struct pvm_cpu cpu = simple_cpu();
	const uint8_t movd[] = {0x66, 0x44, 0x0f, 0x6e, 0xf9};
	uint64_t va = D(1, 0) - 2;
	memcpy(ram + data_gpa(0) + PG - 2, movd, 2);
	memcpy(ram + data_gpa(1), movd + 2, 3);
	cpu.regs.rip = va;
	struct pvm_emu_outcome out;
	assert_int_equal(pvm_emulate(emu, &gmem, &cpu, movd, 5, false, &out), 0);
	assert_int_equal(out.result, PVM_EMU_DONE);
	assert_int_equal(cpu.regs.rip, va + 5);
	uint32_t lo;
	memcpy(&lo, cpu.fpu.xmm[15], 4);
	assert_int_equal(lo, 0x87654321);
}

/* An instruction that ends exactly at the end of a page whose next page is unmapped. */
static void instruction_at_page_end(void **state)
{
	struct pvm_cpu cpu = simple_cpu();
	const uint8_t movd[] = {0x66, 0x44, 0x0f, 0x6e, 0xf9};
	uint64_t va = D(NDATA, 0) - 5;
	memcpy(ram + data_gpa(NDATA - 1) + PG - 5, movd, 5);
	cpu.regs.rip = va;
	struct pvm_emu_outcome out;
	assert_int_equal(pvm_emulate(emu, &gmem, &cpu, movd, 5, false, &out), 0);
	assert_int_equal(out.result, PVM_EMU_DONE);
	assert_int_equal(cpu.regs.rip, va + 5);
}

/* fxsave and fxrstor: the SSE part of the image, and MXCSR through it. */
static void fxsave_fxrstor(void **state)
{
	struct pvm_cpu cpu = simple_cpu();
	const uint8_t fxsave[] = {0x0f, 0xae, 0x07}, fxrstor[] = {0x0f, 0xae, 0x0f}; /* (%rdi) */
	cpu.regs.rdi = D(2, 0x200);
	cpu.fpu.mxcsr = 0x3f80;
	assert_int_equal(emulate(&cpu, fxsave, 3, false).result, PVM_EMU_DONE);
	const uint8_t *img = ram + data_gpa(2) + 0x200;
	uint32_t mxcsr;
	memcpy(&mxcsr, img + 24, 4);
	assert_int_equal(mxcsr, 0x3f80);
	assert_memory_equal(img + 160 + 5 * 16, cpu.fpu.xmm[5], 16);
	/* change the image, load it back */
	uint8_t *w = ram + data_gpa(2) + 0x200;
	memset(w + 160 + 2 * 16, 0xab, 16);
	mxcsr = 0x1f80;
	memcpy(w + 24, &mxcsr, 4);
	cpu.regs.rip = insn_va();
	struct pvm_emu_outcome out = emulate(&cpu, fxrstor, 3, false);
	assert_int_equal(out.result, PVM_EMU_DONE);
	assert_true(out.fpu_changed);
	assert_int_equal(cpu.fpu.mxcsr, 0x1f80);
	for (int b = 0; b < 16; b++)
		assert_int_equal(cpu.fpu.xmm[2][b], 0xab);
	/* CR0.EM: #NM for fxsave, as for x87 instructions (SSE ones get #UD) */
	cpu.regs.rip = insn_va();
	cpu.sregs.cr0 |= 4;
	out = emulate(&cpu, fxsave, 3, false);
	assert_int_equal(out.result, PVM_EMU_EXCEPTION);
	assert_int_equal(out.exc.vector, 7);
	cpu.sregs.cr0 &= ~4ull;
	/* misaligned: #GP */
	cpu.regs.rip = insn_va();
	cpu.regs.rdi += 8;
	out = emulate(&cpu, fxsave, 3, false);
	assert_int_equal(out.result, PVM_EMU_EXCEPTION);
	assert_int_equal(out.exc.vector, 13);
}

static int group_setup(void **state)
{
	native_setup();
	ram = aligned_alloc(PG, GUEST_RAM);
	assert_non_null(ram);
	gmem_init_from(&gmem, ram, GUEST_RAM);
	emu = pvm_emu_new();
	assert_non_null(emu);
	return 0;
}

static int group_teardown(void **state)
{
	pvm_emu_free(emu);
	free(ram);
	munmap(area, (NDATA + 2) * PG);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(table_matches_the_cpu),
	    cmocka_unit_test(clac_stac_change_ac),
	    cmocka_unit_test(vex_is_ud_or_refused),
	    cmocka_unit_test(system_state_is_refused),
	    cmocka_unit_test(lock_refused_with_smp),
	    cmocka_unit_test(mmio_operand_is_refused),
	    cmocka_unit_test(page_bits_and_protection),
	    cmocka_unit_test(smap_on_a_page_fetched_before),
	    cmocka_unit_test(branches_complete),
	    cmocka_unit_test(fs_override),
	    cmocka_unit_test(control_registers_and_mode),
	    cmocka_unit_test(fetch_checks),
	    cmocka_unit_test(instruction_across_pages),
	    cmocka_unit_test(instruction_at_page_end),
	    cmocka_unit_test(fxsave_fxrstor),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
