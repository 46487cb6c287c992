/* The host's KVM: /dev/kvm, its capabilities, and whether it is KVM-PVM. */
#ifndef KITE_VMM_KVM_H
#define KITE_VMM_KVM_H

#include <stdbool.h>

struct kvm_host {
	int fd;
	int max_vcpus;
	int vcpu_mmap_size;
	bool pvm; /* KVM-PVM: guest CPL0 code is emulated, no VMX/SVM */
	bool immediate_exit;
};

/* Opens /dev/kvm and checks the API version and every capability kite needs, naming a
 * missing one. Returns 0 or -1 with an error printed. */
int kvm_host_open(struct kvm_host *k);
void kvm_host_close(struct kvm_host *k);

/* True when the host runs KVM-PVM (/sys/module/kvm_pvm present). */
bool kvm_host_is_pvm(void);

#endif
