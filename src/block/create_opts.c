/* A format's creation options (-o) as qemu-img takes, lists and echoes them: the default
 * (raw's, and any format's without its own) and the pieces encrypted formats share. */
#include "block/block_int.h"

#include <string.h>

const char *const blk_encrypt_keys[] = {"key-secret",	  "cipher-alg", "cipher-mode", "ivgen-alg",
					"ivgen-hash-alg", "hash-alg",	"iter-time",   NULL};

const char *blk_prealloc_name(enum blk_prealloc p)
{
	switch (p) {
	case BLK_PREALLOC_METADATA:
		return "metadata";
	case BLK_PREALLOC_FALLOC:
		return "falloc";
	case BLK_PREALLOC_FULL:
		return "full";
	default:
		return "off";
	}
}

void blk_print_encrypt(FILE *f, const struct blk_encrypt_opts *e, const char *pre, bool with_format)
{
	if (with_format && e->format)
		fprintf(f, " %sformat=%s", pre, e->format);
	const char *vals[] = {e->key_secret, e->cipher_alg,	e->cipher_mode,
			      e->ivgen_alg,  e->ivgen_hash_alg, e->hash_alg};
	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++)
		if (vals[i])
			fprintf(f, " %s%s=%s", pre, blk_encrypt_keys[i], vals[i]);
	if (e->iter_time_set)
		fprintf(f, " %siter-time=%llu", pre, (unsigned long long)e->iter_time);
}

/* the size, and preallocation when given */
static void default_print(FILE *f, const struct blk_create_opts *c, bool prealloc_given)
{
	fprintf(f, " size=%llu", (unsigned long long)c->size);
	if (prealloc_given)
		fprintf(f, " preallocation=%s", blk_prealloc_name(c->prealloc));
}

static const char *const default_keys[] = {"size", "preallocation", "extent_size_hint", NULL};
static const char *const default_help[] = {
    "preallocation=<str>    - Preallocation mode (allowed values: off, metadata, falloc, "
    "full)",
    "size=<size>            - Virtual disk size", NULL};
/* raw's list: QEMU lists raw's preallocation with the file layer, apart */
static const char *const raw_help[] = {"size=<size>            - Virtual disk size", NULL};

static const struct blk_create_desc default_desc = {
    .keys = default_keys,
    .help = default_help,
    .print = default_print,
};

const struct blk_create_desc blk_raw_create_desc = {
    .keys = default_keys,
    .help = raw_help,
    .print = default_print,
};

const struct blk_create_desc *blk_create_desc(const char *fmt)
{
	const struct blk_driver *d = blk_find_driver(fmt);
	return d && d->create_desc ? d->create_desc : &default_desc;
}

void blk_create_print(FILE *f, const char *path, const char *fmt, const struct blk_create_opts *c,
		      bool prealloc_given)
{
	fprintf(f, "Formatting '%s', fmt=%s", path, fmt);
	blk_create_desc(fmt)->print(f, c, prealloc_given);
	if (c->extent_size_hint_set)
		fprintf(f, " extent_size_hint=%llu", (unsigned long long)c->extent_size_hint);
	fprintf(f, "\n");
}
