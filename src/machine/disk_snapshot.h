/* A machine's disks in an internal snapshot, all together (virsh's snapshot-create-as,
 * snapshot-revert, snapshot-delete on qcow2 disks): the running VMM (vm_snapshot.c), the
 * stand-in VMM and the machine verbs on a stopped machine all come here. Every writable
 * disk takes part; read-only disks are left out. A full snapshot also stores the machine's
 * VM state, a kite save file (machine/savefile.h), in the first writable qcow2 disk's VM state
 * area, as QEMU's savevm stores its own (qemu-img snapshot -l shows its VM SIZE). */
#ifndef KITE_VMM_DISK_SNAPSHOT_H
#define KITE_VMM_DISK_SNAPSHOT_H

#include "block/block.h"
#include "config/machine_config.h"

#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

/* Takes snapshot `name` on every writable disk of `m` (`blks` open in m's order, read-write
 * where m's disk is writable). With `statefile` (a save file) the state goes into the first
 * qcow2 disk with the guest clock `vm_clock_nsec`; without, it is a disk-only snapshot. A
 * disk that cannot take it (raw, or holding a snapshot of that name already) refuses the
 * whole snapshot before anything is written; a failure part way removes what was made (all
 * or nothing). Sets *out to {"vm_state_size": N, "vmstate_disk": TARGET|null, "disks":
 * [{"target", "path", "snapshot": "internal"|"no"}]}. Returns 0 or -1 (printed). */
int disk_snapshot_create(const struct machine_config *m, struct blk **blks, const char *name,
			 const char *statefile, uint64_t vm_clock_nsec, json_t **out);

/* Writes the VM state of snapshot `name` (kept in disk `vmstate_target`) to `statefile`, a
 * save file to check before use: the image may be hostile. Every writable disk must have
 * the snapshot. The images are opened here (the machine must not be running). */
int disk_snapshot_read_state(const struct machine_config *m, const char *name,
			     const char *vmstate_target, const char *statefile);
/* Reverts every writable disk of `m` to snapshot `name` (qemu-img snapshot -a), once each
 * is found to have it. Returns 0 or -1 (printed). */
int disk_snapshot_revert(const struct machine_config *m, const char *name);

/* Deletes snapshot `name` from every writable qcow2 disk of `m` that has it (the machine
 * stopped: images opened here; running: `blks` are its open disks). Returns 0 or -1. */
int disk_snapshot_delete(const struct machine_config *m, struct blk **blks, const char *name);

/* External snapshots (--disk-only, as virsh takes them): a new qcow2 overlay for every
 * writable disk, DISK-without-extension.SNAP beside it, backed by the disk (its format
 * recorded). `blks`: the running machine's open disks (NULL: stopped; each disk is opened
 * read-only here for its format and size). An overlay file that exists already refuses the
 * snapshot; a failure removes the overlays made. Sets paths[i] for each writable disk
 * ("" for the others) and *out as disk_snapshot_create does (snapshot "external", "file").
 * Returns 0 or -1 (printed). */
int disk_snapshot_create_overlays(const struct machine_config *m, struct blk **blks,
				  const char *name, char (*paths)[PATH_MAX], json_t **out);
/* The running machine's disks move onto their overlays: each old image closed, the overlay
 * opened in its place (the old one reopened when that fails) and m's disk pointed at it
 * (path, format qcow2). Only with the disks quiesced. Returns 0 or -1 (printed). */
int disk_snapshot_switch(struct machine_config *m, struct blk **blks, char (*paths)[PATH_MAX]);

#endif
