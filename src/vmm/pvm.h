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
	PVM_FALLBACK_SKIP,	/* step over the instruction (fwait: no x87 exceptions pending) */
	PVM_FALLBACK_INJECT_BP, /* int3: step over it and inject #BP, as the CPU would */
};

/* Decides what to do with the instruction bytes of an emulation failure; sets *len to the
 * instruction's length for the actions that step over it. */
enum pvm_fallback pvm_fallback_decide(const uint8_t *insn, unsigned n, unsigned *len);

/* Returns a newly allocated command line: `append` plus PVM_LINUX_CMDLINE when `add` is set. */
char *pvm_cmdline(const char *append, int add);

#endif
