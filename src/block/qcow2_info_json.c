/* qcow2's "format-specific" data in qemu-img info (QEMU's ImageInfoSpecificQCow2, in the
 * order qemu-img prints it). */
#include "block/qcow2_int.h"

#include <stdlib.h>
#include <string.h>

/* The persistent bitmaps' list; 0, or -1 when they could not be read. */
static int add_bitmaps(struct blk *b, json_t *data)
{
	struct qcow2_bitmap_info *bm;
	int nbm;
	if (qcow2_bitmap_info(b, &bm, &nbm) < 0)
		return -1;
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
			json_object_set_new(e, "granularity",
					    json_integer((json_int_t)bm[i].granularity));
			json_array_append_new(list, e);
		}
		json_object_set_new(data, "bitmaps", list);
	}
	free(bm);
	return 0;
}

json_t *qcow2_info_json(struct blk *b, const struct blk_info *in)
{
	json_t *data = json_object();
	json_object_set_new(data, "compat", json_string(in->compat));
	json_object_set_new(data, "compression-type", json_string(in->compression_type));
	if (!strcmp(in->compat, "0.10")) {
		json_object_set_new(data, "refcount-bits", json_integer(in->refcount_bits));
		if (in->crypto.format)
			json_object_set_new(data, "encrypt",
					    blk_crypto_info_json(&in->crypto, true));
		return data;
	}
	json_object_set_new(data, "lazy-refcounts", json_boolean(in->lazy_refcounts));
	if (add_bitmaps(b, data) < 0) {
		json_decref(data);
		return NULL;
	}
	json_object_set_new(data, "refcount-bits", json_integer(in->refcount_bits));
	if (in->crypto.format)
		json_object_set_new(data, "encrypt", blk_crypto_info_json(&in->crypto, true));
	if (in->has_data_file_name)
		json_object_set_new(data, "data-file", json_string(in->data_file));
	if (in->has_data_file)
		json_object_set_new(data, "data-file-raw", json_boolean(in->data_file_raw));
	json_object_set_new(data, "corrupt", json_boolean(in->corrupt));
	json_object_set_new(data, "extended-l2", json_boolean(in->extended_l2));
	return data;
}
