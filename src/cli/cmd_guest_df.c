/* kite guest df: virt-df's report of every filesystem kite can read in an image (each
 * partition's or the whole disk's, and each LVM2 logical volume's), or of the one -a names;
 * -h, -i, --csv as virt-df. */
#include "cli/cmd_guest.h"
#include "guestfs/fsdetect.h"
#include "guestfs/image.h"
#include "guestfs/volume.h"
#include "util/err.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

struct df_row {
	uint64_t total, used, avail; /* bytes */
	uint64_t inodes, iused, ifree;
};

enum df_style { DF_BLOCKS, DF_HUMAN, DF_INODES };

static void human(uint64_t bytes, char *out, size_t outsz)
{
	static const char units[] = "KMGTPE";
	double v = (double)bytes;
	int u = -1;
	while (v >= 1024 && u < 5) {
		v /= 1024;
		u++;
	}
	if (u < 0)
		snprintf(out, outsz, "%" PRIu64, bytes);
	else
		snprintf(out, outsz, v < 10 ? "%.1f%c" : "%.0f%c", v, units[u]);
}

/* df's rounding: the share in use, rounded up */
static unsigned use_pct(uint64_t used, uint64_t avail)
{
	return used + avail ? (unsigned)((used * 100 + used + avail - 1) / (used + avail)) : 0;
}

static int measure(const struct vol_list *l, const struct volume *v, const struct gdev *disk,
		   struct df_row *r)
{
	struct gfs g;
	if (gfs_open_volume(&g, l, v, disk) < 0)
		return -1;
	struct ext2_super_block *sb = g.fs->super;
	uint64_t bs = g.fs->blocksize, total = ext2fs_blocks_count(sb);
	uint64_t freeb = ext2fs_free_blocks_count(sb), resv = ext2fs_r_blocks_count(sb);
	*r = (struct df_row){
	    .total = total * bs,
	    .used = (total - (freeb < total ? freeb : total)) * bs,
	    .avail = (freeb > resv ? freeb - resv : 0) * bs,
	    .inodes = sb->s_inodes_count,
	    .iused = sb->s_inodes_count - sb->s_free_inodes_count,
	    .ifree = sb->s_free_inodes_count,
	};
	gfs_close_volume(&g);
	return 0;
}

/* Does `v` hold a filesystem df reports? Swap, unknown and unsupported ones are not df's,
 * nor LVs kite cannot map. */
static bool df_worthy(const struct vol_list *l, const struct volume *v, const struct gdev *disk)
{
	char why[200];
	struct gdev d;
	struct vol_dev vd;
	struct fsinfo fi;
	if (v->kind == VOL_LV && lvm_lv_unreadable(&l->lvm, v->vg, v->lv, why, sizeof(why)))
		return false;
	if (vol_open(l, v, disk, false, &d, &vd) < 0)
		return false;
	bool yes = fs_detect(&d, &fi) == 0 && fi.supported;
	vol_close(&vd);
	return yes;
}

static void print_header(enum df_style st, bool csv)
{
	static const char *const cols[][4] = {
	    [DF_BLOCKS] = {"1K-blocks", "Used", "Available", "Use%"},
	    [DF_HUMAN] = {"Size", "Used", "Available", "Use%"},
	    [DF_INODES] = {"Inodes", "IUsed", "IFree", "IUse%"},
	};
	const char *const *h = cols[st];
	if (csv)
		printf("Virtual Machine,Filesystem,%s,%s,%s,%s\n", h[0], h[1], h[2], h[3]);
	else
		printf("%-36s%10s %10s %10s %5s\n", "Filesystem", h[0], h[1], h[2], h[3]);
}

static void print_row(const char *image, const char *dev, const struct df_row *r, enum df_style st,
		      bool csv)
{
	char v[3][32];
	unsigned pct;
	if (st == DF_INODES) {
		snprintf(v[0], sizeof(v[0]), "%" PRIu64, r->inodes);
		snprintf(v[1], sizeof(v[1]), "%" PRIu64, r->iused);
		snprintf(v[2], sizeof(v[2]), "%" PRIu64, r->ifree);
		pct = use_pct(r->iused, r->ifree);
	} else {
		const uint64_t b[3] = {r->total, r->used, r->avail};
		for (int i = 0; i < 3; i++) {
			if (st == DF_HUMAN && !csv)
				human(b[i], v[i], sizeof(v[i]));
			else
				snprintf(v[i], sizeof(v[i]), "%" PRIu64, b[i] / 1024);
		}
		pct = use_pct(r->used, r->avail);
	}
	if (csv) {
		printf("\"%s\",%s,%s,%s,%s,%u%%\n", image, dev, v[0], v[1], v[2], pct);
		return;
	}
	char name[512];
	snprintf(name, sizeof(name), "%s:%s", image, dev);
	if (strlen(name) > 36)
		printf("%s\n%36s", name, ""); /* as virt-df: a long name on a line of its own */
	else
		printf("%-36s", name);
	printf("%10s %10s %10s %4u%%\n", v[0], v[1], v[2], pct);
}

/* The rows of disk `i` of the verb's disks (`only_arg`: only the volume it names there). */
static int df_disk(const struct guest_common *c, int i, const char *only_arg, enum df_style st,
		   bool csv, const char *base, int *shown)
{
	const char *image = c->disks[i].path;
	struct gimage im;
	if (guest_open_disk(c, i, &im) < 0)
		return -1;
	struct vol_list l;
	if (vol_scan_disk(&l, &im.dev, !only_arg || vol_arg_is_lv(only_arg), i) < 0) {
		gimage_close(&im);
		return -1;
	}
	const struct volume *only = only_arg ? vol_find(&l, only_arg) : NULL;
	int rc = l.lvm.failed || (only_arg && !only), found = 0;
	for (size_t k = 0; k < l.count && !(only_arg && !only); k++) {
		const struct volume *v = &l.v[k];
		struct df_row r;
		if ((only && v != only) || !df_worthy(&l, v, &im.dev))
			continue;
		if (measure(&l, v, &im.dev, &r) < 0) {
			rc = 1;
			continue;
		}
		if (!(*shown)++)
			print_header(st, csv);
		found++;
		print_row(base, v->name, &r, st, csv);
	}
	if (!rc && only && !found)
		rc = kite_error("%s: no filesystem kite can read on %s", image, only->label);
	vol_list_free(&l);
	gimage_close(&im);
	return rc ? -1 : 0;
}

#define DF_USAGE "IMAGE [-a PARTITION] [-h] [-i] [--csv]"

int guest_df(int argc, char **argv)
{
	enum { OPT_CSV = 2000 };
	static const struct option longopts[] = {
	    GUEST_COMMON_LONG, {"csv", no_argument, NULL, OPT_CSV}, {NULL, 0, NULL, 0}};
	struct guest_common c = {0};
	enum df_style st = DF_BLOCKS;
	bool csv = false;
	int opt;
	while ((opt = getopt_long(argc, argv, GUEST_COMMON_SHORT "hi", longopts, NULL)) != -1) {
		if (guest_common_opt(&c, opt, optarg))
			continue;
		if (opt == 'h' && st != DF_INODES)
			st = DF_HUMAN;
		else if (opt == 'i')
			st = DF_INODES;
		else if (opt == OPT_CSV)
			csv = true;
		else
			return guest_usage_error("df", DF_USAGE);
	}
	if (guest_take_image(&c, argc, argv) < 0 || argc - optind != 0)
		return guest_usage_error("df", DF_USAGE);
	if (guest_resolve(&c, false) < 0)
		return 1;
	/* virt-df's first column: the image's file name, or the machine's name */
	const char *name = c.domain ? c.domain : c.image;
	const char *base = c.domain ? name : strrchr(name, '/') ? strrchr(name, '/') + 1 : name;
	char part[300];
	int want = -1, rc = 0, shown = 0;
	if (c.partition && (want = gfs_disks_pick(c.disks, c.ndisks, c.partition, c.share, part,
						  sizeof(part))) < 0)
		return 1;
	for (int i = 0; i < c.ndisks; i++)
		if ((want < 0 || want == i) &&
		    df_disk(&c, i, want < 0 ? NULL : part, st, csv, base, &shown) < 0)
			rc = 1;
	if (!rc && !shown)
		rc = kite_error("%s: no filesystem kite can read", name);
	return rc ? 1 : 0;
}
