/* Helpers shared by the `kite img` verbs: sizes, -o option lists, output format. */
#include "block/convert.h"
#include "block/image_spec.h"
#include "cli/cmd_img.h"
#include "util/err.h"
#include "util/size.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const char *img_human_size(uint64_t v, char *buf, size_t len)
{
	static const char *const units[] = {"", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"};
	int e;
	/* as QEMU: switch to the next unit once the value reaches 1000 of this one */
	frexp((double)v / (1000.0 / 1024.0), &e);
	int i = (e - 1) / 10;
	if (i < 0)
		i = 0;
	if (i > 6)
		i = 6;
	snprintf(buf, len, "%0.3g %sB", (double)v / (double)(1ULL << (i * 10)), units[i]);
	return buf;
}

int img_parse_size(const char *s, uint64_t *out)
{
	if (parse_size(s, 1, out) < 0) {
		kite_error("invalid image size '%s': use a number with an optional suffix "
			   "(K, M, G, T, P, E)",
			   s);
		return -1;
	}
	return 0;
}

int img_opts_parse(struct img_opts *o, const char *text)
{
	const char *p = text;
	while (*p) {
		size_t cap = strlen(p) + 1, n = 0;
		char *item = malloc(cap);
		if (!item)
			return kite_error("out of memory");
		while (*p) {
			if (*p == ',') {
				if (p[1] == ',') {
					item[n++] = ',';
					p += 2;
					continue;
				}
				p++;
				break;
			}
			item[n++] = *p++;
		}
		item[n] = '\0';
		if (n == 0) {
			free(item);
			continue;
		}
		char *eq = strchr(item, '=');
		char **k = realloc(o->keys, (o->n + 1) * sizeof(*k));
		if (k)
			o->keys = k;
		char **v = realloc(o->vals, (o->n + 1) * sizeof(*v));
		if (v)
			o->vals = v;
		if (!k || !v) {
			free(item);
			return kite_error("out of memory");
		}
		if (eq)
			*eq = '\0';
		o->keys[o->n] = item;
		o->vals[o->n] = eq ? strdup(eq + 1) : NULL;
		if (eq && !o->vals[o->n]) {
			free(item);
			return kite_error("out of memory");
		}
		o->n++;
	}
	return 0;
}

const char *img_opts_get(struct img_opts *o, const char *key)
{
	const char *val = NULL;
	/* the last occurrence wins, as in QEMU */
	for (size_t i = 0; i < o->n; i++)
		if (o->keys[i] && !strcmp(o->keys[i], key))
			val = o->vals[i] ? o->vals[i] : "";
	return val;
}

void img_opts_free(struct img_opts *o)
{
	for (size_t i = 0; i < o->n; i++) {
		free(o->keys[i]);
		free(o->vals[i]);
	}
	free(o->keys);
	free(o->vals);
	memset(o, 0, sizeof(*o));
}

static int parse_bool(const char *key, const char *v, bool *out)
{
	if (!strcmp(v, "on") || !strcmp(v, "yes") || !strcmp(v, "true")) {
		*out = true;
		return 0;
	}
	if (!strcmp(v, "off") || !strcmp(v, "no") || !strcmp(v, "false")) {
		*out = false;
		return 0;
	}
	return kite_error("parameter '%s' expects 'on' or 'off', not '%s'", key, v);
}

/* Whether format `d` takes -o `key`: one of its keys, or an encryption option under its
 * prefix. */
static bool key_allowed(const struct blk_create_desc *d, const char *key)
{
	const char *pre = d->encrypt_prefix;
	if (pre && !strncmp(key, pre, strlen(pre)))
		for (size_t i = 0; blk_encrypt_keys[i]; i++)
			if (!strcmp(blk_encrypt_keys[i], key + strlen(pre)))
				return true;
	for (size_t i = 0; d->keys[i]; i++)
		if (!strcmp(d->keys[i], key))
			return true;
	return false;
}

bool img_opts_help(struct img_opts *o, const char *fmt)
{
	if (!img_opts_get(o, "help") && !img_opts_get(o, "?"))
		return false;
	const struct blk_create_desc *d = blk_create_desc(fmt);
	printf("Supported %s options:\n", fmt);
	for (size_t i = 0; d->help[i]; i++)
		printf("  %s\n", d->help[i]);
	printf("\nThe protocol level may support further options.\n"
	       "Specify the target filename to include those options.\n");
	return true;
}

/* The encryption options into c->encrypt: under a prefix (qcow2's encrypt.*, the choice
 * in encrypt.format or the old encryption=on for aes), or the format's own (luks). */
static int encrypt_opts(struct img_opts *o, const char *fmt, const char *pre,
			struct blk_encrypt_opts *e)
{
	const char **fields[] = {&e->key_secret, &e->cipher_alg,     &e->cipher_mode,
				 &e->ivgen_alg,	 &e->ivgen_hash_alg, &e->hash_alg};
	char key[64];
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		snprintf(key, sizeof(key), "%s%s", pre, blk_encrypt_keys[i]);
		*fields[i] = img_opts_get(o, key);
	}
	snprintf(key, sizeof(key), "%siter-time", pre);
	const char *v = img_opts_get(o, key);
	if (v) {
		char *end;
		errno = 0;
		unsigned long long t = strtoull(v, &end, 0);
		if (errno || *end || end == v || v[0] == '-')
			return kite_error("Parameter '%s' expects a number", key);
		e->iter_time = t;
		e->iter_time_set = true;
	}
	if (!pre[0]) {
		e->format = fmt;
		return 0;
	}
	bool on = false;
	if ((v = img_opts_get(o, "encryption")) && parse_bool("encryption", v, &on))
		return -1;
	snprintf(key, sizeof(key), "%sformat", pre);
	e->format = on ? "aes" : img_opts_get(o, key);
	return 0; /* the block layer checks them (qcow2_crypto_create_check) */
}

const char *img_invalid_key(const struct img_opts *o, const char *fmt)
{
	const struct blk_create_desc *d = blk_create_desc(fmt);
	for (size_t i = 0; i < o->n; i++)
		if (!key_allowed(d, o->keys[i]))
			return o->keys[i];
	return NULL;
}

int img_create_opts(struct img_opts *o, const char *fmt, struct blk_create_opts *c)
{
	const struct blk_create_desc *d = blk_create_desc(fmt);
	for (size_t i = 0; i < o->n; i++)
		if (!key_allowed(d, o->keys[i]))
			return kite_error("invalid parameter '%s' for format '%s'", o->keys[i],
					  fmt);
	const char *v;
	if ((v = img_opts_get(o, "size"))) {
		if (img_parse_size(v, &c->size))
			return -1;
		c->size_set = true;
	}
	if ((v = img_opts_get(o, "cluster_size"))) {
		uint64_t cs;
		if (parse_size(v, 1, &cs) < 0 || cs < 512 || cs > (2 << 20) || (cs & (cs - 1)))
			return kite_error("invalid cluster_size '%s': a power of two between 512 "
					  "and 2M",
					  v);
		c->cluster_size = (uint32_t)cs;
	}
	if ((v = img_opts_get(o, "preallocation")) && blk_parse_prealloc(v, &c->prealloc))
		return kite_error("invalid preallocation mode '%s' (off, metadata, falloc, full)",
				  v);
	if ((v = img_opts_get(o, "compat"))) {
		if (!strcmp(v, "0.10") || !strcmp(v, "v2"))
			c->compat = 2;
		else if (!strcmp(v, "1.1") || !strcmp(v, "v3"))
			c->compat = 3;
		else
			return kite_error("invalid compat value '%s' (use 0.10 or 1.1)", v);
	}
	if ((v = img_opts_get(o, "lazy_refcounts")) &&
	    parse_bool("lazy_refcounts", v, &c->lazy_refcounts))
		return -1;
	if ((v = img_opts_get(o, "extended_l2")) && parse_bool("extended_l2", v, &c->extended_l2))
		return -1;
	if ((v = img_opts_get(o, "refcount_bits"))) {
		char *end;
		errno = 0;
		long bits = strtol(v, &end, 10);
		if (errno || *end || end == v || bits < 1 || bits > 64 || (bits & (bits - 1)))
			return kite_error("invalid refcount_bits '%s': a power of two up to 64", v);
		c->refcount_bits = (int)bits;
	}
	if ((v = img_opts_get(o, "compression_type"))) {
		if (!strcmp(v, "zlib"))
			c->compression_type = BLK_COMP_ZLIB;
		else if (!strcmp(v, "zstd"))
			c->compression_type = BLK_COMP_ZSTD;
		else
			return kite_error("invalid compression_type '%s' (use zlib or zstd)", v);
	}
	if ((v = img_opts_get(o, "extent_size_hint"))) {
		if (parse_size(v, 1, &c->extent_size_hint) < 0)
			return kite_error(
			    "Parameter 'extent_size_hint' expects a non-negative number "
			    "below 2^64\nOptional suffix k, M, G, T, P or E means kilo-, "
			    "mega-, giga-, tera-, peta-\nand exabytes, respectively.");
		c->extent_size_hint_set = true;
	}
	if ((v = img_opts_get(o, "backing_file")))
		c->backing_file = v;
	if ((v = img_opts_get(o, "backing_fmt")))
		c->backing_fmt = v;
	if ((v = img_opts_get(o, "data_file")))
		c->data_file = v;
	if ((v = img_opts_get(o, "data_file_raw"))) {
		if (parse_bool("data_file_raw", v, &c->data_file_raw))
			return -1;
		c->data_file_raw_set = true;
	}
	if (c->extended_l2 && c->cluster_size && c->cluster_size < 16384)
		return kite_error("Extended L2 entries are only supported with cluster sizes of at "
				  "least 16384 bytes");
	if (d->encrypt_prefix)
		return encrypt_opts(o, fmt, d->encrypt_prefix, &c->encrypt);
	return 0;
}

void img_print_formatting(const char *path, const char *fmt, const struct blk_create_opts *c,
			  bool prealloc_given)
{
	blk_create_print(stdout, path, fmt, c, prealloc_given);
	fflush(stdout);
}

int img_parse_output(const char *s, enum img_output *out)
{
	if (!strcmp(s, "human"))
		*out = IMG_OUT_HUMAN;
	else if (!strcmp(s, "json"))
		*out = IMG_OUT_JSON;
	else
		return kite_error("--output must be used with human or json as argument");
	return 0;
}

int64_t img_actual_size(const char *path)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return -1;
	return (int64_t)st.st_blocks * 512;
}

bool img_is_zero(const void *buf, size_t len)
{
	return blk_is_zero(buf, len);
}

int img_usage_error(const char *verb, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	kite_error("img %s: %s (try 'kite img --help')", verb, msg);
	return 1;
}

int64_t img_cvtnum(const char *name, const char *value, int64_t min, int64_t max)
{
	uint64_t v;
	int r = parse_size_qemu(value, &v);
	if (r < 0 && r != -ERANGE) {
		kite_error("Invalid %s specified. You may use k, M, G, T, P or E suffixes for",
			   name);
		kite_error("kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.");
		return -1;
	}
	if (r == -ERANGE || v > (uint64_t)max || (int64_t)v < min) {
		kite_error("Invalid %s specified. Must be between %lld and %lld.", name,
			   (long long)min, (long long)max);
		return -1;
	}
	return (int64_t)v;
}

int img_parse_image_opts(const char *text, char **fmt, char **path)
{
	struct blk_spec spec;
	if (blk_spec_parse(text, true, &spec) < 0)
		return -1;
	*fmt = spec.fmt;
	*path = spec.path;
	return 0;
}
