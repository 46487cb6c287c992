/* kite guest partitions / filesystems: what the disk holds, LVM2 volume groups included. */
#include "cli/cmd_guest.h"
#include "guestfs/fsdetect.h"
#include "guestfs/image.h"
#include "guestfs/partition.h"
#include "guestfs/volume.h"
#include "util/err.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

static const char *kind_name(enum part_kind k)
{
	switch (k) {
	case PART_PRIMARY:
		return "primary";
	case PART_EXTENDED:
		return "extended";
	case PART_LOGICAL:
		return "logical";
	default:
		return "gpt";
	}
}

/* Parses IMAGE|-d DOMAIN [--output=json|text] [--format FMT] [--ro] [-U], and resolves the
 * disks. Returns 0, or the exit code. */
static int parse(int argc, char **argv, const char *verb, struct guest_common *c, bool *json)
{
	static const struct option longopts[] = {
	    GUEST_COMMON_LONG,
	    {"output", required_argument, NULL, 'o'},
	    {NULL, 0, NULL, 0},
	};
	int opt;
	*json = false;
	while ((opt = getopt_long(argc, argv, "d:U", longopts, NULL)) != -1) {
		if (opt == 'o' && (!strcmp(optarg, "json") || !strcmp(optarg, "text"))) {
			*json = !strcmp(optarg, "json");
		} else if (!guest_common_opt(c, opt, optarg)) {
			if (opt == 'o')
				kite_error("--output takes json or text, not '%s'", optarg);
			return guest_usage_error(verb, "IMAGE [--output=json]");
		}
	}
	if (guest_take_image(c, argc, argv) < 0 || argc - optind != 0)
		return guest_usage_error(verb, "IMAGE [--output=json]");
	return guest_resolve(c, false) < 0 ? 1 : 0;
}

static json_t *part_json(const struct part *p)
{
	json_t *o = json_object();
	json_object_set_new(o, "number", json_integer(p->number));
	json_object_set_new(o, "kind", json_string(kind_name(p->kind)));
	json_object_set_new(o, "start", json_integer((json_int_t)p->start));
	json_object_set_new(o, "end", json_integer((json_int_t)(p->start + p->size - 1)));
	json_object_set_new(o, "size", json_integer((json_int_t)p->size));
	if (p->kind == PART_GPT) {
		json_object_set_new(o, "type", json_string(p->type_guid));
		json_object_set_new(o, "uuid", json_string(p->uuid));
		json_object_set_new(o, "name", json_string(p->name));
	} else {
		char t[8];
		snprintf(t, sizeof(t), "0x%02x", p->mbr_type);
		json_object_set_new(o, "type", json_string(t));
		json_object_set_new(o, "bootable", json_boolean(p->bootable));
	}
	const char *tn = part_type_name(p);
	json_object_set_new(o, "type_name", tn ? json_string(tn) : json_null());
	return o;
}

static int print_json(json_t *root)
{
	char *s = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(root);
	if (!s)
		return kite_error("out of memory");
	puts(s);
	free(s);
	return 0;
}

static json_t *lv_json(const struct lvm_vg *vg, const struct lvm_lv *lv)
{
	char path[300];
	json_t *o = json_object(), *segs = json_array();
	lvm_lv_path(vg, lv, path, sizeof(path));
	json_object_set_new(o, "name", json_string(lv->name));
	json_object_set_new(o, "device", json_string(path));
	json_object_set_new(o, "uuid", json_string(lv->uuid));
	json_object_set_new(o, "size", json_integer((json_int_t)lvm_lv_size(vg, lv)));
	json_object_set_new(o, "kind", json_string(lvm_lv_kind(lv)));
	json_object_set_new(o, "visible", json_boolean(lv->visible));
	for (size_t i = 0; i < lv->nsegs; i++) {
		const struct lvm_seg *sg = &lv->segs[i];
		json_t *so = json_object(), *stripes = json_array();
		json_object_set_new(so, "start_extent", json_integer((json_int_t)sg->start));
		json_object_set_new(so, "extent_count", json_integer((json_int_t)sg->count));
		json_object_set_new(so, "type", json_string(sg->type));
		if (sg->stripes > 1)
			json_object_set_new(so, "stripe_size",
					    json_integer((json_int_t)sg->stripe_size * 512));
		for (uint32_t t = 0; t < sg->stripes; t++) {
			json_t *st = json_object();
			json_object_set_new(st, "pv", json_string(vg->pvs[sg->stripe[t].pv].name));
			json_object_set_new(st, "pe", json_integer((json_int_t)sg->stripe[t].pe));
			json_array_append_new(stripes, st);
		}
		json_object_set_new(so, "stripes", stripes);
		json_array_append_new(segs, so);
	}
	json_object_set_new(o, "segments", segs);
	return o;
}

static json_t *vg_json(const struct lvm_set *s, const struct lvm_vg *vg)
{
	json_t *o = json_object(), *pvs = json_array(), *lvs = json_array();
	json_object_set_new(o, "name", json_string(vg->name));
	json_object_set_new(o, "uuid", json_string(vg->uuid));
	json_object_set_new(o, "seqno", json_integer((json_int_t)vg->seqno));
	json_object_set_new(o, "extent_size", json_integer((json_int_t)vg->extent_size * 512));
	for (size_t i = 0; i < vg->npvs; i++) {
		const struct lvm_vg_pv *pv = &vg->pvs[i];
		json_t *po = json_object();
		char uuid[39];
		lvm_uuid_dashed(pv->uuid, uuid);
		json_object_set_new(po, "name", json_string(pv->name));
		json_object_set_new(po, "uuid", json_string(uuid));
		json_object_set_new(po, "device",
				    pv->found >= 0 ? json_string(s->pvs[pv->found].device)
						   : json_null());
		json_object_set_new(po, "pe_start", json_integer((json_int_t)pv->pe_start * 512));
		json_object_set_new(po, "pe_count", json_integer((json_int_t)pv->pe_count));
		json_array_append_new(pvs, po);
	}
	for (size_t i = 0; i < vg->nlvs; i++)
		json_array_append_new(lvs, lv_json(vg, &vg->lvs[i]));
	json_object_set_new(o, "physical_volumes", pvs);
	json_object_set_new(o, "logical_volumes", lvs);
	return o;
}

static void print_vgs(const struct lvm_set *s)
{
	for (size_t i = 0; i < s->nvgs; i++) {
		const struct lvm_vg *vg = &s->vgs[i];
		printf("\nvolume group %s: extents of %" PRIu64 " bytes, physical volumes:",
		       vg->name, vg->extent_size * 512);
		for (size_t j = 0; j < vg->npvs; j++)
			printf(" %s", vg->pvs[j].found >= 0 ? s->pvs[vg->pvs[j].found].device
							    : "(missing)");
		printf("\n");
		if (vg->nlvs)
			printf("%-36s %14s %5s  %s\n", "LV", "SIZE", "SEGS", "TYPE");
		for (size_t j = 0; j < vg->nlvs; j++) {
			const struct lvm_lv *lv = &vg->lvs[j];
			char path[300];
			lvm_lv_path(vg, lv, path, sizeof(path));
			printf("%-36s %14" PRIu64 " %5zu  %s%s\n", path, lvm_lv_size(vg, lv),
			       lv->nsegs, lvm_lv_kind(lv), lv->visible ? "" : " (hidden)");
		}
	}
}

/* The table of one disk: JSON, or text. Returns the exit code's share (1: a volume group
 * could not be read). */
static int partitions_of(const struct guest_common *c, int i, bool json, json_t *all)
{
	struct gimage im;
	if (guest_open_disk(c, i, &im) < 0)
		return -1;
	struct vol_list l;
	if (vol_scan_disk(&l, &im.dev, true, i) < 0) {
		gimage_close(&im);
		return -1;
	}
	const struct part_table *t = &l.parts;
	if (json) {
		json_t *root = json_object(), *arr = json_array(), *vgs = json_array();
		if (c->ndisks > 1) {
			char dev[16];
			snprintf(dev, sizeof(dev), "/dev/sd%c", 'a' + i);
			json_object_set_new(root, "device", json_string(dev));
			json_object_set_new(root, "path", json_string(c->disks[i].path));
		}
		json_object_set_new(root, "scheme", json_string(t->scheme));
		json_object_set_new(root, "sector_size", json_integer(t->sector_size));
		json_object_set_new(root, "size", json_integer((json_int_t)im.dev.size));
		if (!strcmp(t->scheme, "gpt"))
			json_object_set_new(root, "disk_guid", json_string(t->disk_guid));
		for (size_t k = 0; k < t->count; k++)
			json_array_append_new(arr, part_json(&t->parts[k]));
		json_object_set_new(root, "partitions", arr);
		for (size_t k = 0; k < l.lvm.nvgs; k++)
			json_array_append_new(vgs, vg_json(&l.lvm, &l.lvm.vgs[k]));
		json_object_set_new(root, "volume_groups", vgs);
		if (all)
			json_array_append_new(all, root);
		else
			print_json(root);
	} else {
		if (c->ndisks > 1)
			printf("%s/dev/sd%c: %s\n", i ? "\n" : "", 'a' + i, c->disks[i].path);
		printf("scheme: %s\n", t->scheme);
		if (t->count)
			printf("%-4s %-9s %14s %14s %14s  %s\n", "NUM", "KIND", "START", "END",
			       "SIZE", "TYPE");
		for (size_t k = 0; k < t->count; k++) {
			const struct part *p = &t->parts[k];
			const char *tn = part_type_name(p);
			char type[64];
			if (p->kind == PART_GPT)
				snprintf(type, sizeof(type), "%s", tn ? tn : p->type_guid);
			else
				snprintf(type, sizeof(type), "%02x %s", p->mbr_type, tn ? tn : "");
			printf("%-4d %-9s %14" PRIu64 " %14" PRIu64 " %14" PRIu64 "  %s%s%s\n",
			       p->number, kind_name(p->kind), p->start, p->start + p->size - 1,
			       p->size, type, p->name[0] ? "  " : "", p->name);
		}
		print_vgs(&l.lvm);
	}
	int rc = l.lvm.failed;
	vol_list_free(&l);
	return gimage_close(&im) < 0 ? -1 : rc;
}

/* With several disks (-d), one table per disk (a JSON list of them). */
int guest_partitions(int argc, char **argv)
{
	struct guest_common c = {0};
	bool json;
	int rc = parse(argc, argv, "partitions", &c, &json);
	if (rc)
		return rc;
	json_t *all = json && c.ndisks > 1 ? json_array() : NULL;
	for (int i = 0; i < c.ndisks; i++) {
		int r = partitions_of(&c, i, json, all);
		if (r < 0) {
			json_decref(all);
			return 1;
		}
		rc |= r;
	}
	if (all)
		print_json(all);
	return rc;
}

static json_t *fs_json(const struct volume *v, const struct fsinfo *fi, const char *why)
{
	json_t *o = json_object();
	json_object_set_new(o, "device", json_string(v->name));
	json_object_set_new(o, "partition",
			    v->kind == VOL_LV ? json_null()
					      : json_integer(v->part ? v->part->number : 0));
	if (v->kind == VOL_LV) {
		json_object_set_new(o, "vg", json_string(v->vg->name));
		json_object_set_new(o, "lv", json_string(v->lv->name));
		json_object_set_new(o, "lv_kind", json_string(lvm_lv_kind(v->lv)));
	}
	json_object_set_new(o, "type", json_string(fi->type));
	json_object_set_new(o, "supported", json_boolean(fi->supported));
	json_object_set_new(o, "label", json_string(fi->label));
	json_object_set_new(o, "uuid", json_string(fi->uuid));
	json_object_set_new(o, "size", json_integer((json_int_t)fi->size));
	json_object_set_new(o, "partition_size", json_integer((json_int_t)v->size));
	if (why)
		json_object_set_new(o, "error", json_string(why));
	return o;
}

/* What `v` holds; `why` says why an LV cannot be read (and it then holds "unknown"). */
static int detect(const struct vol_list *l, const struct volume *v, const struct gdev *disk,
		  struct fsinfo *fi, char *why, size_t whysz)
{
	struct gdev d;
	struct vol_dev vd;
	why[0] = 0;
	if (v->kind == VOL_LV && lvm_lv_unreadable(&l->lvm, v->vg, v->lv, why, whysz)) {
		memset(fi, 0, sizeof(*fi));
		strcpy(fi->type, "unknown");
		return 0;
	}
	if (vol_open(l, v, disk, false, &d, &vd) < 0)
		return -1;
	int r = fs_detect(&d, fi);
	vol_close(&vd);
	return r;
}

static int filesystems_of(const struct guest_common *c, int i, bool json, json_t *arr)
{
	struct gimage im;
	if (guest_open_disk(c, i, &im) < 0)
		return -1;
	struct vol_list l;
	if (vol_scan_disk(&l, &im.dev, true, i) < 0) {
		gimage_close(&im);
		return -1;
	}
	int rc = l.lvm.failed;
	for (size_t k = 0; k < l.count; k++) {
		const struct volume *v = &l.v[k];
		struct fsinfo fi;
		char why[200];
		if (detect(&l, v, &im.dev, &fi, why, sizeof(why)) < 0) {
			rc = 1;
			continue;
		}
		if (json) {
			json_array_append_new(arr, fs_json(v, &fi, why[0] ? why : NULL));
		} else if (why[0]) {
			printf("%-10s %-12s %-16s %-36s %14s  (%s)\n", v->name, "-", "-", "-", "-",
			       why);
		} else {
			printf("%-10s %-12s %-16s %-36s %14" PRIu64 "%s\n", v->name, fi.type,
			       fi.label[0] ? fi.label : "-", fi.uuid[0] ? fi.uuid : "-", fi.size,
			       fi.supported || !strcmp(fi.type, "unknown") ||
				       !strcmp(fi.type, "swap") || !strcmp(fi.type, "vfat")
				   ? ""
				   : "  (unsupported)");
		}
	}
	vol_list_free(&l);
	if (gimage_close(&im) < 0)
		rc = 1;
	return rc;
}

/* One list over all the disks: their devices are /dev/sda..., /dev/sdb... */
int guest_filesystems(int argc, char **argv)
{
	struct guest_common c = {0};
	bool json;
	int rc = parse(argc, argv, "filesystems", &c, &json);
	if (rc)
		return rc;
	json_t *arr = json_array();
	if (!json)
		printf("%-10s %-12s %-16s %-36s %14s\n", "DEVICE", "TYPE", "LABEL", "UUID", "SIZE");
	for (int i = 0; i < c.ndisks; i++)
		if (filesystems_of(&c, i, json, arr))
			rc = 1;
	if (json)
		print_json(arr);
	else
		json_decref(arr);
	return rc;
}
