/* QEMU's ways of naming an image besides a plain path: "file:PATH", "json:{...}" (as QEMU
 * writes into backing-file fields and libvirt passes around) and --image-opts strings
 * ("driver=qcow2,file.filename=PATH"). Only the local-file protocol exists in kite, so every
 * form comes down to a path and, optionally, a format. */
#include "block/image_spec.h"
#include "util/err.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct kv {
	char *key[32], *val[32];
	int n;
};

static void kv_free(struct kv *kv)
{
	for (int i = 0; i < kv->n; i++) {
		free(kv->key[i]);
		free(kv->val[i]);
	}
	kv->n = 0;
}

static int kv_add(struct kv *kv, const char *key, size_t keylen, const char *val, size_t vallen)
{
	if (kv->n == 32)
		return kite_error("too many image options");
	kv->key[kv->n] = strndup(key, keylen);
	kv->val[kv->n] = strndup(val, vallen);
	if (!kv->key[kv->n] || !kv->val[kv->n]) {
		free(kv->key[kv->n]);
		free(kv->val[kv->n]);
		return kite_error("out of memory");
	}
	kv->n++;
	return 0;
}

static const char *kv_get(const struct kv *kv, const char *key)
{
	for (int i = kv->n - 1; i >= 0; i--)
		if (!strcmp(kv->key[i], key))
			return kv->val[i];
	return NULL;
}

/* "a=b,c.d=e" with ",," standing for a comma in a value */
static int parse_opts(const char *s, struct kv *kv, const char *name)
{
	while (*s) {
		const char *eq = strchr(s, '=');
		if (!eq)
			return kite_error("Could not open '%s': Invalid parameter '%s'", name, s);
		char *val = malloc(strlen(eq));
		if (!val)
			return kite_error("out of memory");
		size_t n = 0;
		const char *p = eq + 1;
		for (; *p; p++) {
			if (*p == ',' && p[1] == ',') {
				val[n++] = ',';
				p++;
			} else if (*p == ',') {
				p++;
				break;
			} else {
				val[n++] = *p;
			}
		}
		int r = kv_add(kv, s, (size_t)(eq - s), val, n);
		free(val);
		if (r < 0)
			return -1;
		s = p;
	}
	return 0;
}

/* {"a": {"b": "c"}} becomes a.b=c; strings only, as every option kite reads is one. */
static int flatten(json_t *obj, const char *prefix, struct kv *kv, const char *name)
{
	const char *key;
	json_t *v;
	json_object_foreach(obj, key, v)
	{
		char full[256];
		snprintf(full, sizeof(full), "%s%s%s", prefix, prefix[0] ? "." : "", key);
		if (json_is_object(v)) {
			if (flatten(v, full, kv, name) < 0)
				return -1;
		} else if (json_is_string(v)) {
			const char *s = json_string_value(v);
			if (kv_add(kv, full, strlen(full), s, strlen(s)) < 0)
				return -1;
		} else {
			return kite_error("Could not open '%s': Invalid parameter type for '%s', "
					  "expected: string",
					  name, full);
		}
	}
	return 0;
}

/* What the options say: the format (NULL: probe; "file": the file itself, raw) and the
 * file's name. */
/* The encryption options a format driver takes. */
static bool crypto_key(const char *driver, const char *k)
{
	if (driver && !strcmp(driver, "qcow2"))
		return !strcmp(k, "encrypt.key-secret") || !strcmp(k, "encrypt.format");
	if (driver && !strcmp(driver, "luks"))
		return !strcmp(k, "key-secret");
	return false;
}

static int interpret(const struct kv *kv, const char *name, struct blk_spec *out)
{
	const char *driver = kv_get(kv, "driver");
	bool file_itself = driver && !strcmp(driver, "file");
	const char *path = file_itself ? kv_get(kv, "filename") : kv_get(kv, "file.filename");
	const char *file_driver = kv_get(kv, "file.driver");
	for (int i = 0; i < kv->n; i++) {
		const char *k = kv->key[i];
		bool known =
		    !strcmp(k, "driver") || crypto_key(driver, k) ||
		    (file_itself ? !strcmp(k, "filename")
				 : !strcmp(k, "file.filename") || !strcmp(k, "file.driver"));
		if (!known)
			return kite_error("Could not open '%s': Block format '%s' does not support "
					  "the option '%s'",
					  name, driver ? driver : "file", k);
	}
	if (file_driver && strcmp(file_driver, "file"))
		return kite_error("Could not open '%s': protocol '%s' is not supported by kite "
				  "(local files only)",
				  name, file_driver);
	if (!path)
		return kite_error("Could not open '%s': A block device must be specified for "
				  "\"%s\"",
				  name, file_itself ? "filename" : "file");
	const char *secret = kv_get(kv, "encrypt.key-secret");
	if (!secret)
		secret = kv_get(kv, "key-secret");
	const char *efmt = kv_get(kv, "encrypt.format");
	out->path = strdup(path);
	out->fmt = driver ? strdup(file_itself ? "raw" : driver) : NULL;
	out->key_secret = secret ? strdup(secret) : NULL;
	out->encrypt_format = efmt ? strdup(efmt) : NULL;
	if (!out->path || (driver && !out->fmt) || (secret && !out->key_secret) ||
	    (efmt && !out->encrypt_format)) {
		blk_spec_free(out);
		return kite_error("out of memory");
	}
	return 0;
}

int blk_spec_parse(const char *name, bool image_opts, struct blk_spec *out)
{
	memset(out, 0, sizeof(*out));
	struct kv kv = {0};
	int r;
	if (image_opts) {
		r = parse_opts(name, &kv, name);
	} else if (!strncmp(name, "json:", 5)) {
		json_error_t err;
		json_t *root = json_loads(name + 5, 0, &err);
		if (!root || !json_is_object(root)) {
			json_decref(root);
			return kite_error(
			    "Could not open '%s': Could not parse the JSON options: %s", name,
			    root ? "not an object" : err.text);
		}
		r = flatten(root, "", &kv, name);
		json_decref(root);
	} else {
		out->path = strdup(strncmp(name, "file:", 5) ? name : name + 5);
		return out->path ? 0 : kite_error("out of memory");
	}
	if (r == 0)
		r = interpret(&kv, name, out);
	kv_free(&kv);
	return r;
}

bool blk_spec_is_special(const char *name)
{
	return !strncmp(name, "json:", 5) || !strncmp(name, "file:", 5);
}

void blk_spec_free(struct blk_spec *s)
{
	free(s->path);
	free(s->fmt);
	free(s->key_secret);
	free(s->encrypt_format);
	s->path = s->fmt = s->key_secret = s->encrypt_format = NULL;
}
