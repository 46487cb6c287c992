/* One boot of a VM: memory and kernel first (no KVM needed), then the KVM VM, the in-kernel
 * interrupt controllers and PIT, the platform devices and the vCPU threads. */
#include "machine/vm.h"
#include "util/err.h"
#include "machine/acpi.h"
#include "machine/boot_bytes.h"
#include "machine/boot_file.h"
#include "machine/e820.h"
#include "kvm/pvm.h"
#include "machine/savefile.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/sysinfo.h>
#include <unistd.h>

/* KVM needs three pages for the real-mode TSS and one for the identity map, out of RAM. */
#define KVM_IDENTITY_MAP_ADDR 0xfeffc000ULL
#define KVM_TSS_ADDR	      0xfeffd000ULL

#define VM_MIN_MEMORY (4ULL << 20)

static void platform_set_irq(void *opaque, unsigned gsi, int level)
{
	vm_set_irq(opaque, gsi, level);
}

static void platform_event(void *opaque, enum machine_event ev)
{
	vm_request_exit(opaque, ev == MACHINE_POWEROFF ? VM_POWEROFF : VM_RESET);
}

static void platform_guest_exit(void *opaque, uint32_t code)
{
	vm_request_guest_exit(opaque, code);
}

/* KVM maps guest RAM from kite's mapping through the MMU notifier: a protection change drops
 * KVM's mapping of the page, and the next guest touch faults it back in, as QEMU's pc-testdev
 * does with mprotect. Adding and removing PROT_EXEC changes the protection without ever
 * taking an access away from kite's own threads (device threads read and write guest RAM). */
static void platform_flush_page(void *opaque, uint64_t gpa)
{
	struct vm *vm = opaque;
	void *p = gmem_ptr(&vm->mem, gpa, 4096);
	if (!p)
		return;
	if (mprotect(p, 4096, PROT_READ | PROT_WRITE | PROT_EXEC) < 0 ||
	    mprotect(p, 4096, PROT_READ | PROT_WRITE) < 0)
		kite_warn("pc-testdev: flush of page 0x%llx: %s", (unsigned long long)gpa,
			  strerror(errno));
}

/* Device threads, the io event thread and vCPUs (an unmask) send; only while the VM runs. */
static void platform_msi_send(void *opaque, struct pci_device *d, unsigned vector, uint64_t addr,
			      uint32_t data)
{
	struct vm *vm = opaque;
	if (vm->irqfds_ready)
		irqfds_send(&vm->irqfds, (unsigned)d->slot, vector, addr, data);
}

static void platform_bar_moved(void *opaque, struct pci_device *d, int bar, uint64_t old_addr,
			       uint64_t new_addr)
{
	struct vm *vm = opaque;
	if (vm->ioevent_ready)
		ioevent_bar_moved(&vm->ioevent, d, bar, new_addr);
}

/* The PCI bus and its virtio devices: opened here, before KVM, so that a missing disk image
 * or a bad network option is found before any guest runs. */
static void hvc_write(void *opaque, const uint8_t *buf, size_t len)
{
	console_write(opaque, buf, len);
}

static void hvc_rx_ready(void *opaque)
{
	console_kick(opaque);
}

static size_t hvc_input(void *opaque, const uint8_t *buf, size_t len)
{
	return virtio_console_input(opaque, buf, len);
}

static int add_virtio(struct vm *vm, const struct vm_config *cfg)
{
	struct virtio_console_backend hvc = {
	    .write = hvc_write, .rx_ready = hvc_rx_ready, .opaque = cfg->virtio_console};
	struct pci_bus_ops ops = {
	    .msi_send = platform_msi_send,
	    .set_irq = platform_set_irq,
	    .opaque = vm,
	    .bar_moved = platform_bar_moved,
	};
	/* The block layer locks the disks as QEMU locks its images: `kite guest`, qemu-img and
	 * QEMU see them in use, and a disk another VM writes is refused. */
	if (virtio_devices_create(&vm->virtio, cfg->machine, cfg->virtio_console ? &hvc : NULL,
				  &vm->mem, &vm->bus, &ops) < 0)
		return -1;
	vm->virtio_ready = true;
	return 0;
}

static int check_memory_size(uint64_t size)
{
	if (size < VM_MIN_MEMORY)
		return kite_error("memory size %llu KiB is too small (at least %llu MiB)",
				  (unsigned long long)(size >> 10),
				  (unsigned long long)(VM_MIN_MEMORY >> 20));
	if (size & 0xfff)
		return kite_error("memory size must be a multiple of 4 KiB");
	struct sysinfo si;
	if (sysinfo(&si) == 0) {
		uint64_t host = ((uint64_t)si.totalram + (uint64_t)si.totalswap) * si.mem_unit;
		if (size > host)
			return kite_error(
			    "memory size %llu MiB is more than this host has (%llu MiB)",
			    (unsigned long long)(size >> 20), (unsigned long long)(host >> 20));
	}
	return 0;
}

/* The one place that decides about the PVM defaults: a Linux kernel (ELF vmlinux or bzImage)
 * on a KVM-PVM host gets them unless the user said --no-pvm-defaults; PVH programs (our test
 * programs) and multiboot kernels get their command line exactly as given. */
static bool wants_pvm_cmdline(const struct vm *vm, const struct vm_config *cfg,
			      const struct kvm_host_facts *host)
{
	return host->pvm && !cfg->no_pvm_defaults &&
	       (vm->boot.kind == KERNEL_ELF_LINUX || vm->boot.kind == KERNEL_BZIMAGE);
}

/* PVM_LINUX_CMDLINE after the user's command line, in place. */
static int add_pvm_cmdline(struct vm *vm, const struct vm_config *cfg)
{
	char *cmdline = pvm_cmdline(cfg->machine->append ? cfg->machine->append : "", 1);
	if (!cmdline)
		return kite_error("out of memory");
	size_t len = strlen(cmdline);
	int r = 0;
	if (len >= PVM_CMDLINE_LIMIT)
		r = kite_error("the kernel command line is too long with the PVM defaults added "
			       "(%zu bytes, at most %d; see --no-pvm-defaults)",
			       len, PVM_CMDLINE_LIMIT - 1);
	else if (gmem_write(&vm->mem, BOOT_CMDLINE_ADDR, cmdline, len + 1) < 0)
		r = kite_error("the kernel command line does not fit in guest memory");
	free(cmdline);
	return r;
}

int vm_prepare(struct vm *vm, const struct vm_config *cfg, const struct kvm_host_facts *host)
{
	const struct machine_config *m = cfg->machine;
	memset(vm, 0, sizeof(*vm));
	vm->fd = -1;
	vm->ncpus = (int)m->vcpus;
	vm->exit_device = m->exit_device;
	vm->exit_port = m->exit_port;
	pthread_mutex_init(&vm->lock, NULL);
	pthread_cond_init(&vm->cond, NULL);
	if (m->vcpus < 1 || m->vcpus > VM_MAX_VCPUS)
		return kite_error("--cpus %u: must be between 1 and %d", m->vcpus, VM_MAX_VCPUS);
	if (check_memory_size(m->memory) < 0)
		return -1;
	if (gmem_init(&vm->mem, m->memory) < 0)
		return -1;
	vm->machine = m;
	if (cfg->restore) {
		/* The RAM holds the kernel, its tables and everything since: no boot. */
		vm->restore = cfg->restore;
		if (savefile_map_ram(cfg->restore, &vm->mem) < 0)
			return -1;
		return add_virtio(vm, cfg);
	}
	if (kernel_load(&vm->mem, m->kernel, m->initrd, m->append ? m->append : "", &vm->boot) < 0)
		return -1;
	if (wants_pvm_cmdline(vm, cfg, host)) {
		if (add_pvm_cmdline(vm, cfg) < 0)
			return -1;
		vm->pvm_cmdline = true;
	}
	if (acpi_build(&vm->mem, vm->ncpus) < 0)
		return -1;
	if (add_virtio(vm, cfg) < 0)
		return -1;
	return 0;
}

static int set_memory(struct vm *vm)
{
	for (int i = 0; i < vm->mem.nregions; i++) {
		const struct gmem_region *r = &vm->mem.regions[i];
		struct kvm_userspace_memory_region region = {
		    .slot = (uint32_t)i,
		    .guest_phys_addr = r->gpa,
		    .memory_size = r->size,
		    .userspace_addr = (uint64_t)(uintptr_t)r->host,
		};
		if (ioctl(vm->fd, KVM_SET_USER_MEMORY_REGION, &region) < 0)
			return kite_error_errno(errno, "KVM_SET_USER_MEMORY_REGION");
	}
	return 0;
}

static int create_irqchip(struct vm *vm)
{
	uint64_t identity = KVM_IDENTITY_MAP_ADDR;
	if (ioctl(vm->fd, KVM_SET_IDENTITY_MAP_ADDR, &identity) < 0)
		return kite_error_errno(errno, "KVM_SET_IDENTITY_MAP_ADDR");
	if (ioctl(vm->fd, KVM_SET_TSS_ADDR, (unsigned long)KVM_TSS_ADDR) < 0)
		return kite_error_errno(errno, "KVM_SET_TSS_ADDR");
	if (ioctl(vm->fd, KVM_CREATE_IRQCHIP, 0) < 0)
		return kite_error_errno(errno, "KVM_CREATE_IRQCHIP");
	struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};
	if (ioctl(vm->fd, KVM_CREATE_PIT2, &pit) < 0)
		return kite_error_errno(errno, "KVM_CREATE_PIT2");
	/* The PC routes, and MSI routes for irqfds later. */
	if (irqfds_init(&vm->irqfds, vm->kvm, vm->fd) < 0)
		return -1;
	vm->irqfds_ready = true;
	return 0;
}

/* etc/e820 as QEMU gives it: the RAM regions only (the firmware carves out what it keeps). */
static int add_fw_cfg_e820(struct vm *vm)
{
	uint8_t e820[sizeof(vm->mem.regions) / sizeof(vm->mem.regions[0]) * 20];
	uint32_t len = 0;
	for (int i = 0; i < vm->mem.nregions; i++) {
		const struct gmem_region *r = &vm->mem.regions[i];
		put_le64(e820 + len, r->gpa);
		put_le64(e820 + len + 8, r->size);
		put_le32(e820 + len + 16, E820_RAM);
		len += 20;
	}
	return fw_cfg_add_file(&vm->fw_cfg, "etc/e820", e820, len);
}

/* fw_cfg at 0x510 and its DMA interface at 0x514 (devices/fw_cfg.h): the RAM size, the vCPU
 * counts, etc/e820. */
#define FW_CFG_USER_FILE_MAX (64u << 20)

/* --fw-cfg: each file's bytes as the machine starts, or its string without a NUL (as QEMU). */
static int add_fw_cfg_user(struct vm *vm)
{
	for (int i = 0; i < vm->machine->nfw_cfg; i++) {
		const struct fw_cfg_config *c = &vm->machine->fw_cfg[i];
		if (c->string) {
			if (fw_cfg_add_file(&vm->fw_cfg, c->name, c->string,
					    (uint32_t)strlen(c->string)) < 0)
				return -1;
			continue;
		}
		struct boot_file f;
		if (boot_file_map(c->file, &f) < 0)
			return -1;
		int r = f.len > FW_CFG_USER_FILE_MAX
			    ? kite_error("--fw-cfg %s: %s is larger than %u MiB", c->name, c->file,
					 FW_CFG_USER_FILE_MAX >> 20)
			    : fw_cfg_add_file(&vm->fw_cfg, c->name,
					      f.data ? (const void *)f.data : "", (uint32_t)f.len);
		boot_file_unmap(&f);
		if (r < 0)
			return -1;
	}
	return 0;
}

static int add_fw_cfg(struct vm *vm)
{
	if (fw_cfg_init(&vm->fw_cfg) < 0)
		return -1;
	vm->fw_cfg_ready = true;
	struct fw_cfg *f = &vm->fw_cfg;
	if (fw_cfg_add_le64(f, FW_CFG_RAM_SIZE, vm->mem.ram_size) < 0 ||
	    fw_cfg_add_le16(f, FW_CFG_NB_CPUS, (uint16_t)vm->ncpus) < 0 ||
	    fw_cfg_add_le16(f, FW_CFG_MAX_CPUS, (uint16_t)vm->ncpus) < 0 ||
	    add_fw_cfg_e820(vm) < 0 || add_fw_cfg_user(vm) < 0 ||
	    fw_cfg_enable_dma(f, &vm->mem) < 0)
		return -1;
	if (iobus_register(&vm->bus, IOBUS_PIO, FW_CFG_PORT, FW_CFG_PORTS, &fw_cfg_ops, f,
			   "fw_cfg") < 0)
		return -1;
	return iobus_register(&vm->bus, IOBUS_PIO, FW_CFG_DMA_PORT, FW_CFG_DMA_PORTS,
			      &fw_cfg_dma_ops, f, "fw_cfg-dma");
}

static int add_testdev(struct vm *vm)
{
	struct pc_testdev *t = &vm->testdev;
	if (pc_testdev_init(t, &vm->platform) < 0)
		return -1;
	vm->has_testdev = true;
	struct iobus *b = &vm->bus;
	if (iobus_register(b, IOBUS_PIO, PC_TESTDEV_LATCH_PORT, PC_TESTDEV_LATCH_LEN,
			   &pc_testdev_latch_ops, t, "pc-testdev") < 0 ||
	    iobus_register(b, IOBUS_PIO, PC_TESTDEV_FLUSH_PORT, PC_TESTDEV_FLUSH_LEN,
			   &pc_testdev_flush_ops, t, "pc-testdev") < 0 ||
	    iobus_register(b, IOBUS_PIO, PC_TESTDEV_LATCH_BYTE_PORT, PC_TESTDEV_LATCH_LEN,
			   &pc_testdev_latch_ops, t, "pc-testdev") < 0 ||
	    iobus_register(b, IOBUS_PIO, PC_TESTDEV_IRQ_PORT, PC_TESTDEV_IRQ_LINES,
			   &pc_testdev_irq_ops, t, "pc-testdev") < 0)
		return -1;
	return iobus_register(b, IOBUS_MMIO, PC_TESTDEV_IOMEM_BASE, PC_TESTDEV_IOMEM_LEN,
			      &pc_testdev_iomem_ops, t, "pc-testdev");
}

static int add_devices(struct vm *vm, struct console *console)
{
	vm->platform = (struct platform_ops){.set_irq = platform_set_irq,
					     .event = platform_event,
					     .guest_exit = platform_guest_exit,
					     .flush_page = platform_flush_page,
					     .opaque = vm};
	bool hvc = vm->virtio_ready && vm->virtio.console;
	serial_init(&vm->serial, &vm->platform, SERIAL_COM1_IRQ, hvc ? NULL : console);
	if (hvc) {
		console_attach(console, hvc_input, vm->virtio.console);
		vm->hvc_console = console; /* detached in vm_destroy, before the device goes */
	}
	i8042_init(&vm->i8042, &vm->platform);
	rtc_init(&vm->rtc);
	acpi_pm_init(&vm->pm, &vm->platform);
	struct iobus *b = &vm->bus;
	if (iobus_register(b, IOBUS_PIO, SERIAL_COM1_BASE, 8, &serial_io_ops, &vm->serial,
			   "serial") < 0 ||
	    iobus_register(b, IOBUS_PIO, I8042_DATA_PORT, 1, &i8042_data_ops, &vm->i8042, "i8042") <
		0 ||
	    iobus_register(b, IOBUS_PIO, I8042_CMD_PORT, 1, &i8042_cmd_ops, &vm->i8042, "i8042") <
		0 ||
	    iobus_register(b, IOBUS_PIO, RTC_PORT, 2, &rtc_io_ops, &vm->rtc, "rtc") < 0 ||
	    iobus_register(b, IOBUS_PIO, ACPI_PM_BASE, ACPI_PM_LEN, &acpi_pm_ops, &vm->pm,
			   "acpi-pm") < 0 ||
	    iobus_register(b, IOBUS_PIO, ACPI_RESET_PORT, 1, &acpi_reset_ops, &vm->pm, "reset") < 0)
		return -1;
	if (add_fw_cfg(vm) < 0)
		return -1;
	if (vm->exit_device) {
		debug_exit_init(&vm->debug_exit, &vm->platform);
		if (iobus_register(b, IOBUS_PIO, vm->exit_port, DEBUG_EXIT_LEN, &debug_exit_ops,
				   &vm->debug_exit, "exit-device") < 0)
			return -1;
	}
	return vm->machine->testdev ? add_testdev(vm) : 0;
}

int vm_start(struct vm *vm, struct kvm_host *kvm, struct console *console)
{
	vm->kvm = kvm;
	if (vm->ncpus > kvm->max_vcpus)
		return kite_error("--cpus %d: this host's KVM allows at most %d", vm->ncpus,
				  kvm->max_vcpus);
	vm->fd = ioctl(kvm->fd, KVM_CREATE_VM, 0);
	if (vm->fd < 0)
		return kite_error_errno(errno, "KVM_CREATE_VM");
	if (create_irqchip(vm) < 0 || set_memory(vm) < 0 || add_devices(vm, console) < 0)
		return -1;
	if (vm->virtio_ready) {
		if (ioevent_start(&vm->ioevent, kvm, vm->fd, &vm->virtio) < 0)
			return -1;
		vm->ioevent_ready = true;
	}
	vm->cpuid = cpuid_build(kvm, &vm->machine->cpu);
	if (!vm->cpuid)
		return -1;
	vm->vcpus = calloc((size_t)vm->ncpus, sizeof(*vm->vcpus));
	if (!vm->vcpus)
		return kite_error("out of memory");
	for (int i = 0; i < vm->ncpus; i++)
		vm->vcpus[i].fd = -1;
	for (int i = 0; i < vm->ncpus; i++)
		if (vcpu_create(vm, &vm->vcpus[i], i) < 0)
			return -1;
	if (vm->restore) {
		struct state_stream s;
		state_stream_init(&s, vm->restore->state, vm->restore->state_len);
		if (vm_load_state(vm, &s) < 0)
			return kite_error("%s: cannot restore the machine", vm->restore->path);
	}
	for (int i = 0; i < vm->ncpus; i++) {
		if (vcpu_start(&vm->vcpus[i]) < 0)
			return -1;
		pthread_mutex_lock(&vm->lock);
		vm->nstarted++;
		pthread_mutex_unlock(&vm->lock);
	}
	/* Buffers the driver had made available before the save: their kicks went to the
	 * saved process. */
	if (vm->restore && vm->virtio_ready)
		virtio_devices_kick_all(&vm->virtio);
	return 0;
}

void vm_request_exit(struct vm *vm, enum vm_exit why)
{
	pthread_mutex_lock(&vm->lock);
	if (vm->exit == VM_RUNNING) {
		vm->exit = why;
		pthread_cond_broadcast(&vm->cond);
	}
	pthread_mutex_unlock(&vm->lock);
}

void vm_request_guest_exit(struct vm *vm, uint32_t code)
{
	pthread_mutex_lock(&vm->lock);
	if (vm->exit == VM_RUNNING) {
		vm->exit = VM_GUEST_EXIT;
		vm->guest_exit_code = code;
		pthread_cond_broadcast(&vm->cond);
	}
	pthread_mutex_unlock(&vm->lock);
}

void vm_pause(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	vm->paused = true;
	pthread_mutex_unlock(&vm->lock);
	for (int i = 0; i < vm->ncpus && vm->vcpus; i++)
		vcpu_kick(&vm->vcpus[i]);
	pthread_mutex_lock(&vm->lock);
	while (vm->paused && vm->exit == VM_RUNNING && vm->nparked < vm->nstarted)
		pthread_cond_wait(&vm->cond, &vm->lock);
	pthread_mutex_unlock(&vm->lock);
}

void vm_resume(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	vm->paused = false;
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
}

bool vm_is_paused(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	bool p = vm->paused;
	pthread_mutex_unlock(&vm->lock);
	return p;
}

bool vm_vcpu_checkpoint(struct vm *vm, struct vcpu *v)
{
	pthread_mutex_lock(&vm->lock);
	/* A vCPU parks with its registers complete: an IN or MMIO read it stopped on gets its
	 * value first, or a save would catch RIP before the instruction and the value lost. */
	while (vm->paused && vm->exit == VM_RUNNING && v->io_pending) {
		pthread_mutex_unlock(&vm->lock);
		vcpu_complete_io(v);
		pthread_mutex_lock(&vm->lock);
	}
	if (vm->paused && vm->exit == VM_RUNNING) {
		vm->nparked++;
		pthread_cond_broadcast(&vm->cond);
		while (vm->paused && vm->exit == VM_RUNNING)
			pthread_cond_wait(&vm->cond, &vm->lock);
		vm->nparked--;
	}
	bool ending = vm->exit != VM_RUNNING;
	pthread_mutex_unlock(&vm->lock);
	return ending;
}

enum vm_exit vm_wait(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	while (vm->exit == VM_RUNNING)
		pthread_cond_wait(&vm->cond, &vm->lock);
	enum vm_exit why = vm->exit;
	pthread_mutex_unlock(&vm->lock);
	return why;
}

void vm_set_irq(struct vm *vm, unsigned gsi, int level)
{
	struct kvm_irq_level irq = {.irq = gsi, .level = (uint32_t)level};
	if (ioctl(vm->fd, KVM_IRQ_LINE, &irq) < 0)
		kite_warn("KVM_IRQ_LINE %u: %s", gsi, strerror(errno));
}

void vm_destroy(struct vm *vm)
{
	vm_request_exit(vm, VM_QUIT);
	if (vm->vcpus) {
		for (int i = 0; i < vm->ncpus; i++)
			vcpu_kick(&vm->vcpus[i]);
		for (int i = 0; i < vm->ncpus; i++) {
			vcpu_destroy(&vm->vcpus[i]);
			for (int r = 0; vm->stats && r < VCPU_EXIT_COUNTERS; r++)
				vm->stats->exits[r] += vm->vcpus[i].exits[r];
			if (vm->stats)
				pvm_stats_add(&vm->stats->pvm_fallbacks,
					      &vm->vcpus[i].pvm_fallbacks);
		}
		free(vm->vcpus);
		vm->vcpus = NULL;
	}
	/* The io event thread calls into the devices: it stops before they go. */
	if (vm->ioevent_ready) {
		if (vm->stats) {
			vm->stats->ioeventfd_notifies +=
			    __atomic_load_n(&vm->ioevent.notifies, __ATOMIC_RELAXED);
			/* Kicks KVM signalled straight to a disk's own eventfd. */
			for (int d = 0; d < vm->virtio.ndisks; d++)
				vm->stats->ioeventfd_notifies += __atomic_load_n(
				    &virtio_blk_dev(vm->virtio.disks[d])->eventfd_kicks,
				    __ATOMIC_RELAXED);
		}
		ioevent_stop(&vm->ioevent);
		vm->ioevent_ready = false;
	}
	if (vm->hvc_console) {
		console_attach(vm->hvc_console, NULL, NULL);
		vm->hvc_console = NULL;
	}
	if (vm->virtio_ready) {
		virtio_devices_destroy(&vm->virtio);
		vm->virtio_ready = false;
	}
	/* After the device threads, which send MSI-X messages. */
	if (vm->irqfds_ready) {
		if (vm->stats) {
			vm->stats->msix_irqfd += vm->irqfds.via_irqfd;
			vm->stats->msix_ioctl += vm->irqfds.via_ioctl;
		}
		vm->irqfds_ready = false;
		irqfds_destroy(&vm->irqfds);
	}
	if (vm->platform.opaque) {
		serial_destroy(&vm->serial);
		i8042_destroy(&vm->i8042);
		rtc_destroy(&vm->rtc);
		acpi_pm_destroy(&vm->pm);
	}
	if (vm->has_testdev) {
		pc_testdev_destroy(&vm->testdev);
		vm->has_testdev = false;
	}
	if (vm->fw_cfg_ready) {
		fw_cfg_destroy(&vm->fw_cfg);
		vm->fw_cfg_ready = false;
	}
	free(vm->cpuid);
	vm->cpuid = NULL;
	if (vm->fd >= 0)
		close(vm->fd);
	vm->fd = -1;
	gmem_free(&vm->mem);
	pthread_cond_destroy(&vm->cond);
	pthread_mutex_destroy(&vm->lock);
}
