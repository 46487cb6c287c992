/* virsh's snapshot operations (kite snapshot-*), on one machine at a time. */
#ifndef KITE_MGMT_SNAPSHOT_OPS_H
#define KITE_MGMT_SNAPSHOT_OPS_H

#include "mgmt/def_store.h"
#include "mgmt/runstate.h"
#include "mgmt/snapshot_store.h"

#include <jansson.h>
#include <stdbool.h>

/* One operation on machine `name`: its lock held, its definition, status and snapshot
 * metadata loaded. */
struct snapshot_op {
	const struct mgmt_dirs *dirs;
	const char *name;
	int lock;
	struct machine_config def;
	bool def_loaded;
	struct machine_status st;
	json_t *meta;
};

/* 0 or -1 (reported); close either way. */
int snapshot_op_open(struct snapshot_op *x, const struct mgmt_dirs *d, const char *name);
void snapshot_op_close(struct snapshot_op *x);
/* The entry of snapshot `snap`, or NULL after reporting that there is none. */
json_t *snapshot_op_find(struct snapshot_op *x, const char *snap);
/* snapshot-create-as: running or paused, the VMM takes it (state in the first qcow2 disk);
 * shut off, a disk-only internal snapshot; disk_only: external qcow2 overlays, the
 * definition follows them. The metadata records it as current. 0 or -1. */
int snapshot_op_create(struct snapshot_op *x, const char *snap, const char *desc, bool disk_only);
/* snapshot-delete: from every disk (through the VMM while it runs) and from the metadata. */
int snapshot_op_delete(struct snapshot_op *x, const char *snap);
/* snapshot-revert to entry `s`: the machine stops, its state is read and checked before the
 * disks go back, and it resumes from the state (or boots with running/paused). */
int snapshot_op_revert(struct snapshot_op *x, json_t *s, bool running, bool paused);

bool snapshot_machine_active(const struct machine_status *st);
bool snapshot_is_external(json_t *s);

#endif
