/* Everything on a disk that may hold a filesystem, under the names Linux gives it: the whole
 * disk (/dev/sda) when it has no partition table, each partition (/dev/sdaN) but an extended
 * container, and each visible LVM2 logical volume (/dev/VG/LV) of the volume groups whose
 * physical volumes are on those. Each opens as a struct gdev. */
#ifndef KITE_GUESTFS_VOLUME_H
#define KITE_GUESTFS_VOLUME_H

#include "guestfs/dev.h"
#include "guestfs/lvm.h"
#include "guestfs/lvm_dev.h"
#include "guestfs/partition.h"

#include <stdbool.h>
#include <stddef.h>

enum vol_kind { VOL_DISK, VOL_PART, VOL_LV };

struct volume {
	enum vol_kind kind;
	char name[300];	 /* "/dev/sda", "/dev/sda3", "/dev/VG/LV" */
	char label[310]; /* for messages: "the disk", "partition 3", "/dev/VG/LV" */
	uint64_t size;
	const struct part *part; /* VOL_PART */
	const struct lvm_vg *vg; /* VOL_LV */
	const struct lvm_lv *lv;
};

struct vol_list {
	struct part_table parts;
	struct lvm_set lvm;
	size_t count;
	struct volume *v;
};

/* Reads the partition table and, with `lvm`, the volume groups on the partitions (or on the
 * whole disk). Returns -1 (reported) only if the partition table cannot be read; problems with
 * LVM2 metadata are reported and leave l->lvm.failed set. */
int vol_scan(struct vol_list *l, const struct gdev *disk, bool lvm);
/* The same for the `index`th disk of several (0: /dev/sda, 1: /dev/sdb, ...): its volumes
 * are named /dev/sdbN and so on, as guestfish names the drives it was given. */
int vol_scan_disk(struct vol_list *l, const struct gdev *disk, bool lvm, int index);
void vol_list_free(struct vol_list *l);

/* Does the -a argument name a logical volume ("/dev/VG/LV", "/dev/mapper/VG-LV", "VG/LV")
 * rather than a partition ("3", "sda3", "/dev/sda3")? */
bool vol_arg_is_lv(const char *arg);
/* The volume an -a argument names; NULL (reported) if there is none, or if it names an
 * extended partition or a partition of a disk without a table. */
const struct volume *vol_find(const struct vol_list *l, const char *arg);
/* Does `arg` name the logical volume `v` (VOL_LV), in any of its spellings? */
bool vol_names_lv(const struct volume *v, const char *arg);

struct vol_dev {
	struct gdev_window win;
	struct lvm_map map;
};

/* Opens `v` of `disk` as `out`; `write` asks for a writable LV (refused with a reason when
 * kite will not write it). Returns -1 (reported). Free with vol_close. */
int vol_open(const struct vol_list *l, const struct volume *v, const struct gdev *disk, bool write,
	     struct gdev *out, struct vol_dev *state);
void vol_close(struct vol_dev *state);

#endif
