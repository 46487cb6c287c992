#include "guestfs/lvm_dev.h"
#include "util/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SECTOR 512u

bool lvm_lv_unreadable(const struct lvm_set *s, const struct lvm_vg *vg, const struct lvm_lv *lv,
		       char *why, size_t whysz)
{
	if (!strncmp(lv->unmapped, "stacked", 7)) {
		snprintf(why, whysz,
			 "it is %s, a pvmove in progress?: kite maps only segments on "
			 "physical volumes",
			 lv->unmapped);
		return true;
	}
	if (lv->unmapped[0]) {
		snprintf(why, whysz, "it is a %s LV: kite maps only linear and striped LVs",
			 lv->unmapped);
		return true;
	}
	for (size_t i = 0; i < lv->nsegs; i++) {
		for (uint32_t t = 0; t < lv->segs[i].stripes; t++) {
			const struct lvm_vg_pv *pv = &vg->pvs[lv->segs[i].stripe[t].pv];
			if (pv->found < 0 || (size_t)pv->found >= s->npvs) {
				char uuid[39];
				lvm_uuid_dashed(pv->uuid, uuid);
				snprintf(why, whysz,
					 "its physical volume %s (UUID %s) is %s on this disk",
					 pv->name, uuid, pv->missing ? "marked missing" : "not");
				return true;
			}
		}
	}
	return false;
}

bool lvm_lv_unwritable(const struct lvm_vg *vg, const struct lvm_lv *lv, char *why, size_t whysz)
{
	const char *r = NULL;
	if (!lv->linear)
		r = "it is striped: kite writes only to linear LVs";
	else if (!vg->writable)
		r = "its volume group is read-only";
	else if (!lv->writable)
		r = "the LV is read-only (its status lacks WRITE)";
	else if (lv->snapshot_origin)
		r = "it is the origin of a snapshot, which kite would not update";
	if (r)
		snprintf(why, whysz, "%s", r);
	return r != NULL;
}

/* The segment holding byte `off` of the LV (segments are in order, without gaps). */
static const struct lvm_map_seg *find_seg(const struct lvm_map *m, uint64_t off)
{
	size_t lo = 0, hi = m->nsegs;
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		if (m->segs[mid].start <= off)
			lo = mid;
		else
			hi = mid;
	}
	return &m->segs[lo];
}

/* Where byte `off` of the LV is on the disk, and how many bytes from there stay contiguous. */
static uint64_t locate(const struct lvm_map *m, uint64_t off, uint64_t *run)
{
	const struct lvm_map_seg *s = find_seg(m, off);
	uint64_t in = off - s->start, chunk = in / s->chunk, within = in % s->chunk;
	uint64_t left = s->len - in;
	*run = s->chunk - within < left ? s->chunk - within : left;
	return s->area[chunk % s->stripes] + chunk / s->stripes * s->chunk + within;
}

static int map_pread(void *opaque, void *buf, size_t len, uint64_t off)
{
	struct lvm_map *m = opaque;
	while (len) {
		uint64_t run, at = locate(m, off, &run);
		size_t n = run < len ? (size_t)run : len;
		if (gdev_read(m->disk, buf, n, at) < 0)
			return -1;
		buf = (char *)buf + n;
		off += n;
		len -= n;
	}
	return 0;
}

static int map_pwrite(void *opaque, const void *buf, size_t len, uint64_t off)
{
	struct lvm_map *m = opaque;
	while (len) {
		uint64_t run, at = locate(m, off, &run);
		size_t n = run < len ? (size_t)run : len;
		if (gdev_write(m->disk, buf, n, at) < 0)
			return -1;
		buf = (const char *)buf + n;
		off += n;
		len -= n;
	}
	return 0;
}

static int map_flush(void *opaque)
{
	struct lvm_map *m = opaque;
	return m->disk->flush ? m->disk->flush(m->disk->opaque) : 0;
}

void lvm_map_free(struct lvm_map *m)
{
	for (size_t i = 0; i < m->nsegs; i++)
		free(m->segs[i].area);
	free(m->segs);
	memset(m, 0, sizeof(*m));
}

/* Each stripe's part of a segment, as disk offsets; lvm_scan checked they are inside the
 * disk. */
static int map_segment(struct lvm_map_seg *ms, const struct lvm_set *s, const struct lvm_vg *vg,
		       const struct lvm_seg *seg, const struct gdev *disk)
{
	uint64_t ext = vg->extent_size * SECTOR;
	ms->start = seg->start * ext;
	ms->len = seg->count * ext;
	ms->stripes = seg->stripes;
	ms->chunk = seg->stripes > 1 ? seg->stripe_size * SECTOR : ms->len;
	ms->area = calloc(seg->stripes, sizeof(*ms->area));
	if (!ms->area)
		return kite_error("out of memory");
	for (uint32_t t = 0; t < seg->stripes; t++) {
		const struct lvm_vg_pv *pv = &vg->pvs[seg->stripe[t].pv];
		const struct lvm_pv *at = &s->pvs[pv->found];
		ms->area[t] = at->start + pv->pe_start * SECTOR + seg->stripe[t].pe * ext;
		uint64_t part = ms->len / seg->stripes;
		if (ms->area[t] > disk->size || part > disk->size - ms->area[t])
			return kite_error("a segment lies beyond the end of the disk");
	}
	return 0;
}

int lvm_map_init(struct gdev *out, struct lvm_map *m, const struct lvm_set *s,
		 const struct lvm_vg *vg, const struct lvm_lv *lv, const struct gdev *disk,
		 bool write)
{
	char path[300], why[200];
	memset(m, 0, sizeof(*m));
	lvm_lv_path(vg, lv, path, sizeof(path));
	if (lvm_lv_unreadable(s, vg, lv, why, sizeof(why)))
		return kite_error("%s: %s", path, why);
	if (write && lvm_lv_unwritable(vg, lv, why, sizeof(why)))
		return kite_error("%s: refusing to write: %s", path, why);
	m->disk = disk;
	m->segs = calloc(lv->nsegs, sizeof(*m->segs));
	if (!m->segs)
		return kite_error("out of memory");
	for (size_t i = 0; i < lv->nsegs; i++) {
		m->nsegs++;
		if (map_segment(&m->segs[i], s, vg, &lv->segs[i], disk) < 0) {
			lvm_map_free(m);
			return -1;
		}
	}
	out->opaque = m;
	out->pread = map_pread;
	out->pwrite = write && disk->pwrite ? map_pwrite : NULL;
	out->flush = write && disk->pwrite ? map_flush : NULL;
	out->size = lvm_lv_size(vg, lv);
	return 0;
}
