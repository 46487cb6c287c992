/* pvm_fallback: the instructions a KVM-PVM host's emulator fails on and that kite carries out
 * itself (README "KVM-PVM hosts"), executed in ring 0 where PVM emulates them: `int3` must
 * deliver #BP with RIP just past it, `fwait` must simply retire, ldmxcsr/stmxcsr must move
 * MXCSR through memory, SSE data moves (the movd %ecx,%xmm15 the stock kernel stopped at,
 * movq, movdqa/movdqu, pxor) and popcnt must compute what the CPU computes, and a misaligned
 * movdqa must deliver #GP at its own RIP. On QEMU and on hosts with hardware virtualization
 * the CPU does the same, which keeps the expectations honest. With `pvm=1` on the command line (the
 * host test passes it on a PVM host) the program also checks that CPUID hides CX16, POPCNT, XSAVE,
 * SMEP and SMAP, which that host cannot emulate. */
#include "libguest.h"

const char guest_name[] = "pvm_fallback";

static volatile uint64_t bp_hits, bp_rip;

static void on_breakpoint(struct intr_frame *f)
{
	bp_hits++;
	bp_rip = f->rip;
}

static void check_int3(void)
{
	uint64_t after;
	set_intr_handler(3, on_breakpoint);
	__asm__ volatile("int3\n\t"
			 "1: lea 1b(%%rip), %0"
			 : "=r"(after)
			 :
			 : "memory");
	report(bp_hits == 1, "int3 delivers #BP once (%lu)", (unsigned long)bp_hits);
	report(bp_rip == after, "#BP saves the RIP after the int3 (%#lx, expected %#lx)",
	       (unsigned long)bp_rip, (unsigned long)after);
	__asm__ volatile("int3; int3" ::: "memory");
	report(bp_hits == 3, "two more int3 give two more #BP (%lu)", (unsigned long)bp_hits);
}

static void check_fwait(void)
{
	uint16_t status = 0xffff;
	__asm__ volatile("fninit\n\tfwait\n\tfnstsw %0\n\tfwait" : "=m"(status) : : "memory");
	/* Reaching this line is the test (an unhandled emulation failure ends the VM); after
	 * fninit the x87 status word is clear. */
	report(status == 0, "fwait retires and the x87 state is intact (status %#x)", status);
}

/* ldmxcsr/stmxcsr with memory operands (PVM's emulator lacks ldmxcsr; kite loads MXCSR
 * itself). SSE is enabled here first: CR4.OSFXSR (bit 9), CR0.MP set and EM clear. */
static void check_mxcsr(void)
{
	uint64_t cr0, cr4;
	__asm__ volatile("mov %%cr0, %0" : "=r"(cr0));
	__asm__ volatile("mov %%cr4, %0" : "=r"(cr4));
	cr0 = (cr0 & ~(1ull << 2)) | (1ull << 1);
	cr4 |= 1ull << 9;
	__asm__ volatile("mov %0, %%cr0" ::"r"(cr0));
	__asm__ volatile("mov %0, %%cr4" ::"r"(cr4));
	struct {
		uint32_t pad, in, out, out2;
	} m = {0, 0x7f80, 0, 0}; /* all exceptions masked, round toward zero */
	__asm__ volatile("ldmxcsr 4(%0)\n\tstmxcsr 8(%0)" : : "r"(&m) : "memory");
	report(m.out == 0x7f80, "ldmxcsr then stmxcsr round-trips MXCSR (%#x)", m.out);
	m.in = 0x1f80;
	__asm__ volatile("ldmxcsr %1\n\tstmxcsr %0" : "=m"(m.out2) : "m"(m.in) : "memory");
	report(m.out2 == 0x1f80, "MXCSR back to its default (%#x)", m.out2);
}

/* SSE moves through registers and memory, in ring 0 (SSE is on after check_mxcsr). */
static void check_sse_moves(void)
{
	uint64_t movd_out = 0, movq_out = 0;
	__asm__ volatile("movd %%ecx, %%xmm15\n\t" /* 66 44 0f 6e f9 */
			 "movq %%xmm15, %0"
			 : "=r"(movd_out)
			 : "c"(0x89abcdef12345678ull));
	report(movd_out == 0x12345678, "movd %%ecx,%%xmm15 zero-extends (%#lx)",
	       (unsigned long)movd_out);
	__asm__ volatile("movq %1, %%xmm3\n\tmovq %%xmm3, %0"
			 : "=r"(movq_out)
			 : "r"(0x0123456789abcdefull));
	report(movq_out == 0x0123456789abcdefull, "movq through %%xmm3 (%#lx)",
	       (unsigned long)movq_out);

	static uint8_t buf[80] __attribute__((aligned(16)));
	for (int i = 0; i < 80; i++)
		buf[i] = (uint8_t)(i * 3 + 1);
	/* movdqu from an odd address, movdqa to an aligned one, pxor with itself, movdqu back */
	__asm__ volatile("movdqu 1(%0), %%xmm1\n\t"
			 "movdqa %%xmm1, 32(%0)\n\t"
			 "movdqa 32(%0), %%xmm2\n\t"
			 "pxor %%xmm2, %%xmm1\n\t"
			 "movdqu %%xmm1, 49(%0)"
			 :
			 : "r"(buf)
			 : "memory");
	bool copied = true, zeroed = true;
	for (int i = 0; i < 16; i++) {
		copied = copied && buf[32 + i] == (uint8_t)((i + 1) * 3 + 1);
		zeroed = zeroed && buf[49 + i] == 0;
	}
	report(copied, "movdqu then movdqa copy 16 bytes");
	report(zeroed, "pxor of a register with its copy stores 16 zero bytes");
}

static volatile uint64_t ud_hits, gp_hits, gp_rip;

static void on_ud(struct intr_frame *f)
{
	ud_hits++;
	f->rip += 5; /* the popcnt below is 5 bytes */
}

static void on_gp(struct intr_frame *f)
{
	gp_hits++;
	gp_rip = f->rip;
	f->rip += 5; /* the movdqa below is 5 bytes */
}

/* popcnt works whatever CPUID says, except where the CPU lacks it (QEMU's default CPU). */
static void check_popcnt(void)
{
	uint64_t n = 0;
	set_intr_handler(6, on_ud);
	__asm__ volatile("popcnt %1, %0" : "+r"(n) : "r"(0xf00f000000000101ull));
	set_intr_handler(6, NULL);
	if (ud_hits)
		report_skip("popcnt: #UD on this CPU");
	else
		report(n == 10, "popcnt counts 10 bits (%lu)", (unsigned long)n);
}

/* movdqa from an address that is not 16-byte aligned: #GP(0) with RIP at the movdqa. */
static void check_movdqa_gp(void)
{
	static uint8_t buf[32] __attribute__((aligned(16)));
	uint64_t at;
	set_intr_handler(13, on_gp);
	__asm__ volatile("lea 1f(%%rip), %0\n\t"
			 "1: movdqa 8(%1), %%xmm4" /* 66 0f 6f 67 08 */
			 : "=&r"(at)
			 : "D"(buf)
			 : "memory");
	set_intr_handler(13, NULL);
	report(gp_hits == 1 && gp_rip == at, "misaligned movdqa raises #GP at its RIP (%lu)",
	       (unsigned long)gp_hits);
}

static void check_hidden_features(void)
{
	uint32_t a, b, c, d;
	cpuid(1, 0, &a, &b, &c, &d);
	report(!(c & (1u << 13)), "CPUID hides CX16 (cmpxchg16b fails emulation)");
	report(!(c & (1u << 23)), "CPUID hides POPCNT");
	report(!(c & (1u << 26)), "CPUID hides XSAVE (xrstor fails emulation)");
	cpuid(7, 0, &a, &b, &c, &d);
	report(!(b & (1u << 7)) && !(b & (1u << 20)), "CPUID hides SMEP and SMAP (clac fails)");
}

void guest_main(void)
{
	check_int3();
	check_fwait();
	check_mxcsr();
	check_sse_moves();
	check_popcnt();
	check_movdqa_gp();
	if (cmdline_u64("pvm", 0))
		check_hidden_features();
	else
		report_skip("CPUID on a PVM host (pass pvm=1 there)");
}
