/* The JSON qemu-img info prints for what drivers share: an encrypted image's "encrypt"
 * facts, and the "format-specific" object around a driver's own. */
#include "block/block_int.h"

#include <string.h>

static json_t *slots_json(const struct blk_crypto_info *c)
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
json_t *blk_crypto_info_json(const struct blk_crypto_info *c, bool with_format)
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
	json_object_set_new(o, "slots", slots_json(c));
	json_object_set_new(o, "payload-offset", json_integer((json_int_t)c->payload_offset));
	json_object_set_new(o, "master-key-iters", json_integer(c->master_key_iters));
	return o;
}

json_t *blk_info_specific(struct blk *b, const struct blk_info *in)
{
	json_t *data = b->drv->info_json ? b->drv->info_json(b, in) : NULL;
	if (!data)
		return NULL;
	json_t *fs = json_object();
	json_object_set_new(fs, "type", json_string(in->format));
	json_object_set_new(fs, "data", data);
	return fs;
}
