/* The whole machine's state as records (util/state.h), in the order a load needs them:
 *   machine      vCPU count and RAM size, checked against the machine being loaded
 *   kvm-irqchip  the in-kernel PIC pair and IOAPIC, and the PIT (KVM_GET_IRQCHIP, _PIT2)
 *   vcpu         one per vCPU (vcpu_state.c)
 *   kvm-clock    kvmclock (KVM_GET_CLOCK), after the vCPUs' TSCs and kvmclock MSRs
 *   msi-routes   the MSI routes of the irqfds (irqfd.c)
 *   serial, i8042, rtc, acpi-pm: the platform devices (devices/)
 *   pci-bus ...  the PCI bus and every virtio function (virtio_devices_save)
 * and vm_save, which writes them with the RAM into a save file. */
#include "util/err.h"
#include "machine/savefile.h"
#include "machine/vm.h"

#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>

#define CHIP_PIC_MASTER 0
#define CHIP_PIC_SLAVE	1
#define CHIP_IOAPIC	2

static const char *const chip_names[] = {"pic_master", "pic_slave", "ioapic"};

static int save_irqchip(struct vm *vm, struct state_buf *out)
{
	struct state_writer w;
	state_begin(&w, out, "kvm-irqchip", 1);
	for (unsigned c = CHIP_PIC_MASTER; c <= CHIP_IOAPIC; c++) {
		struct kvm_irqchip chip = {.chip_id = c};
		if (ioctl(vm->fd, KVM_GET_IRQCHIP, &chip) < 0)
			return kite_error_errno(errno, "KVM_GET_IRQCHIP %s", chip_names[c]);
		state_put_bytes(&w, chip_names[c], &chip.chip, sizeof(chip.chip));
	}
	struct kvm_pit_state2 pit;
	if (ioctl(vm->fd, KVM_GET_PIT2, &pit) < 0)
		return kite_error_errno(errno, "KVM_GET_PIT2");
	state_put_bytes(&w, "pit", &pit, sizeof(pit));
	state_end(&w);
	return state_buf_check(out);
}

static int load_irqchip(struct vm *vm, const struct state_reader *r)
{
	for (unsigned c = CHIP_PIC_MASTER; c <= CHIP_IOAPIC; c++) {
		struct kvm_irqchip chip = {.chip_id = c};
		if (state_get_bytes(r, chip_names[c], &chip.chip, sizeof(chip.chip)) < 0)
			return -1;
		if (ioctl(vm->fd, KVM_SET_IRQCHIP, &chip) < 0)
			return kite_error_errno(errno, "KVM_SET_IRQCHIP %s", chip_names[c]);
	}
	struct kvm_pit_state2 pit;
	if (state_get_bytes(r, "pit", &pit, sizeof(pit)) < 0)
		return -1;
	if (ioctl(vm->fd, KVM_SET_PIT2, &pit) < 0)
		return kite_error_errno(errno, "KVM_SET_PIT2");
	return 0;
}

static int save_clock(struct vm *vm, struct state_buf *out)
{
	struct kvm_clock_data clock;
	memset(&clock, 0, sizeof(clock));
	if (ioctl(vm->fd, KVM_GET_CLOCK, &clock) < 0)
		return kite_error_errno(errno, "KVM_GET_CLOCK");
	struct state_writer w;
	state_begin(&w, out, "kvm-clock", 1);
	state_put_u64(&w, "clock", clock.clock);
	state_end(&w);
	return state_buf_check(out);
}

/* The guest's clock goes on from the saved instant: the time it spent saved does not pass
 * for it (as with Firecracker's snapshots; an NTP client in the guest catches up). */
static int load_clock(struct vm *vm, const struct state_reader *r)
{
	struct kvm_clock_data clock;
	uint64_t ns;
	memset(&clock, 0, sizeof(clock));
	if (state_get_u64(r, "clock", &ns) < 0)
		return -1;
	clock.clock = ns;
	if (ioctl(vm->fd, KVM_SET_CLOCK, &clock) < 0)
		return kite_error_errno(errno, "KVM_SET_CLOCK");
	return 0;
}

static const struct {
	const struct state_ops *ops;
	size_t offset; /* of the device in struct vm */
} platform[] = {
    {&serial_state_ops, offsetof(struct vm, serial)},
    {&i8042_state_ops, offsetof(struct vm, i8042)},
    {&rtc_state_ops, offsetof(struct vm, rtc)},
    {&acpi_pm_state_ops, offsetof(struct vm, pm)},
    {&fw_cfg_state_ops, offsetof(struct vm, fw_cfg)},
};

#define NPLATFORM (sizeof(platform) / sizeof(platform[0]))

int vm_save_state(struct vm *vm, struct state_buf *out)
{
	struct state_writer w;
	state_begin(&w, out, "machine", 1);
	state_put_u32(&w, "vcpus", (uint32_t)vm->ncpus);
	state_put_u64(&w, "ram_size", vm->mem.ram_size);
	state_put_bool(&w, "virtio", vm->virtio_ready);
	state_end(&w);
	if (state_buf_check(out) < 0 || save_irqchip(vm, out) < 0)
		return -1;
	for (int i = 0; i < vm->ncpus; i++)
		if (vcpu_save(&vm->vcpus[i], out) < 0)
			return -1;
	if (save_clock(vm, out) < 0 || irqfds_save(&vm->irqfds, out) < 0)
		return -1;
	for (size_t i = 0; i < NPLATFORM; i++)
		if (platform[i].ops->save((char *)vm + platform[i].offset, out) < 0)
			return -1;
	if (vm->has_testdev && pc_testdev_state_ops.save(&vm->testdev, out) < 0)
		return -1;
	return vm->virtio_ready ? virtio_devices_save(&vm->virtio, out) : 0;
}

int vm_load_state(struct vm *vm, struct state_stream *s)
{
	struct state_reader r;
	uint32_t ncpus;
	uint64_t ram;
	bool virtio;
	if (state_next(s, &r, "machine", 1, 1) < 0 || state_get_u32(&r, "vcpus", &ncpus) < 0 ||
	    state_get_u64(&r, "ram_size", &ram) < 0 || state_get_bool(&r, "virtio", &virtio) < 0)
		return -1;
	if (ncpus != (uint32_t)vm->ncpus || ram != vm->mem.ram_size || virtio != vm->virtio_ready)
		return kite_error("device state: saved from a machine with %u vCPUs and %llu MiB, "
				  "this one has %d and %llu MiB",
				  ncpus, (unsigned long long)(ram >> 20), vm->ncpus,
				  (unsigned long long)(vm->mem.ram_size >> 20));
	if (state_next(s, &r, "kvm-irqchip", 1, 1) < 0 || load_irqchip(vm, &r) < 0)
		return -1;
	for (int i = 0; i < vm->ncpus; i++)
		if (state_next(s, &r, "vcpu", 1, 1) < 0 || vcpu_load(&vm->vcpus[i], &r) < 0)
			return -1;
	if (state_next(s, &r, "kvm-clock", 1, 1) < 0 || load_clock(vm, &r) < 0 ||
	    state_next(s, &r, "msi-routes", 1, 1) < 0 || irqfds_load(&vm->irqfds, &r) < 0)
		return -1;
	for (size_t i = 0; i < NPLATFORM; i++)
		if (state_load_dev(platform[i].ops, (char *)vm + platform[i].offset, s) < 0)
			return -1;
	/* The machine's definition came with the save file: it has the device iff the saver had. */
	if (vm->has_testdev && state_load_dev(&pc_testdev_state_ops, &vm->testdev, s) < 0)
		return -1;
	if (vm->virtio_ready && virtio_devices_load(&vm->virtio, s) < 0)
		return -1;
	if (!state_stream_done(s))
		return kite_error("device state: records left over after the last device");
	return 0;
}

int vm_save(struct vm *vm, const char *path)
{
	bool was_paused = vm_is_paused(vm);
	if (!was_paused)
		vm_pause(vm);
	pthread_mutex_lock(&vm->lock);
	bool ending = vm->exit != VM_RUNNING;
	pthread_mutex_unlock(&vm->lock);
	if (ending)
		return kite_error("the machine is stopping: nothing to save");
	if (vm->virtio_ready)
		virtio_devices_quiesce(&vm->virtio, true);
	struct state_buf state = {0};
	int r = vm_save_state(vm, &state);
	if (r == 0)
		r = savefile_write(path, vm->machine, &state, &vm->mem);
	state_buf_free(&state);
	if (vm->virtio_ready)
		virtio_devices_quiesce(&vm->virtio, false);
	if (r < 0 && !was_paused)
		vm_resume(vm);
	return r;
}
