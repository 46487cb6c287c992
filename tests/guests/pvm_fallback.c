/* pvm_fallback: the instructions a KVM-PVM host's emulator fails on and that kite carries out
 * itself (README "KVM-PVM hosts"), executed in ring 0 where PVM emulates them: `int3` must
 * deliver #BP with RIP just past it, `fwait` must simply retire, and ldmxcsr/stmxcsr must move
 * MXCSR through memory. On QEMU and on hosts with hardware virtualization the CPU does the same,
 * which keeps the expectations honest. With `pvm=1` on the command line (the host test passes it on
 * a PVM host) the program also checks that CPUID hides CX16, POPCNT, XSAVE, SMEP and SMAP, which
 * that host cannot emulate. */
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
	if (cmdline_u64("pvm", 0))
		check_hidden_features();
	else
		report_skip("CPUID on a PVM host (pass pvm=1 there)");
}
