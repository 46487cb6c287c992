/* CPUID for the guest: what KVM supports shaped by the machine's --cpu model
 * (config/cpu_config.h), with the hypervisor leaves set, the APIC id per vCPU, and on a KVM-PVM
 * host the features its instruction emulator cannot run hidden whatever the model (CX16: the
 * emulator fails on `lock cmpxchg16b`; see README "PVM hosts"). */
#include "machine/vm.h"
#include "config/cpu_config.h"
#include "util/err.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#define CPUID_1_ECX_CX16	 (1U << 13)
#define CPUID_1_ECX_POPCNT	 (1U << 23)
#define CPUID_1_ECX_TSC_DEADLINE (1U << 24)
#define CPUID_1_ECX_XSAVE	 (1U << 26)
#define CPUID_1_ECX_OSXSAVE	 (1U << 27)
#define CPUID_1_ECX_HYPERVISOR	 (1U << 31)
#define CPUID_7_EBX_SMEP	 (1U << 7)
#define CPUID_7_EBX_SMAP	 (1U << 20)
#define KVM_SIGNATURE_LEAF	 0x40000000U

/* The entry for leaf/subleaf (subleaf ignored where it does not matter), or -1. */
static int find_index(const struct kvm_cpuid2 *c, uint32_t leaf, uint32_t subleaf)
{
	for (uint32_t i = 0; i < c->nent; i++) {
		const struct kvm_cpuid_entry2 *e = &c->entries[i];
		bool indexed = e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
		if (e->function == leaf && (!indexed || e->index == subleaf))
			return (int)i;
	}
	return -1;
}

static struct kvm_cpuid_entry2 *find_entry(struct kvm_cpuid2 *c, uint32_t leaf, uint32_t subleaf)
{
	int i = find_index(c, leaf, subleaf);
	return i < 0 ? NULL : &c->entries[i];
}

static uint32_t *entry_reg(struct kvm_cpuid_entry2 *e, unsigned reg)
{
	switch (reg) {
	case CPUID_EAX:
		return &e->eax;
	case CPUID_EBX:
		return &e->ebx;
	case CPUID_ECX:
		return &e->ecx;
	default:
		return &e->edx;
	}
}

/* The feature words the `base` model masks, each to the bits cpu_features[] marks base. */
static const struct {
	uint32_t leaf, subleaf;
	unsigned reg;
	uint32_t also; /* bits kept beside the named ones */
} feature_words[] = {
    {1, 0, CPUID_EDX, 0},
    {1, 0, CPUID_ECX, 0},
    {7, 0, CPUID_EBX, 0},
    {7, 0, CPUID_ECX, 0},
    {7, 0, CPUID_EDX, 0},
    {7, 1, CPUID_EAX, 0},
    {0xd, 1, CPUID_EAX, 0},
    {0x80000001, 0, CPUID_ECX, 0},
    /* AMD repeats leaf 1's EDX bits 0-9, 12-17, 23, 24 here: those of the base stay. */
    {0x80000001, 0, CPUID_EDX, 0x0183f3ffu},
};

#define NWORDS (sizeof(feature_words) / sizeof(feature_words[0]))

static void mask_to_base(struct kvm_cpuid2 *c)
{
	for (size_t w = 0; w < NWORDS; w++) {
		struct kvm_cpuid_entry2 *e =
		    find_entry(c, feature_words[w].leaf, feature_words[w].subleaf);
		if (!e)
			continue;
		uint32_t keep = feature_words[w].also;
		for (size_t i = 0; i < cpu_nfeatures; i++) {
			const struct cpu_feature *f = &cpu_features[i];
			if (f->base && f->leaf == feature_words[w].leaf &&
			    f->subleaf == feature_words[w].subleaf &&
			    f->reg == feature_words[w].reg)
				keep |= 1u << f->bit;
		}
		*entry_reg(e, feature_words[w].reg) &= keep;
	}
}

static bool feature_on(const struct kvm_cpuid2 *c, const struct cpu_feature *f)
{
	int i = find_index(c, f->leaf, f->subleaf);
	if (i < 0)
		return false;
	const struct kvm_cpuid_entry2 *e = &c->entries[i];
	const uint32_t regs[4] = {e->eax, e->ebx, e->ecx, e->edx};
	return regs[f->reg & 3] >> f->bit & 1;
}

static int apply_changes(struct kvm_cpuid2 *c, const struct kvm_cpuid2 *supported,
			 const struct cpu_config *cpu)
{
	for (unsigned i = 0; i < cpu->nchanges; i++) {
		const struct cpu_feature *f = &cpu_features[cpu->changes[i].feature];
		struct kvm_cpuid_entry2 *e = find_entry(c, f->leaf, f->subleaf);
		if (cpu->changes[i].on && (!e || !feature_on(supported, f)))
			return kite_error("--cpu: +%s: this host's KVM cannot give it", f->name);
		if (!e)
			continue;
		if (cpu->changes[i].on)
			*entry_reg(e, f->reg) |= 1u << f->bit;
		else
			*entry_reg(e, f->reg) &= ~(1u << f->bit);
	}
	return 0;
}

/* XSAVE state components (leaf 0xd) follow the features they belong to, as in QEMU: no XSAVE,
 * no leaf 0xd; no AVX, no YMM state; no AVX-512 or PKU, none of theirs. The size of the save
 * area for every supported component (ECX) is recomputed from what is left. */
#define XSAVE_LEGACY_AND_HEADER 576u

static void fix_xsave_leaf(struct kvm_cpuid2 *c)
{
	static const struct {
		const char *feature;
		uint32_t components;
	} owners[] = {{"avx", 1u << 2}, {"mpx", 3u << 3}, {"avx512f", 7u << 5}, {"pku", 1u << 9}};
	bool xsave = feature_on(c, &cpu_features[cpu_feature_find("xsave")]);
	uint32_t drop = xsave ? 0 : ~0u;
	for (size_t i = 0; i < sizeof(owners) / sizeof(owners[0]); i++)
		if (!feature_on(c, &cpu_features[cpu_feature_find(owners[i].feature)]))
			drop |= owners[i].components;
	struct kvm_cpuid_entry2 *top = find_entry(c, 0xd, 0);
	if (!top || (xsave && !(top->eax & drop)))
		return; /* nothing of leaf 0xd goes */
	if (xsave)
		top->eax &= ~drop;
	uint32_t size = XSAVE_LEGACY_AND_HEADER;
	for (uint32_t i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];
		if (e->function != 0xd || e == top)
			continue;
		bool user = e->index >= 2 && e->index < 32;
		if (!xsave || (user && (drop >> e->index & 1)))
			e->eax = e->ebx = e->ecx = e->edx = 0;
		else if (user && (top->eax >> e->index & 1) && e->ebx + e->eax > size)
			size = e->ebx + e->eax; /* a user state component's offset + size */
	}
	if (xsave)
		top->ecx = size;
	else
		top->eax = top->ebx = top->ecx = top->edx = 0;
}

/* What KVM supports, with hypervisor set and tsc-deadline when KVM emulates it (QEMU does the
 * same). NULL after an error (reported). */
static struct kvm_cpuid2 *supported_cpuid(struct kvm_host *kvm)
{
	for (int nent = 64; nent <= 1024; nent *= 2) {
		struct kvm_cpuid2 *c =
		    calloc(1, sizeof(*c) + (size_t)nent * sizeof(struct kvm_cpuid_entry2));
		if (!c) {
			kite_error("out of memory");
			return NULL;
		}
		c->nent = (uint32_t)nent;
		if (ioctl(kvm->fd, KVM_GET_SUPPORTED_CPUID, c) == 0) {
			struct kvm_cpuid_entry2 *e = find_entry(c, 1, 0);
			if (e) {
				e->ecx |= CPUID_1_ECX_HYPERVISOR;
				if (ioctl(kvm->fd, KVM_CHECK_EXTENSION,
					  KVM_CAP_TSC_DEADLINE_TIMER) > 0)
					e->ecx |= CPUID_1_ECX_TSC_DEADLINE;
			}
			return c;
		}
		int err = errno;
		free(c);
		if (err != E2BIG) {
			kite_error_errno(err, "KVM_GET_SUPPORTED_CPUID");
			return NULL;
		}
	}
	kite_error("KVM_GET_SUPPORTED_CPUID: too many entries");
	return NULL;
}

static struct kvm_cpuid2 *cpuid_copy(const struct kvm_cpuid2 *c)
{
	size_t size = sizeof(*c) + c->nent * sizeof(struct kvm_cpuid_entry2);
	struct kvm_cpuid2 *d = malloc(size);
	if (!d) {
		kite_error("out of memory");
		return NULL;
	}
	memcpy(d, c, size);
	return d;
}

/* Features a KVM-PVM host's instruction emulator cannot run, hidden whatever the model. */
static void hide_for_pvm(struct kvm_cpuid2 *c)
{
	struct kvm_cpuid_entry2 *e = find_entry(c, 1, 0);
	if (e)
		e->ecx &= ~(CPUID_1_ECX_CX16 | CPUID_1_ECX_POPCNT | CPUID_1_ECX_XSAVE |
			    CPUID_1_ECX_OSXSAVE);
	e = find_entry(c, 7, 0);
	if (e)
		e->ebx &= ~(CPUID_7_EBX_SMEP | CPUID_7_EBX_SMAP);
}

int cpuid_shape(struct kvm_cpuid2 *c, const struct kvm_cpuid2 *supported,
		const struct cpu_config *cpu, bool pvm)
{
	if (cpu->model == CPU_MODEL_BASE)
		mask_to_base(c);
	if (apply_changes(c, supported, cpu) < 0)
		return -1;
	if (pvm)
		hide_for_pvm(c);
	fix_xsave_leaf(c);
	for (uint32_t i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];
		if (e->function == KVM_SIGNATURE_LEAF) {
			memcpy(&e->ebx, "KVMK", 4);
			memcpy(&e->ecx, "VMKV", 4);
			memcpy(&e->edx, "M\0\0\0", 4);
		}
	}
	return 0;
}

struct kvm_cpuid2 *cpuid_build(struct kvm_host *kvm, const struct cpu_config *cpu)
{
	struct kvm_cpuid2 *supported = supported_cpuid(kvm);
	if (!supported)
		return NULL;
	struct kvm_cpuid2 *c = cpuid_copy(supported);
	if (c && cpuid_shape(c, supported, cpu, kvm->pvm) < 0) {
		free(c);
		c = NULL;
	}
	free(supported);
	return c;
}

int cpuid_apply(struct vcpu *v, const struct kvm_cpuid2 *base)
{
	size_t size = sizeof(*base) + base->nent * sizeof(struct kvm_cpuid_entry2);
	struct kvm_cpuid2 *c = malloc(size);
	if (!c)
		return kite_error("out of memory");
	memcpy(c, base, size);
	uint32_t apic_id = (uint32_t)v->id;
	for (uint32_t i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];
		switch (e->function) {
		case 1:
			/* Initial APIC id and the logical processor count. */
			e->ebx = (e->ebx & 0x0000ffffU) | (apic_id << 24) |
				 ((uint32_t)v->vm->ncpus << 16);
			break;
		case 0xb:
		case 0x1f:
			e->edx = apic_id; /* x2APIC id */
			break;
		}
	}
	int r = ioctl(v->fd, KVM_SET_CPUID2, c);
	int err = errno;
	free(c);
	if (r < 0)
		return kite_error_errno(err, "vCPU %d: KVM_SET_CPUID2", v->id);
	return 0;
}
