#include "vmm/vm_snapshot.h"
#include "util/err.h"
#include "vmm/disk_snapshot.h"
#include "vmm/savefile.h"

#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

/* Pauses the vCPUs and completes the disks' requests; false when the machine is ending. */
static bool hold(struct vm *vm, bool *was_paused)
{
	*was_paused = vm_is_paused(vm);
	if (!*was_paused)
		vm_pause(vm);
	pthread_mutex_lock(&vm->lock);
	bool ending = vm->exit != VM_RUNNING;
	pthread_mutex_unlock(&vm->lock);
	if (ending) {
		if (!*was_paused)
			vm_resume(vm);
		return false;
	}
	if (vm->virtio_ready)
		virtio_devices_quiesce(&vm->virtio, true);
	return true;
}

static void release(struct vm *vm, bool was_paused)
{
	if (vm->virtio_ready)
		virtio_devices_quiesce(&vm->virtio, false);
	if (!was_paused)
		vm_resume(vm);
}

static struct blk **disks(struct vm *vm)
{
	static struct blk *none[MACHINE_MAX_DISKS];
	return vm->virtio_ready ? vm->virtio.blks : none;
}

int vm_snapshot_create(struct vm *vm, const char *name, const char *statefile, json_t **out)
{
	bool was_paused;
	if (!hold(vm, &was_paused))
		return kite_error("the machine is stopping: no snapshot");
	int r = 0;
	uint64_t clock_ns = 0;
	if (statefile) {
		struct kvm_clock_data clock;
		memset(&clock, 0, sizeof(clock));
		if (ioctl(vm->fd, KVM_GET_CLOCK, &clock) == 0)
			clock_ns = clock.clock;
		struct state_buf state = {0};
		r = vm_save_state(vm, &state);
		if (r == 0)
			r = savefile_write(statefile, vm->machine, &state, &vm->mem);
		state_buf_free(&state);
	}
	if (r == 0)
		r = disk_snapshot_create(vm->machine, disks(vm), name, statefile, clock_ns, out);
	if (statefile)
		unlink(statefile);
	release(vm, was_paused);
	return r;
}

int vm_snapshot_delete(struct vm *vm, const char *name)
{
	bool was_paused;
	if (!hold(vm, &was_paused))
		return kite_error("the machine is stopping: try again once it stopped");
	int r = disk_snapshot_delete(vm->machine, disks(vm), name);
	release(vm, was_paused);
	return r;
}
