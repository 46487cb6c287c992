#include "kvm/kvm.h"
#include "util/err.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static const struct {
	int cap;
	const char *name;
} required_caps[] = {
    {KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP"},
    {KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"},
    {KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR"},
    {KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID"},
    {KVM_CAP_PIT2, "KVM_CAP_PIT2"},
    {KVM_CAP_IRQ_ROUTING, "KVM_CAP_IRQ_ROUTING"},
    {KVM_CAP_IRQFD, "KVM_CAP_IRQFD"},
    {KVM_CAP_IOEVENTFD, "KVM_CAP_IOEVENTFD"},
};

/* Whether the CPU offers hardware virtualization (a vmx or svm flag in /proc/cpuinfo). */
static bool cpu_has_vmx_or_svm(void)
{
	FILE *f = fopen("/proc/cpuinfo", "r");
	if (!f)
		return false;
	char line[4096];
	bool found = false;
	while (!found && fgets(line, sizeof(line), f)) {
		if (strncmp(line, "flags", 5))
			continue;
		found = strstr(line, " vmx") || strstr(line, " svm");
		break; /* every CPU lists the same flags */
	}
	fclose(f);
	return found;
}

/* KVM-PVM: its module is loaded and the CPU has no VMX/SVM, so /dev/kvm (if any) is PVM's. A
 * hardware host that merely has the module loaded stays a hardware host. */
void kvm_host_probe(struct kvm_host_facts *facts)
{
	*facts = (struct kvm_host_facts){
	    .pvm = access("/sys/module/kvm_pvm", F_OK) == 0 && !cpu_has_vmx_or_svm(),
	};
}

int kvm_host_open(struct kvm_host *k, const struct kvm_host_facts *facts)
{
	k->fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (k->fd < 0)
		return kite_error_errno(errno, "cannot open /dev/kvm");
	int version = ioctl(k->fd, KVM_GET_API_VERSION, 0);
	if (version != KVM_API_VERSION) {
		kite_error("/dev/kvm: API version %d, kite needs %d", version, KVM_API_VERSION);
		goto err;
	}
	for (size_t i = 0; i < sizeof(required_caps) / sizeof(required_caps[0]); i++) {
		if (ioctl(k->fd, KVM_CHECK_EXTENSION, required_caps[i].cap) <= 0) {
			kite_error("/dev/kvm lacks %s, which kite needs", required_caps[i].name);
			goto err;
		}
	}
	k->max_vcpus = ioctl(k->fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
	if (k->max_vcpus <= 0)
		k->max_vcpus = ioctl(k->fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
	if (k->max_vcpus <= 0)
		k->max_vcpus = 4;
	k->immediate_exit = ioctl(k->fd, KVM_CHECK_EXTENSION, KVM_CAP_IMMEDIATE_EXIT) > 0;
	k->vcpu_mmap_size = ioctl(k->fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (k->vcpu_mmap_size <= 0) {
		kite_error_errno(errno, "KVM_GET_VCPU_MMAP_SIZE");
		goto err;
	}
	k->pvm = facts->pvm;
	return 0;
err:
	close(k->fd);
	k->fd = -1;
	return -1;
}

void kvm_host_close(struct kvm_host *k)
{
	if (k->fd >= 0)
		close(k->fd);
	k->fd = -1;
}
