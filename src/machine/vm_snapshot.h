/* Internal snapshots of a running machine (kite snapshot-create-as, snapshot-delete on a
 * running machine): vCPUs paused at one instant, disk requests completed, then the disks
 * (machine/disk_snapshot.h) and, for a full snapshot, the state and RAM as a save file. */
#ifndef KITE_VMM_VM_SNAPSHOT_H
#define KITE_VMM_VM_SNAPSHOT_H

#include "machine/vm.h"

#include <jansson.h>

/* With `statefile`, the machine's save file is written there, stored in the first qcow2
 * disk with the snapshot, and removed; without, a disk-only snapshot. The machine runs on
 * as it was (paused stays paused). Returns 0 with *out set, or -1 (printed). */
int vm_snapshot_create(struct vm *vm, const char *name, const char *statefile, json_t **out);
/* --disk-only as virsh takes it: every writable disk moves onto a new qcow2 overlay
 * (machine/disk_snapshot.h) at one paused instant; the machine runs on from the overlays. */
int vm_snapshot_create_external(struct vm *vm, const char *name, json_t **out);
int vm_snapshot_delete(struct vm *vm, const char *name);

#endif
