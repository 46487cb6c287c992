/* A logical volume as a struct gdev: reads and writes at an offset of the LV go to the disk
 * through its segments, as device-mapper's linear and striped targets map them (a linear
 * segment's extent e is at pe_start + (pe + e) * extent_size of its PV; a striped segment
 * deals chunks of stripe_size to its stripes in turn). Every filesystem verb works on it
 * unchanged. Writing is offered only when every segment is linear. */
#ifndef KITE_GUESTFS_LVM_DEV_H
#define KITE_GUESTFS_LVM_DEV_H

#include "guestfs/dev.h"
#include "guestfs/lvm.h"

#include <stdbool.h>

struct lvm_map_seg {
	uint64_t start, len; /* bytes of the LV */
	uint64_t chunk;	     /* bytes dealt to one stripe at a time (len when one stripe) */
	uint32_t stripes;
	uint64_t *area; /* where each stripe's part of the segment starts on the disk */
};

struct lvm_map {
	const struct gdev *disk;
	size_t nsegs;
	struct lvm_map_seg *segs;
};

/* Why kite cannot read the LV (a segment type it does not map, a PV that is not on this disk),
 * written into `why`; returns false if it can. */
bool lvm_lv_unreadable(const struct lvm_set *s, const struct lvm_vg *vg, const struct lvm_lv *lv,
		       char *why, size_t whysz);
/* Why kite will not write the LV (striped, read-only, the origin of a snapshot); false if it
 * will. */
bool lvm_lv_unwritable(const struct lvm_vg *vg, const struct lvm_lv *lv, char *why, size_t whysz);

/* Makes `out` the LV over `disk` (which must outlive it); writable when `disk` is and `write`
 * is asked, which must then be allowed. Returns -1 (reported, naming the LV) if kite cannot
 * map it. Free `m` with lvm_map_free. */
int lvm_map_init(struct gdev *out, struct lvm_map *m, const struct lvm_set *s,
		 const struct lvm_vg *vg, const struct lvm_lv *lv, const struct gdev *disk,
		 bool write);
void lvm_map_free(struct lvm_map *m);

#endif
