/* CPUID for the guest: what KVM supports, with the hypervisor leaves set, the APIC id per vCPU,
 * and on a KVM-PVM host the features its instruction emulator cannot run hidden (CX16: the
 * emulator fails on `lock cmpxchg16b`; see README "PVM hosts"). */
#include "machine/vm.h"
#include "util/err.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#define CPUID_1_ECX_CX16       (1U << 13)
#define CPUID_1_ECX_POPCNT     (1U << 23)
#define CPUID_1_ECX_XSAVE      (1U << 26)
#define CPUID_1_ECX_OSXSAVE    (1U << 27)
#define CPUID_1_ECX_HYPERVISOR (1U << 31)
#define CPUID_7_EBX_SMEP       (1U << 7)
#define CPUID_7_EBX_SMAP       (1U << 20)
#define KVM_SIGNATURE_LEAF     0x40000000U

struct kvm_cpuid2 *cpuid_build(struct kvm_host *kvm)
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
			for (uint32_t i = 0; i < c->nent; i++) {
				struct kvm_cpuid_entry2 *e = &c->entries[i];
				if (e->function == 1) {
					e->ecx |= CPUID_1_ECX_HYPERVISOR;
					if (kvm->pvm)
						e->ecx &=
						    ~(CPUID_1_ECX_CX16 | CPUID_1_ECX_POPCNT |
						      CPUID_1_ECX_XSAVE | CPUID_1_ECX_OSXSAVE);
				} else if (e->function == 7 && e->index == 0 && kvm->pvm) {
					e->ebx &= ~(CPUID_7_EBX_SMEP | CPUID_7_EBX_SMAP);
				} else if (e->function == KVM_SIGNATURE_LEAF) {
					memcpy(&e->ebx, "KVMK", 4);
					memcpy(&e->ecx, "VMKV", 4);
					memcpy(&e->edx, "M\0\0\0", 4);
				}
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
