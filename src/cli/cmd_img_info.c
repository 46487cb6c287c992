/* kite img info: qemu-img info's human and JSON output (same field names and layout). */
#include "block/qcow2.h"
#include "cli/cmd_img.h"
#include "util/err.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *luks_slots_json(const struct blk_crypto_info *c)
{
	json_t *list = json_array();
	for (int i = 0; i < BLK_LUKS_SLOTS; i++) {
		const struct blk_luks_slot_info *s = &c->slots[i];
		json_t *o = json_object();
		json_object_set_new(o, "active", json_boolean(s->active));
		if (s->active)
			json_object_set_new(o, "iters", json_integer(s->iters));
		json_object_set_new(o, "key-offset", json_integer((json_int_t)s->key_offset));
		if (s->active)
			json_object_set_new(o, "stripes", json_integer(s->stripes));
		json_array_append_new(list, o);
	}
	return list;
}

/* QEMU's QCryptoBlockInfo in the order qemu-img prints it; `with_format` for qcow2's
 * "encrypt" (the luks driver's own data has no format key). */
static json_t *crypto_json(const struct blk_crypto_info *c, bool with_format)
{
	json_t *o = json_object();
	if (strcmp(c->format, "luks")) {
		json_object_set_new(o, "format", json_string(c->format));
		return o;
	}
	json_object_set_new(o, "ivgen-alg", json_string(c->ivgen_alg));
	json_object_set_new(o, "hash-alg", json_string(c->hash_alg));
	json_object_set_new(o, "cipher-alg", json_string(c->cipher_alg));
	json_object_set_new(o, "uuid", json_string(c->uuid));
	if (c->ivgen_hash_alg[0])
		json_object_set_new(o, "ivgen-hash-alg", json_string(c->ivgen_hash_alg));
	if (with_format)
		json_object_set_new(o, "format", json_string("luks"));
	json_object_set_new(o, "cipher-mode", json_string(c->cipher_mode));
	json_object_set_new(o, "slots", luks_slots_json(c));
	json_object_set_new(o, "payload-offset", json_integer((json_int_t)c->payload_offset));
	json_object_set_new(o, "master-key-iters", json_integer(c->master_key_iters));
	return o;
}

static json_t *format_specific(struct blk *b, const struct blk_info *in)
{
	json_t *data = json_object();
	const char *type = in->format;
	if (!strcmp(type, "qcow2")) {
		json_object_set_new(data, "compat", json_string(in->compat));
		json_object_set_new(data, "compression-type", json_string(in->compression_type));
		if (strcmp(in->compat, "0.10") != 0) {
			json_object_set_new(data, "lazy-refcounts",
					    json_boolean(in->lazy_refcounts));
			struct qcow2_bitmap_info *bm;
			int nbm;
			if (qcow2_bitmap_info(b, &bm, &nbm) < 0) {
				json_decref(data);
				return NULL;
			}
			if (nbm) {
				json_t *list = json_array();
				for (int i = 0; i < nbm; i++) {
					json_t *e = json_object(), *fl = json_array();
					if (bm[i].in_use)
						json_array_append_new(fl, json_string("in-use"));
					if (bm[i].autoload)
						json_array_append_new(fl, json_string("auto"));
					json_object_set_new(e, "flags", fl);
					json_object_set_new(e, "name", json_string(bm[i].name));
					json_object_set_new(
					    e, "granularity",
					    json_integer((json_int_t)bm[i].granularity));
					json_array_append_new(list, e);
				}
				json_object_set_new(data, "bitmaps", list);
			}
			free(bm);
			json_object_set_new(data, "refcount-bits", json_integer(in->refcount_bits));
			if (in->crypto.format)
				json_object_set_new(data, "encrypt",
						    crypto_json(&in->crypto, true));
			if (in->has_data_file_name)
				json_object_set_new(data, "data-file", json_string(in->data_file));
			if (in->has_data_file)
				json_object_set_new(data, "data-file-raw",
						    json_boolean(in->data_file_raw));
			json_object_set_new(data, "corrupt", json_boolean(in->corrupt));
			json_object_set_new(data, "extended-l2", json_boolean(in->extended_l2));
		} else {
			json_object_set_new(data, "refcount-bits", json_integer(in->refcount_bits));
			if (in->crypto.format)
				json_object_set_new(data, "encrypt",
						    crypto_json(&in->crypto, true));
		}
	} else if (!strcmp(type, "luks") && in->crypto.format) {
		json_decref(data);
		data = crypto_json(&in->crypto, false);
	} else if (!strcmp(type, "vmdk")) {
		bool compressed = !strcmp(in->vmdk_create_type, "streamOptimized");
		json_object_set_new(data, "cid", json_integer(in->vmdk_cid));
		json_object_set_new(data, "parent-cid", json_integer(in->vmdk_parent_cid));
		json_object_set_new(data, "create-type", json_string(in->vmdk_create_type));
		json_t *ext = json_object();
		if (compressed)
			json_object_set_new(ext, "compressed", json_true());
		json_object_set_new(ext, "virtual-size",
				    json_integer((json_int_t)in->virtual_size));
		json_object_set_new(ext, "filename", json_string(blk_filename(b)));
		json_object_set_new(ext, "cluster-size", json_integer(in->cluster_size));
		json_object_set_new(ext, "format", json_string(""));
		json_t *list = json_array();
		json_array_append_new(list, ext);
		json_object_set_new(data, "extents", list);
	} else {
		json_decref(data);
		return NULL;
	}
	json_t *fs = json_object();
	json_object_set_new(fs, "type", json_string(type));
	json_object_set_new(fs, "data", data);
	return fs;
}

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
	json_t *fs = format_specific(b, &in);
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
