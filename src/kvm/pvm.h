/* KVM-PVM hosts: guest CPL0 code is emulated by the host's instruction emulator, which lacks a
 * few instructions. Two answers live here: kernel parameters that keep a Linux guest away from
 * them, and the VMM-side fallback for the ones it still meets: int3 and fwait by hand, the
 * rest carried out by pvm_emulate.h (see README "KVM-PVM hosts"). */
#ifndef KITE_KVM_PVM_H
#define KITE_KVM_PVM_H

#include <stddef.h>
#include <stdint.h>

/* Appended to a Linux kernel's command line on a PVM host unless --no-pvm-defaults: no XSAVE
 * (xrstor fails emulation), no KASLR, SMAP/SMEP/POPCNT off (clac, popcnt fail emulation). */
#define PVM_LINUX_CMDLINE "noxsave nokaslr clearcpuid=308,295,151"
/* x86 Linux accepts at least this many command-line bytes (COMMAND_LINE_SIZE) */
#define PVM_CMDLINE_LIMIT 2048

enum pvm_fallback {
	PVM_FALLBACK_NONE,	/* no instruction bytes: report the emulation failure */
	PVM_FALLBACK_SKIP,	/* step over the instruction (fwait: no x87 exceptions pending) */
	PVM_FALLBACK_INJECT_BP, /* int3: step over it and inject #BP, as the CPU would */
	PVM_FALLBACK_EMULATE,	/* anything else: carry it out (pvm_emulate.h) */
};

/* Decides what to do with the instruction bytes of an emulation failure; sets *len to the
 * instruction's length for SKIP and INJECT_BP. */
enum pvm_fallback pvm_fallback_decide(const uint8_t *insn, unsigned n, unsigned *len);

/* Fallbacks counted by instruction for --stats: the first PVM_STATS_NAMES names seen, then
 * "other". */
#define PVM_STATS_NAMES 16
struct pvm_stats {
	uint64_t total;
	struct {
		char name[24];
		uint64_t n;
	} by_name[PVM_STATS_NAMES];
	uint64_t other;
};

void pvm_stats_count(struct pvm_stats *s, const char *name);
void pvm_stats_add(struct pvm_stats *dst, const struct pvm_stats *src);
/* "movd 3, int3 2" into buf (truncated to len). */
void pvm_stats_format(const struct pvm_stats *s, char *buf, size_t len);

/* Returns a newly allocated command line: `append` plus PVM_LINUX_CMDLINE when `add` is set. */
char *pvm_cmdline(const char *append, int add);

#endif
