/* kite img info: qemu-img info's human and JSON output (same field names and layout). */
#include "cli/cmd_img.h"
#include "util/err.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The ImageInfo object of one image, with QEMU's field names. */
static json_t *image_json(struct blk *b)
{
	struct blk_info in;
	if (blk_get_info(b, &in) < 0)
		return NULL;
	json_t *o = json_object();
	json_t *snaps = img_snapshots_json(b);
	if (snaps)
		json_object_set_new(o, "snapshots", snaps);
	if (in.backing_format[0])
		json_object_set_new(o, "backing-filename-format", json_string(in.backing_format));
	json_object_set_new(o, "virtual-size", json_integer((json_int_t)in.virtual_size));
	json_object_set_new(o, "filename", json_string(blk_filename(b)));
	if (in.cluster_size)
		json_object_set_new(o, "cluster-size", json_integer(in.cluster_size));
	json_object_set_new(o, "format", json_string(in.format));
	int64_t actual = img_actual_size(blk_filename(b));
	if (actual >= 0)
		json_object_set_new(o, "actual-size", json_integer(actual));
	json_t *fs = blk_info_specific(b, &in);
	if (fs)
		json_object_set_new(o, "format-specific", fs);
	if (in.backing_file[0])
		json_object_set_new(o, "full-backing-filename", json_string(in.backing_full));
	if (in.encrypted)
		json_object_set_new(o, "encrypted", json_true());
	if (in.backing_file[0])
		json_object_set_new(o, "backing-filename", json_string(in.backing_file));
	json_object_set_new(o, "dirty-flag", json_boolean(in.dirty));
	return o;
}

/* QEMU's dump of a QDict: dashes in keys become spaces, 4 spaces per level. */
static void dump_value(int indent, json_t *v);

static void dump_object(int indent, json_t *obj)
{
	const char *key;
	json_t *v;
	json_object_foreach(obj, key, v)
	{
		char name[128];
		snprintf(name, sizeof(name), "%s", key);
		for (char *p = name; *p; p++)
			if (*p == '-')
				*p = ' ';
		bool composite = json_is_object(v) || json_is_array(v);
		printf("%*s%s:%s", indent * 4, "", name, composite ? "\n" : " ");
		dump_value(indent + 1, v);
	}
}

static void dump_value(int indent, json_t *v)
{
	if (json_is_object(v)) {
		dump_object(indent, v);
	} else if (json_is_array(v)) {
		size_t i;
		json_t *e;
		json_array_foreach(v, i, e)
		{
			bool composite = json_is_object(e) || json_is_array(e);
			printf("%*s[%zu]:%c", indent * 4, "", i, composite ? '\n' : ' ');
			dump_value(indent + 1, e);
		}
	} else if (json_is_string(v)) {
		printf("%s\n", json_string_value(v));
	} else if (json_is_integer(v)) {
		printf("%lld\n", (long long)json_integer_value(v));
	} else if (json_is_boolean(v)) {
		printf("%s\n", json_is_true(v) ? "true" : "false");
	} else {
		printf("\n");
	}
}

static void print_human(json_t *o)
{
	char vs[32], ds[32];
	uint64_t vsize = (uint64_t)json_integer_value(json_object_get(o, "virtual-size"));
	json_t *actual = json_object_get(o, "actual-size");
	printf("image: %s\nfile format: %s\nvirtual size: %s (%llu bytes)\ndisk size: %s\n",
	       json_string_value(json_object_get(o, "filename")),
	       json_string_value(json_object_get(o, "format")),
	       img_human_size(vsize, vs, sizeof(vs)), (unsigned long long)vsize,
	       actual ? img_human_size((uint64_t)json_integer_value(actual), ds, sizeof(ds))
		      : "unavailable");
	if (json_is_true(json_object_get(o, "encrypted")))
		printf("encrypted: yes\n");
	json_t *cs = json_object_get(o, "cluster-size");
	if (cs)
		printf("cluster_size: %lld\n", (long long)json_integer_value(cs));
	if (json_is_true(json_object_get(o, "dirty-flag")))
		printf("cleanly shut down: no\n");
	const char *bf = json_string_value(json_object_get(o, "backing-filename"));
	if (bf) {
		const char *full = json_string_value(json_object_get(o, "full-backing-filename"));
		printf("backing file: %s", bf);
		if (full && strcmp(full, bf))
			printf(" (actual path: %s)", full);
		printf("\n");
	}
	const char *bff = json_string_value(json_object_get(o, "backing-filename-format"));
	if (bff)
		printf("backing file format: %s\n", bff);
	json_t *snaps = json_object_get(o, "snapshots");
	if (snaps && json_array_size(snaps)) {
		printf("Snapshot list:\n");
		img_snapshots_print(snaps);
	}
	json_t *fs = json_object_get(o, "format-specific");
	if (fs) {
		printf("Format specific information:\n");
		dump_object(1, json_object_get(fs, "data"));
	}
}

int img_info(int argc, char **argv)
{
	enum { OPT_OUTPUT = 256, OPT_CHAIN };
	static const struct option longopts[] = {{"output", required_argument, NULL, OPT_OUTPUT},
						 {"backing-chain", no_argument, NULL, OPT_CHAIN},
						 {"force-share", no_argument, NULL, 'U'},
						 {NULL, 0, NULL, 0}};
	const char *fmt = NULL;
	enum img_output out = IMG_OUT_HUMAN;
	bool chain = false;
	unsigned share = 0;
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":f:U", longopts, NULL)) != -1) {
		switch (c) {
		case 'f':
			fmt = optarg;
			break;
		case 'U':
			share = BLK_O_SHARE;
			break;
		case OPT_OUTPUT:
			if (img_parse_output(optarg, &out))
				return 1;
			break;
		case OPT_CHAIN:
			chain = true;
			break;
		case ':':
			return img_usage_error("info", "option '%s' needs an argument",
					       argv[optind - 1]);
		default:
			return img_usage_error("info", "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (argc - optind != 1)
		return img_usage_error("info", "expecting one filename");
	struct blk *b = blk_open(argv[optind], fmt,
				 (chain ? BLK_O_RDONLY : BLK_O_NO_BACKING) | share |
				     img_source_flags() | BLK_O_NO_PROBE_WARN | BLK_O_NO_IO);
	if (!b)
		return 1;
	json_t *list = json_array();
	for (struct blk *l = b; l; l = chain ? blk_backing(l) : NULL) {
		json_t *o = image_json(l);
		if (!o) {
			json_decref(list);
			blk_close(b);
			return 1;
		}
		json_array_append_new(list, o);
	}
	blk_close(b);
	if (out == IMG_OUT_JSON) {
		json_t *top = chain ? list : json_array_get(list, 0);
		char *s = json_dumps(top, JSON_INDENT(4) | JSON_PRESERVE_ORDER);
		if (!s) {
			json_decref(list);
			return kite_error("out of memory"), 1;
		}
		printf("%s\n", s);
		free(s);
	} else {
		size_t i;
		json_t *o;
		json_array_foreach(list, i, o)
		{
			if (i)
				printf("\n");
			print_human(o);
		}
	}
	json_decref(list);
	return 0;
}
