/* A running VMM's migration (machine/migrate.h) on its own thread: the control commands
 * migrate, query-migrate and migrate_cancel act on it. One at a time per VMM. */
#ifndef KITE_VMM_MIGRATE_VM_H
#define KITE_VMM_MIGRATE_VM_H

#include "machine/migrate.h"
#include "machine/vm.h"

/* Called on the migration's thread when it ends: 0 (the destination runs the machine: end
 * this run) or -1 (the guest runs on here). */
typedef void (*vm_migrate_done_fn)(struct vm *vm, int result, enum migrate_status st);

/* Starts migrating `vm`. Returns 0, or -1 with an error (one is already running). */
int vm_migrate_start(struct vm *vm, const struct migrate_params *p, vm_migrate_done_fn done);
/* The current (or last) migration, as query-migrate returns it. */
json_t *vm_migrate_query(void);
/* Cancels the running migration, if any. */
void vm_migrate_cancel(void);
/* The boot is ending: a running migration is cancelled and waited for (before vm_destroy). */
void vm_migrate_boot_ending(struct vm *vm);

#endif
