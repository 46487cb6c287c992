#include "vmm/pvm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Decodes ModRM (+ SIB, displacement) at insn[0] in 64-bit mode. Returns the bytes used, or
 * 0 when the operand is a register or the bytes run out. */
static unsigned decode_modrm_mem(const uint8_t *insn, unsigned n, unsigned rex,
				 struct pvm_mem_operand *mem, unsigned *reg)
{
	if (n < 1)
		return 0;
	unsigned modrm = insn[0], mod = modrm >> 6, rm = modrm & 7, used = 1;
	*reg = (modrm >> 3) & 7;
	if (mod == 3)
		return 0;
	mem->base = -1;
	mem->index = -1;
	mem->scale = 1;
	mem->disp = 0;
	mem->rip_relative = 0;
	if (rm == 4) {
		if (n < 2)
			return 0;
		unsigned sib = insn[1], base = sib & 7;
		unsigned index = ((sib >> 3) & 7) | ((rex & 2) << 2);
		used = 2;
		mem->scale = 1u << (sib >> 6);
		if (index != 4) /* index 4 (rsp) means none; r12 (with REX.X) is an index */
			mem->index = (int)index;
		if (base == 5 && mod == 0) { /* no base: disp32 */
			if (n < 6)
				return 0;
			int32_t d;
			memcpy(&d, insn + 2, 4);
			mem->disp = d;
			return 6;
		}
		mem->base = (int)(base | ((rex & 1) << 3));
	} else if (rm == 5 && mod == 0) {
		if (n < 5)
			return 0;
		int32_t d;
		memcpy(&d, insn + 1, 4);
		mem->disp = d;
		mem->rip_relative = 1;
		return 5;
	} else {
		mem->base = (int)(rm | ((rex & 1) << 3));
	}
	if (mod == 1) {
		if (n < used + 1)
			return 0;
		mem->disp = (int8_t)insn[used];
		used += 1;
	} else if (mod == 2) {
		if (n < used + 4)
			return 0;
		int32_t d;
		memcpy(&d, insn + used, 4);
		mem->disp = d;
		used += 4;
	}
	return used;
}

enum pvm_fallback pvm_fallback_decide(const uint8_t *insn, unsigned n, unsigned *len,
				      struct pvm_mem_operand *mem)
{
	if (n < 1)
		return PVM_FALLBACK_NONE;
	if (insn[0] == 0x9b) { /* fwait */
		*len = 1;
		return PVM_FALLBACK_SKIP;
	}
	if (insn[0] == 0xcc) { /* int3 */
		*len = 1;
		return PVM_FALLBACK_INJECT_BP;
	}
	unsigned i = 0, rex = 0;
	int segment = 0;
	while (i < n && (insn[i] == 0x64 || insn[i] == 0x65)) {
		segment = insn[i] == 0x64 ? 4 : 5;
		i++;
	}
	if (i < n && (insn[i] & 0xf0) == 0x40)
		rex = insn[i++] & 0x0f;
	/* 0f ae /2 ldmxcsr, 0f ae /3 stmxcsr (no 66/f2/f3 prefix: those are other opcodes). */
	if (n < i + 3 || insn[i] != 0x0f || insn[i + 1] != 0xae)
		return PVM_FALLBACK_NONE;
	unsigned reg;
	unsigned used = decode_modrm_mem(insn + i + 2, n - i - 2, rex, mem, &reg);
	if (!used || (reg != 2 && reg != 3))
		return PVM_FALLBACK_NONE;
	mem->segment = segment;
	*len = i + 2 + used;
	return reg == 2 ? PVM_FALLBACK_LDMXCSR : PVM_FALLBACK_STMXCSR;
}

uint64_t pvm_operand_address(const struct pvm_mem_operand *mem, const uint64_t regs[16],
			     uint64_t next_rip, uint64_t fs_base, uint64_t gs_base)
{
	uint64_t a = (uint64_t)mem->disp;
	if (mem->rip_relative)
		a += next_rip;
	if (mem->base >= 0)
		a += regs[mem->base];
	if (mem->index >= 0)
		a += regs[mem->index] * mem->scale;
	if (mem->segment == 4)
		a += fs_base;
	else if (mem->segment == 5)
		a += gs_base;
	return a;
}

char *pvm_cmdline(const char *append, int add)
{
	const char *base = append ? append : "";
	char *out;
	int r;
	if (add)
		r = asprintf(&out, "%s%s%s", base, *base ? " " : "", PVM_LINUX_CMDLINE);
	else
		r = asprintf(&out, "%s", base);
	return r < 0 ? NULL : out;
}
