/* The host's KVM: /dev/kvm, its capabilities, and whether it is KVM-PVM. */
#ifndef KITE_KVM_KVM_H
#define KITE_KVM_KVM_H

#include <stdbool.h>

/* What kite must know about the host before it opens /dev/kvm. Probed once per `kite run`
 * (kvm_host_probe) and handed to everything that depends on it, so that a test can hand in
 * any kind of host. */
struct kvm_host_facts {
	bool pvm; /* KVM-PVM (/sys/module/kvm_pvm): guest CPL0 code is emulated, no VMX/SVM */
};

struct kvm_host {
	int fd;
	int max_vcpus;
	int vcpu_mmap_size;
	bool pvm; /* KVM-PVM: guest CPL0 code is emulated, no VMX/SVM */
	bool immediate_exit;
};

/* Looks at this host (without opening /dev/kvm). */
void kvm_host_probe(struct kvm_host_facts *facts);

/* Opens /dev/kvm and checks the API version and every capability kite needs, naming a
 * missing one; `facts` from kvm_host_probe. Returns 0 or -1 with an error printed. */
int kvm_host_open(struct kvm_host *k, const struct kvm_host_facts *facts);
void kvm_host_close(struct kvm_host *k);

#endif
