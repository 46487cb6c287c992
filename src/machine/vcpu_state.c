/* A vCPU's complete state as KVM holds it, one "vcpu" record (util/state.h): general and
 * segment registers, FPU/SSE/AVX (XSAVE, or the legacy FPU image where KVM has no XSAVE),
 * XCR0, every MSR KVM lists for saving (TSC, kvmclock, APIC base, EFER, STAR/LSTAR,
 * TSC deadline...), the local APIC, pending events, the multiprocessing state and the debug
 * registers. The kernel's own structures are stored as bytes under their names: their
 * layouts are KVM's ABI, and a load checks each size.
 *
 * Saving needs the vCPU parked (vm_pause): a vCPU that stopped on a port or MMIO read has
 * completed it first (vm_vcpu_checkpoint). Loading goes into a fresh vCPU before its thread
 * runs, in the order QEMU and Firecracker use: special registers (APIC base, so the x2APIC
 * mode is known) before the LAPIC, the LAPIC before the MSRs (the TSC-deadline MSR only
 * takes in TSC-deadline mode, and after the TSC), events last. */
#include "util/err.h"
#include "util/state.h"
#include "machine/vm.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#define MSR_IA32_TSC	      0x10
#define MSR_IA32_TSC_DEADLINE 0x6e0
#define STATE_VERSION	      1

struct msr {
	uint32_t index, pad;
	uint64_t data;
};

/* The MSRs KVM saves (KVM_GET_MSR_INDEX_LIST), the TSC first and the TSC deadline last. */
static int msr_indices(struct vcpu *v, uint32_t **out, unsigned *n)
{
	struct kvm_msr_list probe = {.nmsrs = 0};
	if (ioctl(v->vm->kvm->fd, KVM_GET_MSR_INDEX_LIST, &probe) < 0 && errno != E2BIG)
		return kite_error_errno(errno, "KVM_GET_MSR_INDEX_LIST");
	struct kvm_msr_list *l = calloc(1, sizeof(*l) + probe.nmsrs * sizeof(uint32_t));
	if (!l)
		return kite_error("out of memory");
	l->nmsrs = probe.nmsrs;
	if (ioctl(v->vm->kvm->fd, KVM_GET_MSR_INDEX_LIST, l) < 0) {
		free(l);
		return kite_error_errno(errno, "KVM_GET_MSR_INDEX_LIST");
	}
	uint32_t *idx = malloc((l->nmsrs + 1) * sizeof(*idx));
	if (!idx) {
		free(l);
		return kite_error("out of memory");
	}
	unsigned k = 0;
	bool deadline = false;
	idx[k++] = MSR_IA32_TSC;
	for (unsigned i = 0; i < l->nmsrs; i++) {
		if (l->indices[i] == MSR_IA32_TSC)
			continue;
		if (l->indices[i] == MSR_IA32_TSC_DEADLINE)
			deadline = true;
		else
			idx[k++] = l->indices[i];
	}
	if (deadline)
		idx[k++] = MSR_IA32_TSC_DEADLINE;
	free(l);
	*out = idx;
	*n = k;
	return 0;
}

/* Reads each listed MSR; those this vCPU does not have (KVM refuses them, e.g. a feature
 * hidden from its CPUID) are left out. */
static int read_msrs(struct vcpu *v, struct msr **out, unsigned *count)
{
	uint32_t *idx = NULL;
	unsigned n = 0;
	if (msr_indices(v, &idx, &n) < 0)
		return -1;
	struct msr *m = calloc(n ? n : 1, sizeof(*m));
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e[1];
	} one;
	if (!m) {
		free(idx);
		return kite_error("out of memory");
	}
	unsigned k = 0;
	for (unsigned i = 0; i < n; i++) {
		memset(&one, 0, sizeof(one));
		one.hdr.nmsrs = 1;
		one.e[0].index = idx[i];
		if (ioctl(v->fd, KVM_GET_MSRS, &one) == 1)
			m[k++] = (struct msr){.index = idx[i], .data = one.e[0].data};
	}
	free(idx);
	*out = m;
	*count = k;
	return 0;
}

static int xsave_size(struct vcpu *v)
{
	int size = ioctl(v->vm->fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
	if (size > (int)sizeof(struct kvm_xsave))
		return size;
	return ioctl(v->vm->fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE) > 0
		   ? (int)sizeof(struct kvm_xsave)
		   : 0;
}

/* The FPU/SSE/AVX state: XSAVE where KVM has it, else the legacy FPU image. */
static int save_fpu(struct vcpu *v, struct state_writer *w)
{
	int size = xsave_size(v);
	if (size > 0) {
		struct kvm_xsave *x = calloc(1, (size_t)size);
		if (!x)
			return kite_error("out of memory");
		unsigned long op = size > (int)sizeof(*x) ? KVM_GET_XSAVE2 : KVM_GET_XSAVE;
		if (ioctl(v->fd, op, x) < 0) {
			free(x);
			return kite_error_errno(errno, "vCPU %d: KVM_GET_XSAVE", v->id);
		}
		state_put_bytes(w, "xsave", x, (size_t)size);
		free(x);
	} else {
		struct kvm_fpu fpu;
		if (ioctl(v->fd, KVM_GET_FPU, &fpu) < 0)
			return kite_error_errno(errno, "vCPU %d: KVM_GET_FPU", v->id);
		state_put_bytes(w, "fpu", &fpu, sizeof(fpu));
	}
	if (ioctl(v->vm->fd, KVM_CHECK_EXTENSION, KVM_CAP_XCRS) > 0) {
		struct kvm_xcrs xcrs;
		if (ioctl(v->fd, KVM_GET_XCRS, &xcrs) < 0)
			return kite_error_errno(errno, "vCPU %d: KVM_GET_XCRS", v->id);
		state_put_bytes(w, "xcrs", &xcrs, sizeof(xcrs));
	}
	return 0;
}

/* The fixed-size KVM structures, each under its name. */
struct kvm_part {
	const char *name;
	unsigned long get, set;
	size_t size;
	const char *what;
};

static const struct kvm_part parts[] = {
    {"regs", KVM_GET_REGS, KVM_SET_REGS, sizeof(struct kvm_regs), "KVM_GET_REGS"},
    {"sregs", KVM_GET_SREGS, KVM_SET_SREGS, sizeof(struct kvm_sregs), "KVM_GET_SREGS"},
    {"lapic", KVM_GET_LAPIC, KVM_SET_LAPIC, sizeof(struct kvm_lapic_state), "KVM_GET_LAPIC"},
    {"mp_state", KVM_GET_MP_STATE, KVM_SET_MP_STATE, sizeof(struct kvm_mp_state),
     "KVM_GET_MP_STATE"},
    {"events", KVM_GET_VCPU_EVENTS, KVM_SET_VCPU_EVENTS, sizeof(struct kvm_vcpu_events),
     "KVM_GET_VCPU_EVENTS"},
    {"debugregs", KVM_GET_DEBUGREGS, KVM_SET_DEBUGREGS, sizeof(struct kvm_debugregs),
     "KVM_GET_DEBUGREGS"},
};

static const struct kvm_part *part(const char *name)
{
	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
		if (!strcmp(parts[i].name, name))
			return &parts[i];
	return NULL;
}

int vcpu_save(struct vcpu *v, struct state_buf *out)
{
	struct state_writer w;
	uint8_t buf[sizeof(struct kvm_lapic_state) + sizeof(struct kvm_sregs)];
	state_begin(&w, out, "vcpu", STATE_VERSION);
	state_put_u32(&w, "id", (uint32_t)v->id);
	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
		if (ioctl(v->fd, parts[i].get, buf) < 0)
			return kite_error_errno(errno, "vCPU %d: %s", v->id, parts[i].what);
		state_put_bytes(&w, parts[i].name, buf, parts[i].size);
	}
	if (save_fpu(v, &w) < 0)
		return -1;
	struct msr *m = NULL;
	unsigned n = 0;
	if (read_msrs(v, &m, &n) < 0)
		return -1;
	state_put_bytes(&w, "msrs", m, n * sizeof(*m));
	free(m);
	state_end(&w);
	return state_buf_check(out);
}

static int set_part(struct vcpu *v, const struct state_reader *r, const char *name)
{
	const struct kvm_part *p = part(name);
	uint8_t buf[sizeof(struct kvm_lapic_state) + sizeof(struct kvm_sregs)];
	if (state_get_bytes(r, name, buf, p->size) < 0)
		return -1;
	if (!strcmp(name, "events")) {
		struct kvm_vcpu_events *ev = (struct kvm_vcpu_events *)buf;
		/* What a saved KVM said is valid, and nothing KVM would take as a request. */
		ev->flags &= KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SHADOW |
			     KVM_VCPUEVENT_VALID_SMM;
	}
	if (ioctl(v->fd, p->set, buf) < 0)
		return kite_error_errno(errno, "vCPU %d: loading its %s", v->id, name);
	return 0;
}

static int load_fpu(struct vcpu *v, const struct state_reader *r)
{
	if (state_has(r, "xsave")) {
		const uint8_t *p;
		size_t len;
		if (state_get_blob(r, "xsave", &p, &len) < 0)
			return -1;
		int size = xsave_size(v);
		if (size <= 0 || len < sizeof(struct kvm_xsave) || len > (size_t)size)
			return kite_error(
			    "vCPU %d: the saved XSAVE area (%zu bytes) does not fit this "
			    "host's (%d)",
			    v->id, len, size);
		struct kvm_xsave *x = calloc(1, (size_t)size);
		if (!x)
			return kite_error("out of memory");
		memcpy(x, p, len);
		int rc = ioctl(v->fd, KVM_SET_XSAVE, x);
		free(x);
		if (rc < 0)
			return kite_error_errno(errno, "vCPU %d: KVM_SET_XSAVE", v->id);
	} else {
		struct kvm_fpu fpu;
		if (state_get_bytes(r, "fpu", &fpu, sizeof(fpu)) < 0)
			return -1;
		if (ioctl(v->fd, KVM_SET_FPU, &fpu) < 0)
			return kite_error_errno(errno, "vCPU %d: KVM_SET_FPU", v->id);
	}
	if (state_has(r, "xcrs")) {
		struct kvm_xcrs xcrs;
		if (state_get_bytes(r, "xcrs", &xcrs, sizeof(xcrs)) < 0)
			return -1;
		if (xcrs.nr_xcrs > KVM_MAX_XCRS)
			return kite_error("vCPU %d: %u XCRs saved", v->id, xcrs.nr_xcrs);
		if (ioctl(v->fd, KVM_SET_XCRS, &xcrs) < 0)
			return kite_error_errno(errno, "vCPU %d: KVM_SET_XCRS", v->id);
	}
	return 0;
}

/* The saved MSRs, in their order. One KVM does not take here (a feature this host lacks) is
 * skipped: the guest reads it as this host sets it. */
static int load_msrs(struct vcpu *v, const struct state_reader *r)
{
	const uint8_t *p;
	size_t len;
	if (state_get_blob(r, "msrs", &p, &len) < 0)
		return -1;
	if (len % sizeof(struct msr))
		return kite_error("vCPU %d: the MSR list has %zu bytes", v->id, len);
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e[1];
	} one;
	for (size_t off = 0; off < len; off += sizeof(struct msr)) {
		struct msr m;
		memcpy(&m, p + off, sizeof(m));
		memset(&one, 0, sizeof(one));
		one.hdr.nmsrs = 1;
		one.e[0].index = m.index;
		one.e[0].data = m.data;
		if (ioctl(v->fd, KVM_SET_MSRS, &one) < 0)
			return kite_error_errno(errno, "vCPU %d: KVM_SET_MSRS 0x%x", v->id,
						m.index);
	}
	return 0;
}

int vcpu_load(struct vcpu *v, const struct state_reader *r)
{
	uint32_t id;
	if (state_get_u32(r, "id", &id) < 0)
		return -1;
	if (id != (uint32_t)v->id)
		return kite_error("device state: vCPU %u saved where vCPU %d loads", id, v->id);
	if (set_part(v, r, "sregs") < 0 || set_part(v, r, "regs") < 0 || load_fpu(v, r) < 0 ||
	    set_part(v, r, "lapic") < 0 || load_msrs(v, r) < 0 || set_part(v, r, "mp_state") < 0 ||
	    set_part(v, r, "debugregs") < 0 || set_part(v, r, "events") < 0)
		return -1;
	return 0;
}
