/* vCPU threads: one per vCPU, each running KVM_RUN and dispatching its exits. */
#include "machine/vm.h"
#include "util/err.h"
#include "kvm/pvm.h"
#include "kvm/pvm_emulate.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define VCPU_KICK_SIGNAL SIGUSR1

#define MSR_IA32_MISC_ENABLE	0x000001a0
#define MISC_ENABLE_FAST_STRING 1

#define APIC_LVT0	 0x350
#define APIC_LVT1	 0x360
#define APIC_MODE_NMI	 0x4
#define APIC_MODE_EXTINT 0x7

static const char *const exit_names[] = {
    [KVM_EXIT_UNKNOWN] = "UNKNOWN",
    [KVM_EXIT_EXCEPTION] = "EXCEPTION",
    [KVM_EXIT_IO] = "IO",
    [KVM_EXIT_HYPERCALL] = "HYPERCALL",
    [KVM_EXIT_DEBUG] = "DEBUG",
    [KVM_EXIT_HLT] = "HLT",
    [KVM_EXIT_MMIO] = "MMIO",
    [KVM_EXIT_IRQ_WINDOW_OPEN] = "IRQ_WINDOW_OPEN",
    [KVM_EXIT_SHUTDOWN] = "SHUTDOWN",
    [KVM_EXIT_FAIL_ENTRY] = "FAIL_ENTRY",
    [KVM_EXIT_INTR] = "INTR",
    [KVM_EXIT_SET_TPR] = "SET_TPR",
    [KVM_EXIT_TPR_ACCESS] = "TPR_ACCESS",
    [KVM_EXIT_NMI] = "NMI",
    [KVM_EXIT_INTERNAL_ERROR] = "INTERNAL_ERROR",
    [KVM_EXIT_SYSTEM_EVENT] = "SYSTEM_EVENT",
    [KVM_EXIT_IOAPIC_EOI] = "IOAPIC_EOI",
    [KVM_EXIT_X86_RDMSR] = "X86_RDMSR",
    [KVM_EXIT_X86_WRMSR] = "X86_WRMSR",
};

const char *kvm_exit_name(unsigned reason)
{
	if (reason < sizeof(exit_names) / sizeof(exit_names[0]) && exit_names[reason])
		return exit_names[reason];
	return "?";
}

static void kick_handler(int sig)
{
	(void)sig;
}

static int install_kick_handler(void)
{
	static bool installed;
	if (installed)
		return 0;
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = kick_handler; /* no SA_RESTART: KVM_RUN must return EINTR */
	sigemptyset(&sa.sa_mask);
	if (sigaction(VCPU_KICK_SIGNAL, &sa, NULL) < 0)
		return kite_error_errno(errno, "sigaction");
	installed = true;
	return 0;
}

static int set_boot_state(struct vcpu *v, const struct boot_cpu_state *b)
{
	struct kvm_sregs sregs;
	if (ioctl(v->fd, KVM_GET_SREGS, &sregs) < 0)
		return kite_error_errno(errno, "vCPU %d: KVM_GET_SREGS", v->id);
	sregs.cr0 = b->cr0;
	sregs.cr3 = b->cr3;
	sregs.cr4 = b->cr4;
	sregs.efer = b->efer;
	sregs.gdt.base = b->gdt_base;
	sregs.gdt.limit = b->gdt_limit;
	sregs.idt.base = 0;
	sregs.idt.limit = 0;
	sregs.cs = b->cs;
	sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = b->ds;
	sregs.tr = b->tr;
	if (ioctl(v->fd, KVM_SET_SREGS, &sregs) < 0)
		return kite_error_errno(errno, "vCPU %d: KVM_SET_SREGS", v->id);

	struct kvm_regs regs;
	memset(&regs, 0, sizeof(regs));
	regs.rip = b->rip;
	regs.rsp = b->rsp;
	regs.rsi = b->rsi;
	regs.rbx = b->rbx;
	regs.rax = b->rax;
	regs.rflags = b->rflags ? b->rflags : 0x2;
	if (ioctl(v->fd, KVM_SET_REGS, &regs) < 0)
		return kite_error_errno(errno, "vCPU %d: KVM_SET_REGS", v->id);
	return 0;
}

/* State every vCPU starts with, BSP or not: FPU defaults, fast strings, LAPIC virtual wire. */
static int set_common_state(struct vcpu *v)
{
	struct kvm_fpu fpu;
	memset(&fpu, 0, sizeof(fpu));
	fpu.fcw = 0x37f;
	fpu.mxcsr = 0x1f80;
	if (ioctl(v->fd, KVM_SET_FPU, &fpu) < 0)
		return kite_error_errno(errno, "vCPU %d: KVM_SET_FPU", v->id);

	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e[1];
	} msrs;
	memset(&msrs, 0, sizeof(msrs));
	msrs.hdr.nmsrs = 1;
	msrs.e[0].index = MSR_IA32_MISC_ENABLE;
	msrs.e[0].data = MISC_ENABLE_FAST_STRING;
	if (ioctl(v->fd, KVM_SET_MSRS, &msrs) < 0)
		kite_warn("vCPU %d: cannot set IA32_MISC_ENABLE: %s", v->id, strerror(errno));

	struct kvm_lapic_state lapic;
	if (ioctl(v->fd, KVM_GET_LAPIC, &lapic) < 0)
		return kite_error_errno(errno, "vCPU %d: KVM_GET_LAPIC", v->id);
	uint32_t lvt0, lvt1;
	memcpy(&lvt0, &lapic.regs[APIC_LVT0], 4);
	memcpy(&lvt1, &lapic.regs[APIC_LVT1], 4);
	/* Delivery mode bits 8-10: LINT0 carries the 8259's ExtINT, LINT1 the NMI. */
	lvt0 = (lvt0 & ~0x700U) | (APIC_MODE_EXTINT << 8);
	lvt1 = (lvt1 & ~0x700U) | (APIC_MODE_NMI << 8);
	memcpy(&lapic.regs[APIC_LVT0], &lvt0, 4);
	memcpy(&lapic.regs[APIC_LVT1], &lvt1, 4);
	if (ioctl(v->fd, KVM_SET_LAPIC, &lapic) < 0)
		return kite_error_errno(errno, "vCPU %d: KVM_SET_LAPIC", v->id);
	return 0;
}

int vcpu_create(struct vm *vm, struct vcpu *v, int id)
{
	memset(v, 0, sizeof(*v));
	v->vm = vm;
	v->id = id;
	v->fd = ioctl(vm->fd, KVM_CREATE_VCPU, id);
	if (v->fd < 0)
		return kite_error_errno(errno, "KVM_CREATE_VCPU %d", id);
	v->run = mmap(NULL, (size_t)vm->kvm->vcpu_mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		      v->fd, 0);
	if (v->run == MAP_FAILED) {
		v->run = NULL;
		return kite_error_errno(errno, "vCPU %d: mmap of kvm_run", id);
	}
	if (cpuid_apply(v, vm->cpuid) < 0)
		return -1;
	if (vm->restore) /* its state comes from the save file (vm_load_state) */
		return 0;
	if (set_common_state(v) < 0)
		return -1;
	/* vCPU 0 boots; the others wait for INIT/SIPI in the in-kernel LAPIC. */
	if (id == 0 && set_boot_state(v, &vm->boot.cpu) < 0)
		return -1;
	return 0;
}

static int inject_exception(struct vcpu *v, unsigned vector, bool has_error, uint32_t error)
{
	struct kvm_vcpu_events ev;
	if (ioctl(v->fd, KVM_GET_VCPU_EVENTS, &ev) < 0)
		return -1;
	ev.exception.injected = 1;
	ev.exception.nr = (uint8_t)vector;
	ev.exception.has_error_code = has_error;
	ev.exception.error_code = error;
	ev.flags = 0;
	return ioctl(v->fd, KVM_SET_VCPU_EVENTS, &ev);
}

/* Carries out the instruction with pvm_emulate on the vCPU's state. Returns true when the
 * vCPU can go on (done, or an exception injected); false with the reason printed. */
static bool pvm_emulate_insn(struct vcpu *v, const uint8_t *insn, unsigned n)
{
	if (!v->pvm_emu && !(v->pvm_emu = pvm_emu_new()))
		return false;
	struct pvm_cpu cpu;
	if (ioctl(v->fd, KVM_GET_REGS, &cpu.regs) < 0 ||
	    ioctl(v->fd, KVM_GET_SREGS, &cpu.sregs) < 0 ||
	    ioctl(v->fd, KVM_GET_FPU, &cpu.fpu) < 0) {
		kite_error_errno(errno, "vCPU %d: PVM fallback: reading the vCPU state", v->id);
		return false;
	}
	struct pvm_emu_outcome out;
	if (pvm_emulate(v->pvm_emu, &v->vm->mem, &cpu, insn, n, v->vm->ncpus > 1, &out) < 0)
		return false;
	char name[sizeof(out.name) + 8];
	switch (out.result) {
	case PVM_EMU_DONE:
		if (ioctl(v->fd, KVM_SET_REGS, &cpu.regs) < 0 ||
		    (out.fpu_changed && ioctl(v->fd, KVM_SET_FPU, &cpu.fpu) < 0)) {
			kite_error_errno(errno, "vCPU %d: PVM fallback: writing the vCPU state",
					 v->id);
			return false;
		}
		pvm_stats_count(&v->pvm_fallbacks, out.name);
		return true;
	case PVM_EMU_EXCEPTION:
		if (out.exc.vector == 14) { /* #PF: CR2 holds the faulting address */
			cpu.sregs.cr2 = out.exc.cr2;
			if (ioctl(v->fd, KVM_SET_SREGS, &cpu.sregs) < 0)
				return false;
		}
		if (inject_exception(v, out.exc.vector, out.exc.has_error, out.exc.error) < 0) {
			kite_error_errno(errno, "vCPU %d: PVM fallback: injecting vector %u", v->id,
					 out.exc.vector);
			return false;
		}
		snprintf(name, sizeof(name), "%s #%u", out.name, out.exc.vector);
		pvm_stats_count(&v->pvm_fallbacks, name);
		return true;
	case PVM_EMU_REFUSED:
	default:
		kite_error("vCPU %d: PVM fallback: %s at rip 0x%llx not carried out: %s", v->id,
			   out.name, (unsigned long long)cpu.regs.rip, out.why);
		return false;
	}
}

/* On a PVM host, carries out the fallback for an instruction the host cannot emulate.
 * Returns true when the vCPU can go on. */
static bool pvm_fallback(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	if (!v->vm->kvm->pvm || run->internal.suberror != KVM_INTERNAL_ERROR_EMULATION ||
	    run->internal.ndata < 2)
		return false;
	const uint8_t *p = (const uint8_t *)&run->internal.data[1];
	unsigned n = p[0] > 15 ? 15 : p[0], len = 0;
	enum pvm_fallback action = pvm_fallback_decide(p + 1, n, &len);
	if (action == PVM_FALLBACK_NONE)
		return false;
	if (action == PVM_FALLBACK_EMULATE)
		return pvm_emulate_insn(v, p + 1, n);
	struct kvm_regs regs;
	if (ioctl(v->fd, KVM_GET_REGS, &regs) < 0)
		return false;
	regs.rip += len;
	if (ioctl(v->fd, KVM_SET_REGS, &regs) < 0)
		return false;
	/* #BP is a trap: RIP already points past the int3. */
	if (action == PVM_FALLBACK_INJECT_BP && inject_exception(v, 3, false, 0) < 0)
		return false;
	pvm_stats_count(&v->pvm_fallbacks, action == PVM_FALLBACK_INJECT_BP ? "int3" : "fwait");
	return true;
}

static void report_internal_error(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	char bytes[64] = "";
	struct kvm_regs regs;
	unsigned long long rip = 0;
	if (ioctl(v->fd, KVM_GET_REGS, &regs) == 0)
		rip = regs.rip;
	if (run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION && run->internal.ndata >= 2) {
		/* data[0] holds flags; then the fetched length and up to 15 instruction bytes. */
		const uint8_t *p = (const uint8_t *)&run->internal.data[1];
		unsigned n = p[0] > 15 ? 15 : p[0];
		size_t off = 0;
		for (unsigned i = 0; i < n && off + 4 < sizeof(bytes); i++)
			off += (size_t)snprintf(bytes + off, sizeof(bytes) - off, "%s%02x",
						i ? " " : "", p[1 + i]);
		kite_error("vCPU %d: KVM internal error %u (emulation failure) at rip 0x%llx, "
			   "instruction bytes: %s",
			   v->id, run->internal.suberror, rip, n ? bytes : "(none)");
		return;
	}
	kite_error("vCPU %d: KVM internal error %u at rip 0x%llx", v->id, run->internal.suberror,
		   rip);
}

static void handle_io(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	bool is_write = run->io.direction == KVM_EXIT_IO_OUT;
	for (uint32_t i = 0; i < run->io.count; i++) {
		iobus_access(&v->vm->bus, IOBUS_PIO, run->io.port, data, run->io.size, is_write);
		data += run->io.size;
	}
}

static void handle_mmio(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	unsigned len = run->mmio.len > 8 ? 8 : run->mmio.len;
	iobus_access(&v->vm->bus, IOBUS_MMIO, run->mmio.phys_addr, run->mmio.data, len,
		     run->mmio.is_write);
}

/* Handles one exit; returns the reason this boot ends, or VM_RUNNING to go on. */
static enum vm_exit handle_exit(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		handle_io(v);
		return VM_RUNNING;
	case KVM_EXIT_MMIO:
		handle_mmio(v);
		return VM_RUNNING;
	case KVM_EXIT_INTR:
		return VM_RUNNING;
	case KVM_EXIT_HLT:
		/* With the in-kernel LAPIC a halt only exits when nothing can wake it. */
		kite_error("vCPU %d: halted with interrupts disabled", v->id);
		return VM_CRASH;
	case KVM_EXIT_SHUTDOWN: {
		struct kvm_regs regs;
		unsigned long long rip = 0;
		if (ioctl(v->fd, KVM_GET_REGS, &regs) == 0)
			rip = regs.rip;
		kite_error("vCPU %d: triple fault (KVM exit SHUTDOWN) at rip 0x%llx", v->id, rip);
		return VM_CRASH;
	}
	case KVM_EXIT_SYSTEM_EVENT:
		switch (run->system_event.type) {
		case KVM_SYSTEM_EVENT_SHUTDOWN:
			return VM_POWEROFF;
		case KVM_SYSTEM_EVENT_RESET:
			return VM_RESET;
		default:
			kite_error("vCPU %d: guest crash (system event %u)", v->id,
				   run->system_event.type);
			return VM_CRASH;
		}
	case KVM_EXIT_INTERNAL_ERROR:
		if (pvm_fallback(v))
			return VM_RUNNING;
		report_internal_error(v);
		return VM_CRASH;
	case KVM_EXIT_FAIL_ENTRY:
		kite_error("vCPU %d: KVM entry failed (hardware reason 0x%llx)", v->id,
			   (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		return VM_CRASH;
	default:
		kite_error("vCPU %d: unexpected KVM exit %u (%s)", v->id, run->exit_reason,
			   kvm_exit_name(run->exit_reason));
		return VM_CRASH;
	}
}

static void *vcpu_main(void *arg)
{
	struct vcpu *v = arg;
	while (!vm_vcpu_checkpoint(v->vm, v)) {
		if (ioctl(v->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				v->run->immediate_exit = 0;
				if (v->exits[KVM_EXIT_INTR] < UINT64_MAX)
					v->exits[KVM_EXIT_INTR]++;
				continue;
			}
			kite_error_errno(errno, "vCPU %d: KVM_RUN", v->id);
			vm_request_exit(v->vm, VM_ERROR);
			break;
		}
		if (v->run->exit_reason < VCPU_EXIT_COUNTERS)
			v->exits[v->run->exit_reason]++;
		v->io_pending =
		    v->run->exit_reason == KVM_EXIT_IO || v->run->exit_reason == KVM_EXIT_MMIO;
		enum vm_exit why = handle_exit(v);
		if (why != VM_RUNNING) {
			vm_request_exit(v->vm, why);
			break;
		}
	}
	return NULL;
}

void vcpu_complete_io(struct vcpu *v)
{
	v->io_pending = false;
	if (!v->vm->kvm->immediate_exit)
		return; /* KVM before 4.11: the state is read as it is */
	v->run->immediate_exit = 1;
	/* KVM completes the I/O, then returns EINTR without entering the guest. */
	if (ioctl(v->fd, KVM_RUN, 0) == 0 || (errno != EINTR && errno != EAGAIN))
		kite_warn("vCPU %d: completing its I/O before parking: %s", v->id, strerror(errno));
	v->run->immediate_exit = 0;
}

int vcpu_start(struct vcpu *v)
{
	if (install_kick_handler() < 0)
		return -1;
	int err = pthread_create(&v->thread, NULL, vcpu_main, v);
	if (err)
		return kite_error_errno(err, "cannot start the thread of vCPU %d", v->id);
	v->started = true;
	return 0;
}

void vcpu_kick(struct vcpu *v)
{
	if (!v->started)
		return;
	if (v->run)
		v->run->immediate_exit = 1;
	pthread_kill(v->thread, VCPU_KICK_SIGNAL);
}

void vcpu_destroy(struct vcpu *v)
{
	if (v->started) {
		pthread_join(v->thread, NULL);
		v->started = false;
	}
	pvm_emu_free(v->pvm_emu);
	v->pvm_emu = NULL;
	if (v->run)
		munmap(v->run, (size_t)v->vm->kvm->vcpu_mmap_size);
	if (v->fd >= 0)
		close(v->fd);
	v->run = NULL;
	v->fd = -1;
}
