/* LVM2 volume groups on a disk: the physical volumes found on its partitions (matched by
 * UUID), the newest copy of each volume group's text metadata, and its logical volumes with
 * their segments. A segment of type "striped" (one stripe: linear) is what kite maps; LVs
 * with other segment types (thin, raid, mirror, snapshot, cache, ...) are listed with that type
 * and refused when opened. Inconsistent metadata -- a segment beyond its PV, extents used
 * twice, segments with gaps or overlaps, counts that disagree -- makes the whole volume
 * group unreadable, with an error naming what is wrong. */
#ifndef KITE_GUESTFS_LVM_H
#define KITE_GUESTFS_LVM_H

#include "guestfs/dev.h"
#include "guestfs/lvm_pv.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LVM_NAME_MAX	127 /* lvm2's limit for VG and LV names */
#define LVM_MAX_PVS	1024
#define LVM_MAX_LVS	16384
#define LVM_MAX_SEGS	65536 /* per LV */
#define LVM_MAX_STRIPES 128

/* Where a PV may be: a partition (or the whole disk) as a window of the disk. */
struct lvm_place {
	char name[32]; /* "/dev/sda2" */
	uint64_t start, size;
};

/* A PV label found on the disk. */
struct lvm_pv {
	char uuid[LVM_UUID_LEN + 1];
	char device[32]; /* the place it was found */
	uint64_t start, size;
	int vg; /* index of the volume group that claims it, -1 for none */
};

struct lvm_stripe {
	size_t pv; /* index in its volume group's pvs */
	uint64_t pe;
};

struct lvm_seg {
	uint64_t start, count; /* logical extents */
	char type[32];
	uint32_t stripes;	   /* 0 for a type kite does not map */
	uint64_t stripe_size;	   /* sectors (striped, more than one stripe) */
	struct lvm_stripe *stripe; /* `stripes` entries */
};

struct lvm_lv {
	char name[LVM_NAME_MAX + 1];
	char uuid[40];
	bool visible;  /* lvs lists it (hidden ones are pieces of others) */
	bool writable; /* its status says WRITE */
	bool linear;   /* every segment is one stripe */
	bool snapshot_origin;
	char unmapped[64]; /* why kite cannot map it ("thin", "raid1", ...), "" if it can */
	uint64_t extents;
	size_t nsegs;
	struct lvm_seg *segs; /* in logical order, without gaps */
};

struct lvm_vg_pv {
	char name[LVM_NAME_MAX + 1]; /* its key in the metadata ("pv0") */
	char uuid[LVM_UUID_LEN + 1];
	uint64_t pe_start; /* sectors */
	uint64_t pe_count;
	bool missing; /* the metadata marks it MISSING */
	int found;    /* index in lvm_set.pvs, -1 if the PV is not on this disk */
};

struct lvm_vg {
	char name[LVM_NAME_MAX + 1];
	char uuid[40];
	uint64_t seqno;
	uint64_t extent_size; /* sectors */
	bool writable;
	size_t npvs, nlvs;
	struct lvm_vg_pv *pvs;
	struct lvm_lv *lvs;
};

struct lvm_set {
	size_t npvs, nvgs;
	struct lvm_pv *pvs;
	struct lvm_vg *vgs;
	bool failed; /* something could not be read (reported); the rest is here */
};

/* Reads the PVs at `places` on `disk` and builds their volume groups. Problems with one PV or
 * volume group are reported and set `failed`; the others are still read. Returns -1 only when
 * out of memory. Free with lvm_free. */
int lvm_scan(struct lvm_set *s, const struct gdev *disk, const struct lvm_place *places,
	     size_t nplaces);
void lvm_free(struct lvm_set *s);

/* Builds the volume group one metadata text describes (its PVs not yet matched to the disk:
 * `found` is -1). Returns -1 (reported, `what` naming where the text came from) if the text is
 * not consistent LVM2 metadata. */
int lvm_vg_from_text(struct lvm_vg *vg, const char *text, size_t len, const char *what);
void lvm_vg_free(struct lvm_vg *vg);

/* "/dev/VG/LV" and device-mapper's "/dev/mapper/VG-LV" (dashes in names doubled). */
void lvm_lv_path(const struct lvm_vg *vg, const struct lvm_lv *lv, char *out, size_t outsz);
void lvm_lv_mapper_path(const struct lvm_vg *vg, const struct lvm_lv *lv, char *out, size_t outsz);

/* A PV UUID as lvm2 prints it: "xxxxxx-xxxx-xxxx-xxxx-xxxx-xxxx-xxxxxx" (out: 39 bytes). */
void lvm_uuid_dashed(const char *raw, char out[39]);

/* The LV's size in bytes. */
uint64_t lvm_lv_size(const struct lvm_vg *vg, const struct lvm_lv *lv);

/* A word for what the LV's segments are: "linear", "striped", or the type kite cannot map. */
const char *lvm_lv_kind(const struct lvm_lv *lv);

#endif
