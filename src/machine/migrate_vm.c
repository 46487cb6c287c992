/* The VMM's side of a migration: KVM's dirty log, the vCPUs and devices, the disks' locks
 * (machine/migrate_vm.h). */
#include "machine/migrate_vm.h"
#include "block/blk_handover.h"
#include "util/err.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

static struct {
	pthread_mutex_t lock; /* guards running, thread, vm */
	bool running, joinable;
	pthread_t thread;
	struct vm *vm;
	struct migrate_job job;
	bool job_ready;
	struct migrate_params params;
	vm_migrate_done_fn done;
	bool was_paused;
	uint64_t *slot_bm;
	uint64_t *old_dev_dirty; /* a finished migration's: devices may still hold it briefly */
} mig = {.lock = PTHREAD_MUTEX_INITIALIZER};

static uint64_t pages_of(uint64_t bytes)
{
	return bytes / MIGRATE_PAGE;
}

static int set_logging(struct vm *vm, bool on)
{
	for (int i = 0; i < vm->mem.nregions; i++) {
		const struct gmem_region *r = &vm->mem.regions[i];
		struct kvm_userspace_memory_region region = {
		    .slot = (uint32_t)i,
		    .flags = on ? KVM_MEM_LOG_DIRTY_PAGES : 0,
		    .guest_phys_addr = r->gpa,
		    .memory_size = r->size,
		    .userspace_addr = (uint64_t)(uintptr_t)r->host,
		};
		if (ioctl(vm->fd, KVM_SET_USER_MEMORY_REGION, &region) < 0)
			return kite_error_errno(errno, "KVM_SET_USER_MEMORY_REGION (dirty log)");
	}
	return 0;
}

/* KVM's log of each slot into `bitmap` (pages counted from mem.base); cleared. */
static int sync_kvm(struct vm *vm, uint64_t *bitmap)
{
	for (int i = 0; i < vm->mem.nregions; i++) {
		const struct gmem_region *r = &vm->mem.regions[i];
		uint64_t n = pages_of(r->size), words = (n + 63) / 64;
		memset(mig.slot_bm, 0, words * 8);
		struct kvm_dirty_log log = {.slot = (uint32_t)i, .dirty_bitmap = mig.slot_bm};
		if (ioctl(vm->fd, KVM_GET_DIRTY_LOG, &log) < 0)
			return kite_error_errno(errno, "KVM_GET_DIRTY_LOG");
		if (!bitmap)
			continue;
		uint64_t first = pages_of((uint64_t)(r->host - vm->mem.base));
		for (uint64_t w = 0; w < words; w++) {
			uint64_t bits = mig.slot_bm[w];
			while (bits) {
				uint64_t pg = first + w * 64 + (uint64_t)__builtin_ctzll(bits);
				bits &= bits - 1;
				bitmap[pg >> 6] |= 1ull << (pg & 63);
			}
		}
	}
	return 0;
}

static int vm_log_start(void *opaque)
{
	struct vm *vm = opaque;
	uint64_t words = (pages_of(vm->mem.ram_size) + 63) / 64 + 1;
	free(mig.slot_bm);
	mig.slot_bm = calloc(words, 8);
	free(mig.old_dev_dirty);
	mig.old_dev_dirty = NULL;
	uint64_t *dev = calloc(words, 8);
	if (!mig.slot_bm || !dev) {
		free(dev);
		return kite_error("out of memory");
	}
	if (set_logging(vm, true) < 0 || sync_kvm(vm, NULL) < 0) {
		free(dev);
		(void)set_logging(vm, false);
		return -1;
	}
	/* Devices record what they write from now on; requests they took before are completed
	 * now, so that the first round reads what they wrote. */
	__atomic_store_n(&vm->mem.dev_dirty, dev, __ATOMIC_RELEASE);
	if (vm->virtio_ready) {
		bool paused = vm_is_paused(vm);
		if (!paused)
			vm_pause(vm);
		virtio_devices_quiesce(&vm->virtio, true);
		virtio_devices_quiesce(&vm->virtio, false);
		virtio_devices_kick_all(&vm->virtio);
		if (!paused)
			vm_resume(vm);
	}
	return 0;
}

/* KVM's dirty pages since the last sync, and every page a device wrote since the start
 * (devices mark a buffer when they take it, before they write it: only the whole set, sent
 * again once they are quiesced, is sure to have the last contents). */
static int vm_log_sync(void *opaque, uint64_t *bitmap)
{
	struct vm *vm = opaque;
	if (sync_kvm(vm, bitmap) < 0)
		return -1;
	const uint64_t *dev = vm->mem.dev_dirty;
	uint64_t words = (pages_of(vm->mem.ram_size) + 63) / 64;
	for (uint64_t w = 0; dev && w < words; w++)
		bitmap[w] |= __atomic_load_n(&dev[w], __ATOMIC_RELAXED);
	return 0;
}

static void vm_log_stop(void *opaque)
{
	struct vm *vm = opaque;
	(void)set_logging(vm, false);
	mig.old_dev_dirty = __atomic_exchange_n(&vm->mem.dev_dirty, NULL, __ATOMIC_ACQ_REL);
}

static int vm_stop(void *opaque)
{
	struct vm *vm = opaque;
	mig.was_paused = vm_is_paused(vm);
	if (!mig.was_paused)
		vm_pause(vm);
	pthread_mutex_lock(&vm->lock);
	bool ending = vm->exit != VM_RUNNING;
	pthread_mutex_unlock(&vm->lock);
	if (ending) {
		if (!mig.was_paused)
			vm_resume(vm);
		return kite_error("the machine is stopping: nothing to migrate");
	}
	if (vm->virtio_ready)
		virtio_devices_quiesce(&vm->virtio, true);
	return 0;
}

static void vm_go_on(void *opaque)
{
	struct vm *vm = opaque;
	if (vm->virtio_ready) {
		virtio_devices_quiesce(&vm->virtio, false);
		virtio_devices_kick_all(&vm->virtio);
	}
	if (!mig.was_paused)
		vm_resume(vm);
}

static int vm_state(void *opaque, struct state_buf *out)
{
	return vm_save_state(opaque, out);
}

static int vm_release(void *opaque)
{
	struct vm *vm = opaque;
	for (int i = 0; vm->virtio_ready && i < vm->virtio.ndisks; i++)
		if (blk_release_locks(vm->virtio.blks[i]) < 0) {
			while (i-- > 0)
				(void)blk_take_locks(vm->virtio.blks[i]);
			return -1;
		}
	return 0;
}

static int vm_take(void *opaque)
{
	struct vm *vm = opaque;
	int r = 0;
	for (int i = 0; vm->virtio_ready && i < vm->virtio.ndisks; i++)
		if (blk_take_locks(vm->virtio.blks[i]) < 0)
			r = -1;
	return r;
}

static void *migrate_main(void *arg)
{
	struct vm *vm = arg;
	struct migrate_source src = {
	    .def = vm->machine,
	    .mem = &vm->mem,
	    .opaque = vm,
	    .log_start = vm_log_start,
	    .log_sync = vm_log_sync,
	    .log_stop = vm_log_stop,
	    .stop = vm_stop,
	    .resume = vm_go_on,
	    .save_state = vm_state,
	    .release_disks = vm_release,
	    .take_disks = vm_take,
	};
	int r = migrate_send(&mig.job, &src, &mig.params);
	if (r == 0)
		kite_notice(
		    "machine migrated to %s: %llu ms, downtime %llu ms, %u rounds, %llu MiB "
		    "sent",
		    mig.params.dest, (unsigned long long)mig.job.total_ms,
		    (unsigned long long)mig.job.downtime, mig.job.iteration,
		    (unsigned long long)(mig.job.transferred >> 20));
	else
		kite_warn("migration to %s failed: %s", mig.params.dest, kite_last_error());
	pthread_mutex_lock(&mig.job.lock);
	enum migrate_status st = mig.job.status;
	pthread_mutex_unlock(&mig.job.lock);
	mig.done(vm, r, st);
	pthread_mutex_lock(&mig.lock);
	mig.running = false;
	pthread_mutex_unlock(&mig.lock);
	return NULL;
}

int vm_migrate_start(struct vm *vm, const struct migrate_params *p, vm_migrate_done_fn done)
{
	pthread_mutex_lock(&mig.lock);
	if (mig.running) {
		pthread_mutex_unlock(&mig.lock);
		return kite_error("a migration is already running");
	}
	if (mig.joinable) {
		pthread_join(mig.thread, NULL);
		mig.joinable = false;
	}
	if (mig.job_ready)
		pthread_mutex_destroy(&mig.job.lock);
	migrate_job_init(&mig.job);
	mig.job_ready = true;
	mig.params = *p;
	mig.done = done;
	mig.vm = vm;
	int e = pthread_create(&mig.thread, NULL, migrate_main, vm);
	if (e) {
		pthread_mutex_unlock(&mig.lock);
		return kite_error_errno(e, "cannot start the migration thread");
	}
	mig.running = mig.joinable = true;
	pthread_mutex_unlock(&mig.lock);
	return 0;
}

json_t *vm_migrate_query(void)
{
	pthread_mutex_lock(&mig.lock);
	json_t *j =
	    mig.job_ready ? migrate_job_json(&mig.job) : json_pack("{s:s}", "status", "none");
	pthread_mutex_unlock(&mig.lock);
	return j;
}

void vm_migrate_cancel(void)
{
	pthread_mutex_lock(&mig.lock);
	if (mig.running)
		migrate_job_cancel(&mig.job);
	pthread_mutex_unlock(&mig.lock);
}

void vm_migrate_boot_ending(struct vm *vm)
{
	pthread_mutex_lock(&mig.lock);
	bool mine = mig.joinable && mig.vm == vm;
	if (mine && mig.running)
		migrate_job_cancel(&mig.job);
	pthread_mutex_unlock(&mig.lock);
	if (!mine)
		return;
	pthread_join(mig.thread, NULL);
	pthread_mutex_lock(&mig.lock);
	mig.joinable = false;
	mig.vm = NULL;
	pthread_mutex_unlock(&mig.lock);
}
