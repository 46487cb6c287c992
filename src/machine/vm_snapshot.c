#include "machine/vm_snapshot.h"
#include "util/err.h"
#include "machine/disk_snapshot.h"
#include "machine/savefile.h"

#include <errno.h>
#include <stdlib.h>
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

int vm_snapshot_create_external(struct vm *vm, const char *name, json_t **out)
{
	bool was_paused;
	if (!hold(vm, &was_paused))
		return kite_error("the machine is stopping: no snapshot");
	char(*paths)[PATH_MAX] = calloc(MACHINE_MAX_DISKS, PATH_MAX);
	int r = paths ? 0 : kite_error("out of memory");
	if (r == 0)
		r = disk_snapshot_create_overlays(vm->machine, disks(vm), name, paths, out);
	if (r == 0 && vm->virtio_ready) {
		/* The machine's description is this VMM's own (machine.c): it follows the disks,
		 * so that a save or a reboot finds them where they now are. */
		int sw = disk_snapshot_switch((struct machine_config *)vm->machine, vm->virtio.blks,
					      paths);
		for (int i = 0; i < vm->virtio.ndisks; i++) {
			if (vm->virtio.blks[i]) {
				virtio_blk_set_blk(vm->virtio.disks[i], vm->virtio.blks[i]);
			} else { /* neither image opens: the disk is gone, the VM cannot go on */
				kite_error(
				    "disk %s: lost (neither its image nor its overlay opens)",
				    vm->machine->disks[i].target);
				vm_request_exit(vm, VM_ERROR);
				sw = -1;
				break;
			}
		}
		if (sw < 0) {
			json_decref(*out);
			*out = NULL;
			r = -1;
		}
	}
	free(paths);
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
