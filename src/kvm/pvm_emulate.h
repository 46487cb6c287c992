/* KVM-PVM hosts: carrying out, in the VMM, one guest ring-0 instruction that the host's
 * instruction emulator refused (KVM_EXIT_INTERNAL_ERROR, emulation failure). Unicorn (QEMU's
 * CPU as a library) executes the instruction on the vCPU's registers; Capstone decodes it to
 * name it and to apply the architectural rules Unicorn 2.0 lacks. Guest memory reaches Unicorn
 * one page at a time, translated through the guest's page tables here (Unicorn 2.0 does not
 * translate), as copies: what the instruction stores is written back only once it completed,
 * so a faulting instruction leaves memory untouched. See README "KVM-PVM hosts". */
#ifndef KITE_KVM_PVM_EMULATE_H
#define KITE_KVM_PVM_EMULATE_H

#include "kvm/memory.h"

#include <linux/kvm.h>
#include <stdbool.h>
#include <stdint.h>

/* The vCPU state an instruction reads and changes (KVM_GET_REGS/SREGS/FPU). */
struct pvm_cpu {
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_fpu fpu;
};

enum pvm_emu_result {
	PVM_EMU_DONE,	   /* carried out: registers, FPU state and memory updated, RIP advanced */
	PVM_EMU_EXCEPTION, /* the instruction raises `exc`: inject it; nothing else changed */
	PVM_EMU_REFUSED,   /* not carried out (`why`): report the emulation failure */
};

struct pvm_exception {
	unsigned vector;
	bool has_error;
	uint32_t error;
	uint64_t cr2; /* #PF: the faulting linear address */
};

struct pvm_emu_outcome {
	enum pvm_emu_result result;
	struct pvm_exception exc;
	bool fpu_changed; /* DONE: cpu->fpu differs from what KVM gave */
	char name[40];	  /* the instruction's mnemonic ("movd"), or "?" when not decoded */
	char why[128];	  /* REFUSED: the reason, for the error message */
};

/* Guest page-table walk (4-level long mode), as a ring-0 access of `acc` would do it. */
enum pvm_access { PVM_READ, PVM_WRITE, PVM_FETCH };

struct pvm_walk {
	uint64_t gpa;	   /* the byte `va` maps to */
	uint64_t leaf_pte; /* guest-physical address of the entry that maps the page */
	bool user, writable, nx;
};

/* Translates `va`. Sets the accessed bit of each entry used. Returns 0 with *w filled, 1 when
 * the access faults (*exc: #PF with its error code and CR2, or #GP for a non-canonical
 * address), -1 when a page table is not in guest RAM. */
int pvm_translate(const struct guest_mem *mem, const struct kvm_sregs *sregs, uint64_t rflags,
		  uint64_t va, enum pvm_access acc, struct pvm_walk *w, struct pvm_exception *exc);

struct pvm_emu;

/* One per vCPU thread: a Unicorn engine and a Capstone handle. NULL with an error printed. */
struct pvm_emu *pvm_emu_new(void);
void pvm_emu_free(struct pvm_emu *e);

/* Carries out the instruction at cpu->regs.rip, whose first `n` bytes KVM reported in `insn`
 * (they must match guest memory). `smp`: other vCPUs run, so lock-prefixed instructions,
 * which Unicorn does not carry out atomically here, are refused. Returns 0 with *out filled
 * (cpu updated only for PVM_EMU_DONE; memory written only then), or -1 when the VMM itself
 * failed (error printed). */
int pvm_emulate(struct pvm_emu *e, const struct guest_mem *mem, struct pvm_cpu *cpu,
		const uint8_t *insn, unsigned n, bool smp, struct pvm_emu_outcome *out);

#endif
