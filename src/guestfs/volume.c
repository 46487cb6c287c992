#include "guestfs/volume.h"
#include "util/err.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int add(struct vol_list *l, const struct volume *v)
{
	struct volume *n = realloc(l->v, (l->count + 1) * sizeof(*n));
	if (!n)
		return kite_error("out of memory");
	l->v = n;
	l->v[l->count++] = *v;
	return 0;
}

/* Where PVs may be: every partition but the extended container, or the whole disk. */
static int scan_lvm(struct vol_list *l, const struct gdev *disk, const char *dname)
{
	size_t n = l->parts.count ? l->parts.count : 1, k = 0;
	struct lvm_place *pl = calloc(n, sizeof(*pl));
	if (!pl)
		return kite_error("out of memory");
	for (size_t i = 0; i < l->parts.count; i++) {
		const struct part *p = &l->parts.parts[i];
		if (p->kind == PART_EXTENDED)
			continue;
		snprintf(pl[k].name, sizeof(pl[k].name), "%s%d", dname, p->number);
		pl[k].start = p->start;
		pl[k++].size = p->size;
	}
	if (!l->parts.count) {
		snprintf(pl[k].name, sizeof(pl[k].name), "%s", dname);
		pl[k++].size = disk->size;
	}
	int r = lvm_scan(&l->lvm, disk, pl, k);
	free(pl);
	return r;
}

static int add_lvs(struct vol_list *l)
{
	for (size_t i = 0; i < l->lvm.nvgs; i++) {
		const struct lvm_vg *vg = &l->lvm.vgs[i];
		for (size_t j = 0; j < vg->nlvs; j++) {
			const struct lvm_lv *lv = &vg->lvs[j];
			if (!lv->visible)
				continue;
			struct volume v = {.kind = VOL_LV, .vg = vg, .lv = lv};
			lvm_lv_path(vg, lv, v.name, sizeof(v.name));
			snprintf(v.label, sizeof(v.label), "%s", v.name);
			v.size = lvm_lv_size(vg, lv);
			if (add(l, &v) < 0)
				return -1;
		}
	}
	return 0;
}

int vol_scan(struct vol_list *l, const struct gdev *disk, bool lvm)
{
	return vol_scan_disk(l, disk, lvm, 0);
}

int vol_scan_disk(struct vol_list *l, const struct gdev *disk, bool lvm, int index)
{
	char dname[16];
	memset(l, 0, sizeof(*l));
	if (index < 0 || index > 25)
		return kite_error("disk %d: kite names 26 disks, /dev/sda to /dev/sdz", index + 1);
	snprintf(dname, sizeof(dname), "/dev/sd%c", 'a' + index);
	if (part_scan(disk, &l->parts) < 0)
		return -1;
	if (!l->parts.count) {
		struct volume v = {.kind = VOL_DISK, .size = disk->size};
		snprintf(v.name, sizeof(v.name), "%s", dname);
		strcpy(v.label, "the disk");
		if (add(l, &v) < 0)
			goto fail;
	}
	for (size_t i = 0; i < l->parts.count; i++) {
		const struct part *p = &l->parts.parts[i];
		if (p->kind == PART_EXTENDED)
			continue;
		struct volume v = {.kind = VOL_PART, .size = p->size, .part = p};
		snprintf(v.name, sizeof(v.name), "%s%d", dname, p->number);
		snprintf(v.label, sizeof(v.label), "partition %d", p->number);
		if (add(l, &v) < 0)
			goto fail;
	}
	if (lvm && (scan_lvm(l, disk, dname) < 0 || add_lvs(l) < 0))
		goto fail;
	return 0;
fail:
	vol_list_free(l);
	return -1;
}

void vol_list_free(struct vol_list *l)
{
	part_table_free(&l->parts);
	lvm_free(&l->lvm);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

bool vol_arg_is_lv(const char *arg)
{
	if (!strncmp(arg, "/dev/mapper/", 12))
		return true;
	if (!strncmp(arg, "/dev/", 5))
		arg += 5;
	return strchr(arg, '/') != NULL;
}

/* "3", "sda3", "/dev/sda3", "vda3" -> 3 */
static int parse_partition(const char *s)
{
	const char *p = s;
	if (!strncmp(p, "/dev/", 5))
		p += 5;
	if ((p[0] == 's' || p[0] == 'v' || p[0] == 'h') && p[1] == 'd' && p[2] >= 'a' &&
	    p[2] <= 'z')
		p += 3;
	char *end;
	errno = 0;
	long n = strtol(p, &end, 10);
	if (*p < '0' || *p > '9' || *end || errno || n < 0 || n > 100000)
		return kite_error("bad partition '%s' (expected a number such as 1 or /dev/sda1, "
				  "or a logical volume such as /dev/VG/LV)",
				  s);
	return (int)n;
}

static const struct volume *find_partition(const struct vol_list *l, const char *arg)
{
	int n = parse_partition(arg);
	if (n < 0)
		return NULL;
	if (n == 0 && !l->parts.count)
		return &l->v[0];
	if (!l->parts.count) {
		kite_error("the disk has no partition table: use the whole disk (omit -a)");
		return NULL;
	}
	if (n == 0) {
		kite_error("the disk is partitioned: choose a partition number");
		return NULL;
	}
	const struct part *p = part_find(&l->parts, n);
	if (!p) {
		kite_error("partition %d does not exist", n);
		return NULL;
	}
	if (p->kind == PART_EXTENDED) {
		kite_error("partition %d is an extended partition (it holds the logical "
			   "partitions 5 and up)",
			   n);
		return NULL;
	}
	for (size_t i = 0; i < l->count; i++)
		if (l->v[i].part == p)
			return &l->v[i];
	return NULL;
}

bool vol_names_lv(const struct volume *v, const char *arg)
{
	char mapper[600];
	const char *short_name = v->name + 5; /* "VG/LV" */
	lvm_lv_mapper_path(v->vg, v->lv, mapper, sizeof(mapper));
	return !strcmp(arg, v->name) || !strcmp(arg, short_name) || !strcmp(arg, mapper);
}

const struct volume *vol_find(const struct vol_list *l, const char *arg)
{
	if (!vol_arg_is_lv(arg))
		return find_partition(l, arg);
	for (size_t i = 0; i < l->count; i++)
		if (l->v[i].kind == VOL_LV && vol_names_lv(&l->v[i], arg))
			return &l->v[i];
	if (l->lvm.failed)
		kite_error("no logical volume %s: the disk's LVM2 metadata could not be read "
			   "(see above)",
			   arg);
	else
		kite_error("no logical volume %s on this disk (see 'kite guest filesystems')", arg);
	return NULL;
}

int vol_open(const struct vol_list *l, const struct volume *v, const struct gdev *disk, bool write,
	     struct gdev *out, struct vol_dev *state)
{
	memset(state, 0, sizeof(*state));
	switch (v->kind) {
	case VOL_LV:
		return lvm_map_init(out, &state->map, &l->lvm, v->vg, v->lv, disk, write);
	case VOL_PART:
		return gdev_window_init(out, &state->win, disk, v->part->start, v->part->size);
	default:
		return gdev_window_init(out, &state->win, disk, 0, disk->size);
	}
}

void vol_close(struct vol_dev *state)
{
	lvm_map_free(&state->map);
}
