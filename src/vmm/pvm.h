/* KVM-PVM hosts: guest CPL0 code is emulated by the host's instruction emulator, which lacks a
 * few instructions. Two answers live here: kernel parameters that keep a Linux guest away from
 * them, and a small VMM-side fallback for the ones it still meets (see README "PVM hosts"). */
#ifndef KITE_VMM_PVM_H
#define KITE_VMM_PVM_H

#include <stdint.h>

/* Appended to a Linux kernel's command line on a PVM host unless --no-pvm-defaults: no XSAVE
 * (xrstor fails emulation), no KASLR, SMAP/SMEP/POPCNT off (clac, popcnt fail emulation). */
#define PVM_LINUX_CMDLINE "noxsave nokaslr clearcpuid=308,295,151"
/* x86 Linux accepts at least this many command-line bytes (COMMAND_LINE_SIZE) */
#define PVM_CMDLINE_LIMIT 2048

enum pvm_fallback {
	PVM_FALLBACK_NONE,	/* not ours to handle: report the emulation failure */
	PVM_FALLBACK_LDMXCSR,	/* ldmxcsr m32: load MXCSR from the memory operand */
	PVM_FALLBACK_STMXCSR,	/* stmxcsr m32: store MXCSR to the memory operand */
	PVM_FALLBACK_SKIP,	/* step over the instruction (fwait: no x87 exceptions pending) */
	PVM_FALLBACK_INJECT_BP, /* int3: step over it and inject #BP, as the CPU would */
};

/* A decoded 64-bit-mode memory operand: base + index * scale + disp (+ the FS or GS base),
 * or, RIP-relative, the next instruction's address + disp. Registers in x86 encoding order
 * (0 rax, 1 rcx, 2 rdx, 3 rbx, 4 rsp, 5 rbp, 6 rsi, 7 rdi, 8-15 r8-r15); -1 for none. */
struct pvm_mem_operand {
	int base, index;
	unsigned scale;
	int64_t disp;
	int rip_relative;
	int segment; /* 0 none, 4 FS, 5 GS (segment override prefixes 0x64, 0x65) */
};

/* Decides what to do with the instruction bytes of an emulation failure; sets *len to the
 * instruction's length, and *mem to its memory operand for LDMXCSR/STMXCSR. */
enum pvm_fallback pvm_fallback_decide(const uint8_t *insn, unsigned n, unsigned *len,
				      struct pvm_mem_operand *mem);

/* The operand's address given the general registers (encoding order) and the address of
 * the next instruction. */
uint64_t pvm_operand_address(const struct pvm_mem_operand *mem, const uint64_t regs[16],
			     uint64_t next_rip, uint64_t fs_base, uint64_t gs_base);

/* Returns a newly allocated command line: `append` plus PVM_LINUX_CMDLINE when `add` is set. */
char *pvm_cmdline(const char *append, int add);

#endif
