/* Several disks of one machine (kite guest -d): which one holds the filesystem a verb works
 * on. The disks are guestfish's /dev/sda, /dev/sdb, ... in their order, and the default
 * choice is gfs_open's, made over all of them together. */
#include "guestfs/fs.h"
#include "guestfs/fsdetect.h"
#include "util/err.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

static int open_disk(struct gimage *im, const struct gfs_disk *d, bool share)
{
	return share ? gimage_open_shared(im, d->path, d->format)
		     : gimage_open(im, d->path, d->format, false);
}

/* "/dev/sdb3", "sdb3", "vdb", "hdb1": the disk's index (1), *rest the partition ("3", "");
 * -1 when `arg` names no disk by its letter. */
static int disk_letter(const char *arg, const char **rest)
{
	const char *p = arg;
	if (!strncmp(p, "/dev/", 5))
		p += 5;
	if ((p[0] == 's' || p[0] == 'v' || p[0] == 'h') && p[1] == 'd' && p[2] >= 'a' &&
	    p[2] <= 'z' && (!p[3] || isdigit((unsigned char)p[3]))) {
		*rest = p + 3;
		return p[2] - 'a';
	}
	return -1;
}

/* The -a argument that names `v` on its own disk. */
static void volume_arg(const struct volume *v, char *part, size_t partsz)
{
	if (v->kind == VOL_PART)
		snprintf(part, partsz, "%d", v->part->number);
	else if (v->kind == VOL_LV)
		snprintf(part, partsz, "%s", v->name);
	else
		snprintf(part, partsz, "0"); /* the whole disk */
}

static int find_lv(const struct gfs_disk *disks, int n, const char *arg, bool share, char *part,
		   size_t partsz)
{
	for (int i = 0; i < n; i++) {
		struct gimage im;
		struct vol_list l;
		if (open_disk(&im, &disks[i], share) < 0)
			return -1;
		bool found = false;
		if (vol_scan_disk(&l, &im.dev, true, i) == 0) {
			for (size_t k = 0; k < l.count && !found; k++)
				found = l.v[k].kind == VOL_LV && vol_names_lv(&l.v[k], arg);
			vol_list_free(&l);
		}
		gimage_close(&im);
		if (found) {
			snprintf(part, partsz, "%s", arg);
			return i;
		}
	}
	return kite_error("no logical volume %s on the machine's disks (see 'kite guest "
			  "filesystems')",
			  arg);
}

struct pick {
	int count;		/* ext2/3/4 filesystems seen */
	int best_disk, os_disk; /* the largest; the first holding os-release (-1: none) */
	uint64_t best_size;
	char best[300], os[300];
};

static void survey_volume(struct pick *p, int disk, const struct vol_list *l,
			  const struct volume *v, const struct gdev *dev)
{
	char why[200];
	struct gdev d;
	struct vol_dev vd;
	struct fsinfo fi;
	if (v->kind == VOL_LV && lvm_lv_unreadable(&l->lvm, v->vg, v->lv, why, sizeof(why)))
		return;
	if (vol_open(l, v, dev, false, &d, &vd) < 0)
		return; /* reported; a broken entry does not hide the others */
	bool ext = fs_detect(&d, &fi) == 0 && fi.supported;
	vol_close(&vd);
	if (!ext)
		return;
	p->count++;
	if (p->best_disk < 0 || v->size > p->best_size) {
		p->best_disk = disk;
		p->best_size = v->size;
		volume_arg(v, p->best, sizeof(p->best));
	}
	struct gfs g;
	ext2_ino_t ino;
	int err;
	if (p->os_disk >= 0 || gfs_open_volume(&g, l, v, dev) < 0)
		return;
	if (gfs_lookup_q(&g, "/etc/os-release", false, &ino, &err) == 0 ||
	    gfs_lookup_q(&g, "/usr/lib/os-release", false, &ino, &err) == 0) {
		p->os_disk = disk;
		volume_arg(v, p->os, sizeof(p->os));
	}
	gfs_close_volume(&g);
}

static int survey_disk(struct pick *p, const struct gfs_disk *d, int index, bool share)
{
	struct gimage im;
	struct vol_list l;
	if (open_disk(&im, d, share) < 0)
		return -1;
	if (vol_scan_disk(&l, &im.dev, true, index) < 0) {
		gimage_close(&im);
		return -1;
	}
	int r = 0;
	if (l.lvm.failed)
		r = kite_error("the LVM2 metadata of %s (/dev/sd%c) cannot be read (see above): "
			       "name the filesystem with -a",
			       d->path, 'a' + index);
	for (size_t k = 0; k < l.count && !r; k++)
		survey_volume(p, index, &l, &l.v[k], &im.dev);
	vol_list_free(&l);
	gimage_close(&im);
	return r;
}

static int pick_default(const struct gfs_disk *disks, int n, bool share, char *part, size_t partsz)
{
	struct pick p = {.best_disk = -1, .os_disk = -1};
	for (int i = 0; i < n; i++)
		if (survey_disk(&p, &disks[i], i, share) < 0)
			return -1;
	if (p.count > 1 && p.os_disk >= 0) {
		snprintf(part, partsz, "%s", p.os);
		return p.os_disk;
	}
	if (p.best_disk < 0)
		return kite_error("no partition or logical volume of the machine's %d disks holds "
				  "an ext2/3/4 filesystem (see 'kite guest filesystems')",
				  n);
	snprintf(part, partsz, "%s", p.best);
	return p.best_disk;
}

int gfs_disks_pick(const struct gfs_disk *disks, int n, const char *arg, bool share, char *part,
		   size_t partsz)
{
	part[0] = '\0';
	if (n <= 0)
		return kite_error("the machine has no disks");
	if (n == 1) { /* an IMAGE: -a as it always was ("sdb3" is its partition 3) */
		snprintf(part, partsz, "%s", arg ? arg : "");
		return 0;
	}
	const char *rest;
	int index = arg && !vol_arg_is_lv(arg) ? disk_letter(arg, &rest) : -1;
	if (index >= n)
		return kite_error("-a %s: there is no disk /dev/sd%c (the machine has %d)", arg,
				  'a' + index, n);
	if (index >= 0) {
		snprintf(part, partsz, "%s", rest[0] ? rest : "0");
		return index;
	}
	if (arg && !vol_arg_is_lv(arg)) { /* "3": the first disk's partition 3 */
		snprintf(part, partsz, "%s", arg ? arg : "");
		return 0;
	}
	if (arg)
		return find_lv(disks, n, arg, share, part, partsz);
	return pick_default(disks, n, share, part, partsz);
}
