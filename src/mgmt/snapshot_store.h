/* A machine's snapshot metadata (virsh keeps it beside the domain's XML): STATE/NAME.snapshots,
 * JSON, replaced atomically under the machine's lock:
 *   {"current": SNAP|null,
 *    "snapshots": [{"name", "description", "parent": SNAP|null, "creation_time": UNIX,
 *                   "state": "running"|"paused"|"shutoff"|"disk-snapshot",
 *                   "memory": bool, "vmstate_disk": TARGET|null, "vm_state_size": BYTES,
 *                   "disks": [{"target", "path", "snapshot": "internal"|"no"}]}, ...]}
 * in creation order. The snapshots themselves are in the qcow2 disks (internal snapshots,
 * the VM state in the VM state area of the disk `vmstate_disk`). */
#ifndef KITE_MGMT_SNAPSHOT_STORE_H
#define KITE_MGMT_SNAPSHOT_STORE_H

#include "mgmt/paths.h"

#include <jansson.h>

/* Loads NAME's metadata (an empty set when there is none). Returns the object, or NULL
 * (reported: unreadable or corrupt). */
json_t *snapshot_store_load(const struct mgmt_dirs *d, const char *name);
/* Validates the shape and writes it atomically. Returns 0 or -1 (reported). */
int snapshot_store_save(const struct mgmt_dirs *d, const char *name, json_t *meta);
/* Removes NAME's metadata file and the revert's save file (none is fine). Returns 0 or -1. */
int snapshot_store_remove(const struct mgmt_dirs *d, const char *name);
/* How many snapshots NAME has in its metadata, or -1 (reported). */
int snapshot_store_count(const struct mgmt_dirs *d, const char *name);
/* STATE/NAME.revert-save: the state a revert resumes (its RAM mapped while the machine runs,
 * so it stays until the next revert or the machine's undefine). */
int snapshot_store_revert_path(const struct mgmt_dirs *d, const char *name, char *buf, size_t size);

/* The entry of snapshot `snap`, or NULL. */
json_t *snapshot_find(json_t *meta, const char *snap);
/* The number of children, and of all descendants, of `snap`. */
void snapshot_count_children(json_t *meta, const char *snap, int *children, int *descendants);
/* Removes `snap`; its children take its parent, and the current one moves to the parent. */
void snapshot_forget(json_t *meta, const char *snap);

#endif
