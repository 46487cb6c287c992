/* The LVM2 volume groups of a disk: PV labels found on its partitions, each volume group built
 * from the newest copy of its metadata (the highest seqno), and its PVs matched by UUID to
 * where they were found. */
#include "guestfs/lvm.h"
#include "util/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void lvm_free(struct lvm_set *s)
{
	for (size_t i = 0; i < s->nvgs; i++)
		lvm_vg_free(&s->vgs[i]);
	free(s->vgs);
	free(s->pvs);
	memset(s, 0, sizeof(*s));
}

static int add_pv(struct lvm_set *s, const struct lvm_place *pl, const char *uuid)
{
	struct lvm_pv *n = realloc(s->pvs, (s->npvs + 1) * sizeof(*n));
	if (!n)
		return kite_error("out of memory");
	s->pvs = n;
	struct lvm_pv *pv = &s->pvs[s->npvs++];
	memset(pv, 0, sizeof(*pv));
	snprintf(pv->uuid, sizeof(pv->uuid), "%s", uuid);
	snprintf(pv->device, sizeof(pv->device), "%s", pl->name);
	pv->start = pl->start;
	pv->size = pl->size;
	pv->vg = -1;
	return 0;
}

/* Keeps `vg` if it is the first or the newest copy of its volume group's metadata. */
static int keep_newest(struct lvm_set *s, struct lvm_vg *vg)
{
	for (size_t i = 0; i < s->nvgs; i++) {
		if (strcmp(s->vgs[i].uuid, vg->uuid))
			continue;
		if (vg->seqno > s->vgs[i].seqno) {
			lvm_vg_free(&s->vgs[i]);
			s->vgs[i] = *vg;
		} else {
			lvm_vg_free(vg);
		}
		return 0;
	}
	struct lvm_vg *n = realloc(s->vgs, (s->nvgs + 1) * sizeof(*n));
	if (!n) {
		lvm_vg_free(vg);
		return kite_error("out of memory");
	}
	s->vgs = n;
	s->vgs[s->nvgs++] = *vg;
	return 0;
}

/* Reads one place's label and every copy of the metadata it holds. */
static int scan_place(struct lvm_set *s, const struct gdev *disk, const struct lvm_place *pl)
{
	struct gdev dev;
	struct gdev_window win;
	struct lvm_pv_label label;
	if (gdev_window_init(&dev, &win, disk, pl->start, pl->size) < 0)
		return 0; /* the partition table's problem, reported there */
	int r = lvm_pv_read(&dev, pl->name, &label);
	if (r <= 0) {
		s->failed |= r < 0;
		return 0;
	}
	for (size_t i = 0; i < s->npvs; i++) {
		if (!strcmp(s->pvs[i].uuid, label.uuid)) {
			char uuid[39];
			lvm_uuid_dashed(label.uuid, uuid);
			kite_error("%s and %s hold the same LVM2 physical volume (UUID %s): kite "
				   "cannot tell which to use",
				   s->pvs[i].device, pl->name, uuid);
			s->failed = true;
			lvm_pv_free(&label);
			return 0;
		}
	}
	int ret = add_pv(s, pl, label.uuid);
	char what[64];
	snprintf(what, sizeof(what), "%s: LVM2 metadata", pl->name);
	for (size_t i = 0; i < label.ntexts && !ret; i++) {
		struct lvm_vg vg;
		if (lvm_vg_from_text(&vg, label.text[i], label.text_len[i], what) < 0)
			s->failed = true;
		else
			ret = keep_newest(s, &vg);
	}
	lvm_pv_free(&label);
	return ret;
}

/* Every segment on a PV found here lies inside the partition it was found on. */
static int check_bounds(const struct lvm_set *s, const struct lvm_vg *vg)
{
	uint64_t ext = vg->extent_size * 512;
	for (size_t i = 0; i < vg->nlvs; i++) {
		const struct lvm_lv *lv = &vg->lvs[i];
		for (size_t j = 0; j < lv->nsegs; j++) {
			const struct lvm_seg *seg = &lv->segs[j];
			for (uint32_t t = 0; t < seg->stripes; t++) {
				const struct lvm_vg_pv *pv = &vg->pvs[seg->stripe[t].pv];
				if (pv->found < 0)
					continue;
				const struct lvm_pv *at = &s->pvs[pv->found];
				unsigned __int128 end =
				    (unsigned __int128)pv->pe_start * 512 +
				    (unsigned __int128)(seg->stripe[t].pe +
							seg->count / seg->stripes) *
					ext;
				if (end > at->size)
					return kite_error(
					    "volume group %s: logical volume %s: extents %llu.. of "
					    "%s lie beyond the end of %s",
					    vg->name, lv->name,
					    (unsigned long long)seg->stripe[t].pe, pv->name,
					    at->device);
			}
		}
	}
	return 0;
}

/* Matches the volume group's PVs to the labels found; returns -1 (reported) if the group
 * cannot be used. */
static int match_pvs(struct lvm_set *s, size_t v)
{
	struct lvm_vg *vg = &s->vgs[v];
	for (size_t i = 0; i < v; i++)
		if (!strcmp(s->vgs[i].name, vg->name))
			return kite_error("two volume groups are named %s (UUIDs %s and %s)",
					  vg->name, s->vgs[i].uuid, vg->uuid);
	for (size_t i = 0; i < vg->npvs; i++) {
		struct lvm_vg_pv *pv = &vg->pvs[i];
		for (size_t j = 0; j < s->npvs && !pv->missing; j++) {
			if (strcmp(s->pvs[j].uuid, pv->uuid))
				continue;
			if (s->pvs[j].vg >= 0 && (size_t)s->pvs[j].vg != v)
				return kite_error("%s belongs to both volume groups %s and %s",
						  s->pvs[j].device, s->vgs[s->pvs[j].vg].name,
						  vg->name);
			s->pvs[j].vg = (int)v;
			pv->found = (int)j;
		}
	}
	return check_bounds(s, vg);
}

static void drop_vg(struct lvm_set *s, size_t v)
{
	for (size_t j = 0; j < s->npvs; j++) {
		if (s->pvs[j].vg == (int)v)
			s->pvs[j].vg = -1;
		else if (s->pvs[j].vg > (int)v)
			s->pvs[j].vg--;
	}
	lvm_vg_free(&s->vgs[v]);
	memmove(&s->vgs[v], &s->vgs[v + 1], (s->nvgs - v - 1) * sizeof(*s->vgs));
	s->nvgs--;
}

int lvm_scan(struct lvm_set *s, const struct gdev *disk, const struct lvm_place *places,
	     size_t nplaces)
{
	memset(s, 0, sizeof(*s));
	for (size_t i = 0; i < nplaces; i++) {
		if (scan_place(s, disk, &places[i]) < 0) {
			lvm_free(s);
			return -1;
		}
	}
	for (size_t v = 0; v < s->nvgs;) {
		if (match_pvs(s, v) < 0) {
			s->failed = true;
			drop_vg(s, v);
		} else {
			v++;
		}
	}
	return 0;
}

void lvm_lv_path(const struct lvm_vg *vg, const struct lvm_lv *lv, char *out, size_t outsz)
{
	snprintf(out, outsz, "/dev/%s/%s", vg->name, lv->name);
}

static size_t put_doubled(char *out, size_t o, size_t outsz, const char *name)
{
	for (const char *p = name; *p && o + 2 < outsz; p++) {
		out[o++] = *p;
		if (*p == '-')
			out[o++] = '-';
	}
	return o;
}

void lvm_lv_mapper_path(const struct lvm_vg *vg, const struct lvm_lv *lv, char *out, size_t outsz)
{
	size_t o = (size_t)snprintf(out, outsz, "/dev/mapper/");
	o = put_doubled(out, o, outsz, vg->name);
	if (o + 1 < outsz)
		out[o++] = '-';
	o = put_doubled(out, o, outsz, lv->name);
	out[o < outsz ? o : outsz - 1] = 0;
}

void lvm_uuid_dashed(const char *raw, char out[39])
{
	static const int groups[] = {6, 4, 4, 4, 4, 4, 6};
	size_t o = 0, r = 0;
	for (size_t g = 0; g < 7; g++) {
		for (int i = 0; i < groups[g] && raw[r]; i++)
			out[o++] = raw[r++];
		if (g < 6)
			out[o++] = '-';
	}
	out[o] = 0;
}

uint64_t lvm_lv_size(const struct lvm_vg *vg, const struct lvm_lv *lv)
{
	return lv->extents * vg->extent_size * 512;
}

const char *lvm_lv_kind(const struct lvm_lv *lv)
{
	if (lv->unmapped[0])
		return lv->unmapped;
	return lv->linear ? "linear" : "striped";
}
