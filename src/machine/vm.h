/* One boot of a virtual machine: the KVM VM, its memory, devices and vCPU threads. A guest
 * reboot destroys the vm and creates a fresh one (machine.c), so nothing here survives a
 * reset except the console. */
#ifndef KITE_MACHINE_VM_H
#define KITE_MACHINE_VM_H

#include "devices/acpi_pm.h"
#include "devices/console.h"
#include "devices/debug_exit.h"
#include "devices/fw_cfg.h"
#include "devices/i8042.h"
#include "devices/pc_testdev.h"
#include "devices/platform.h"
#include "devices/rtc.h"
#include "devices/serial.h"
#include "config/machine_config.h"
#include "virtio/virtio_devices.h"
#include "machine/boot.h"
#include "kvm/iobus.h"
#include "machine/ioevent.h"
#include "machine/irqfd.h"
#include "kvm/kvm.h"
#include "kvm/memory.h"
#include "util/state.h"
#include "kvm/pvm.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define VM_MAX_VCPUS MACHINE_MAX_VCPUS

enum vm_exit {
	VM_RUNNING = 0,
	VM_POWEROFF,   /* the guest powered off (ACPI S5) */
	VM_RESET,      /* the guest reset the machine */
	VM_QUIT,       /* the user quit (Ctrl-A x) or a signal asked kite to stop */
	VM_CRASH,      /* triple fault, KVM internal or emulation error */
	VM_GUEST_EXIT, /* the guest wrote an exit code to the test exit device (guest_exit_code) */
	VM_ERROR,      /* the VMM failed */
};

#define VCPU_EXIT_COUNTERS 64

struct vm_stats {
	uint64_t exits[VCPU_EXIT_COUNTERS];
	struct pvm_stats pvm_fallbacks;
	uint64_t ioeventfd_notifies;	 /* virtio kicks that did not exit to kite */
	uint64_t msix_irqfd, msix_ioctl; /* MSI-X messages by irqfd / by KVM_SIGNAL_MSI */
};

struct pvm_emu;

struct vcpu {
	struct vm *vm;
	int id;
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	bool started;
	uint64_t exits[VCPU_EXIT_COUNTERS]; /* by KVM exit reason, for --stats */
	struct pvm_stats pvm_fallbacks;	    /* emulation failures the VMM carried out */
	struct pvm_emu *pvm_emu;	    /* made at the first fallback that needs it */
	bool io_pending; /* stopped on port or MMIO I/O that the next KVM_RUN completes */
};

struct savefile;

struct vm {
	struct kvm_host *kvm;
	const struct machine_config *machine; /* what this boot is */
	struct savefile *restore;	      /* this boot resumes a save file (vm_config) */
	int fd;
	struct guest_mem mem;
	struct iobus bus;
	struct boot_info boot;
	bool pvm_cmdline; /* PVM_LINUX_CMDLINE went on the kernel command line */
	int ncpus;
	struct vcpu *vcpus;
	struct kvm_cpuid2 *cpuid;

	struct platform_ops platform;
	struct serial serial;
	struct i8042 i8042;
	struct rtc rtc;
	struct acpi_pm pm;
	struct debug_exit debug_exit;
	struct fw_cfg fw_cfg;
	bool fw_cfg_ready;
	bool exit_device; /* the machine has the test exit device, at exit_port */
	uint16_t exit_port;
	struct pc_testdev testdev;
	bool has_testdev; /* the machine has QEMU's pc-testdev (testdev is initialised) */
	struct virtio_devices virtio;
	bool virtio_ready;
	struct console *hvc_console; /* the console whose input goes to virtio-console */
	struct irqfds irqfds;	     /* GSI routes, MSI-X irqfds */
	bool irqfds_ready;
	struct ioevent ioevent; /* virtio notifications through ioeventfds */
	bool ioevent_ready;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	enum vm_exit exit;
	bool paused;		/* requested: vCPUs park before their next KVM_RUN */
	int nparked;		/* vCPUs parked */
	int nstarted;		/* vCPU threads running */
	struct vm_stats *stats; /* totals that vm_destroy adds this boot's counts to, or NULL */

	uint32_t guest_exit_code; /* VM_GUEST_EXIT: what the guest wrote (under lock) */
};

struct vm_config {
	const struct machine_config *machine; /* kernel, memory, vCPUs, devices */
	bool no_pvm_defaults;		      /* --no-pvm-defaults: never add PVM_LINUX_CMDLINE */
	/* The console is on a virtio-console port (machine console "virtio"), the UART on
	 * nowhere: this is where the port's bytes go. */
	struct console *virtio_console;
	/* Resume this save file (machine/savefile.h) instead of booting the kernel: its RAM is
	 * mapped, its state loaded before the vCPUs run. */
	struct savefile *restore;
};

/* Lays out memory and loads the kernel (no KVM needed: bad input is found before KVM is
 * touched). `host` (kvm_host_probe) decides the PVM defaults: a Linux kernel on a KVM-PVM host
 * gets PVM_LINUX_CMDLINE appended unless cfg->no_pvm_defaults. Returns 0 or -1 with an error
 * printed. */
int vm_prepare(struct vm *vm, const struct vm_config *cfg, const struct kvm_host_facts *host);
/* Creates the KVM VM, devices and vCPUs and starts the vCPU threads. */
int vm_start(struct vm *vm, struct kvm_host *kvm, struct console *console);
/* Blocks until something ends this boot; returns why. */
enum vm_exit vm_wait(struct vm *vm);
/* Stops the vCPU threads and frees everything. */
void vm_destroy(struct vm *vm);

/* Ends this boot (first reason wins). Callable from any thread. */
void vm_request_exit(struct vm *vm, enum vm_exit why);
/* Ends this boot with VM_GUEST_EXIT and `code` (unless it is already ending). */
void vm_request_guest_exit(struct vm *vm, uint32_t code);
/* Parks every vCPU (returns once all are parked) / lets them run again. */
void vm_pause(struct vm *vm);
void vm_resume(struct vm *vm);
bool vm_is_paused(struct vm *vm);
/* vCPU side: parks while paused (completing an I/O exit first, so that its state can be
 * read); returns true when the boot is ending. */
bool vm_vcpu_checkpoint(struct vm *vm, struct vcpu *v);

/* vm_state.c: the machine's state records (util/state.h): KVM's interrupt controllers and
 * PIT, every vCPU, the kvmclock, the MSI routes, the platform devices, the PCI bus and every
 * virtio device. Save with the vCPUs parked and the devices quiesced (vm_save does both);
 * load into a vm that vm_start is starting from a save file (vCPUs created, not running).
 * Return 0 or -1 (printed). */
int vm_save_state(struct vm *vm, struct state_buf *out);
int vm_load_state(struct vm *vm, struct state_stream *s);
/* Pauses the VM (if it runs), drains and quiesces the devices, and writes the definition,
 * every state record and the RAM to a save file at `path` (machine/savefile.h). The VM stays
 * paused after a success (its caller ends it); after a failure it runs again as before.
 * Returns 0 or -1 (printed). */
int vm_save(struct vm *vm, const char *path);

/* Raises or lowers an interrupt line of the in-kernel IOAPIC/PIC. */
void vm_set_irq(struct vm *vm, unsigned gsi, int level);

/* vcpu.c */
int vcpu_create(struct vm *vm, struct vcpu *v, int id);
/* Completes the I/O a parked vCPU stopped on (KVM_RUN with immediate_exit). */
void vcpu_complete_io(struct vcpu *v);
/* vcpu_state.c: the "vcpu" record. Parked vCPU / fresh vCPU not yet running. */
int vcpu_save(struct vcpu *v, struct state_buf *out);
int vcpu_load(struct vcpu *v, const struct state_reader *r);
int vcpu_start(struct vcpu *v);
void vcpu_kick(struct vcpu *v);
void vcpu_destroy(struct vcpu *v);
const char *kvm_exit_name(unsigned reason);

/* cpuid.c: the CPUID table every vCPU gets: the --cpu model (features this host cannot run
 * hidden); NULL after an error (a feature asked for that KVM cannot give, reported). */
struct kvm_cpuid2 *cpuid_build(struct kvm_host *kvm, const struct cpu_config *cpu);
/* The model applied to c, a copy of `supported` (what KVM gives): base masks, features added
 * (refused, reported, when `supported` lacks them) and removed, leaf 0xd following xsave/avx/
 * avx512f/pku, pvm's hidden features. Returns 0 or -1. */
int cpuid_shape(struct kvm_cpuid2 *c, const struct kvm_cpuid2 *supported,
		const struct cpu_config *cpu, bool pvm);
int cpuid_apply(struct vcpu *v, const struct kvm_cpuid2 *base);

#endif
