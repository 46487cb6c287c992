/* kite guest partitions / filesystems: what the disk holds. */
#include "cli/cmd_guest.h"
#include "guestfs/fsdetect.h"
#include "guestfs/image.h"
#include "guestfs/partition.h"
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

/* Parses IMAGE [--output=json|text] [--format FMT]. */
static int parse(int argc, char **argv, const char *verb, const char **image, bool *json,
		 const char **format)
{
	static const struct option longopts[] = {
	    {"output", required_argument, NULL, 'o'},
	    {"format", required_argument, NULL, GUEST_OPT_FORMAT},
	    {NULL, 0, NULL, 0},
	};
	int opt;
	*json = false;
	*format = NULL;
	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (opt == 'o' && (!strcmp(optarg, "json") || !strcmp(optarg, "text"))) {
			*json = !strcmp(optarg, "json");
		} else if (opt == GUEST_OPT_FORMAT) {
			*format = optarg;
		} else {
			if (opt == 'o')
				kite_error("--output takes json or text, not '%s'", optarg);
			return guest_usage_error(verb, "IMAGE [--output=json]");
		}
	}
	if (argc - optind != 1)
		return guest_usage_error(verb, "IMAGE [--output=json]");
	*image = argv[optind];
	return 0;
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

int guest_partitions(int argc, char **argv)
{
	const char *image, *format;
	bool json;
	if (parse(argc, argv, "partitions", &image, &json, &format))
		return 1;
	struct gimage im;
	if (gimage_open(&im, image, format, false) < 0)
		return 1;
	struct part_table t;
	if (part_scan(&im.dev, &t) < 0) {
		gimage_close(&im);
		return 1;
	}
	if (json) {
		json_t *root = json_object(), *arr = json_array();
		json_object_set_new(root, "scheme", json_string(t.scheme));
		json_object_set_new(root, "sector_size", json_integer(t.sector_size));
		json_object_set_new(root, "size", json_integer((json_int_t)im.dev.size));
		if (!strcmp(t.scheme, "gpt"))
			json_object_set_new(root, "disk_guid", json_string(t.disk_guid));
		for (size_t i = 0; i < t.count; i++)
			json_array_append_new(arr, part_json(&t.parts[i]));
		json_object_set_new(root, "partitions", arr);
		print_json(root);
	} else {
		printf("scheme: %s\n", t.scheme);
		if (t.count)
			printf("%-4s %-9s %14s %14s %14s  %s\n", "NUM", "KIND", "START", "END",
			       "SIZE", "TYPE");
		for (size_t i = 0; i < t.count; i++) {
			const struct part *p = &t.parts[i];
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
	}
	part_table_free(&t);
	return gimage_close(&im) < 0 ? 1 : 0;
}

static json_t *fs_json(const char *device, int number, const struct fsinfo *fi, uint64_t psize)
{
	json_t *o = json_object();
	json_object_set_new(o, "device", json_string(device));
	json_object_set_new(o, "partition", json_integer(number));
	json_object_set_new(o, "type", json_string(fi->type));
	json_object_set_new(o, "supported", json_boolean(fi->supported));
	json_object_set_new(o, "label", json_string(fi->label));
	json_object_set_new(o, "uuid", json_string(fi->uuid));
	json_object_set_new(o, "size", json_integer((json_int_t)fi->size));
	json_object_set_new(o, "partition_size", json_integer((json_int_t)psize));
	return o;
}

int guest_filesystems(int argc, char **argv)
{
	const char *image, *format;
	bool json;
	if (parse(argc, argv, "filesystems", &image, &json, &format))
		return 1;
	struct gimage im;
	if (gimage_open(&im, image, format, false) < 0)
		return 1;
	struct part_table t;
	if (part_scan(&im.dev, &t) < 0) {
		gimage_close(&im);
		return 1;
	}
	int rc = 0;
	json_t *arr = json_array();
	if (!json)
		printf("%-10s %-12s %-16s %-36s %14s\n", "DEVICE", "TYPE", "LABEL", "UUID", "SIZE");
	size_t n = t.count ? t.count : 1;
	for (size_t i = 0; i < n; i++) {
		struct gdev dev;
		struct gdev_window win;
		struct fsinfo fi;
		char device[32];
		int number = 0;
		if (t.count) {
			const struct part *p = &t.parts[i];
			if (p->kind == PART_EXTENDED)
				continue;
			number = p->number;
			snprintf(device, sizeof(device), "/dev/sda%d", number);
			if (gdev_window_init(&dev, &win, &im.dev, p->start, p->size) < 0) {
				rc = 1;
				continue;
			}
		} else {
			snprintf(device, sizeof(device), "/dev/sda");
			gdev_window_init(&dev, &win, &im.dev, 0, im.dev.size);
		}
		if (fs_detect(&dev, &fi) < 0) {
			rc = 1;
			continue;
		}
		if (json) {
			json_array_append_new(arr, fs_json(device, number, &fi, dev.size));
		} else {
			printf("%-10s %-12s %-16s %-36s %14" PRIu64 "%s\n", device, fi.type,
			       fi.label[0] ? fi.label : "-", fi.uuid[0] ? fi.uuid : "-", fi.size,
			       fi.supported || !strcmp(fi.type, "unknown") ||
				       !strcmp(fi.type, "swap") || !strcmp(fi.type, "vfat")
				   ? ""
				   : "  (unsupported)");
		}
	}
	if (json)
		print_json(arr);
	else
		json_decref(arr);
	part_table_free(&t);
	if (gimage_close(&im) < 0)
		rc = 1;
	return rc;
}
