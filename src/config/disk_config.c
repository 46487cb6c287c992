/* One disk: the --disk grammar and the JSON disk object, both through one table of keys. */
#include "config/machine_config.h"
#include "config/option_text.h"
#include "util/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct disk_key {
	const char *key;
	enum machine_field_type type; /* FIELD_STRING or FIELD_BOOL */
	int (*set)(struct disk_config *d, const char *value, const char *ctx);
};

static int set_path(struct disk_config *d, const char *v, const char *ctx)
{
	if (!*v)
		return kite_error("%s: a disk needs a path", ctx);
	char *p = strdup(v);
	if (!p)
		return kite_error("out of memory");
	free(d->path);
	d->path = p;
	return 0;
}

static int set_format(struct disk_config *d, const char *v, const char *ctx)
{
	if (strcmp(v, "raw") && strcmp(v, "qcow2") && strcmp(v, "vmdk"))
		return kite_error("%s: '%s' is not raw, qcow2 or vmdk", ctx, v);
	snprintf(d->format, sizeof(d->format), "%s", v);
	return 0;
}

bool disk_target_valid(const char *t)
{
	/* vd[a-z] and vd[a-z][a-z]: the names Linux gives virtio disks. */
	size_t n = strlen(t);
	if (n < 3 || n > DISK_TARGET_MAX || strncmp(t, "vd", 2))
		return false;
	for (size_t i = 2; i < n; i++)
		if (t[i] < 'a' || t[i] > 'z')
			return false;
	return true;
}

static int set_target(struct disk_config *d, const char *v, const char *ctx)
{
	if (!disk_target_valid(v))
		return kite_error("%s: '%s' is not of the form vda, vdb, ... vdzz", ctx, v);
	snprintf(d->target, sizeof(d->target), "%s", v);
	return 0;
}

static int set_readonly(struct disk_config *d, const char *v, const char *ctx)
{
	return option_parse_bool(v, &d->readonly, ctx);
}

static int set_cache(struct disk_config *d, const char *v, const char *ctx)
{
	if (!strcmp(v, "none"))
		d->nocache = true;
	else if (!strcmp(v, "writeback"))
		d->nocache = false;
	else
		return kite_error("%s: '%s' is not writeback or none", ctx, v);
	return 0;
}

static int set_serial(struct disk_config *d, const char *v, const char *ctx)
{
	if (strlen(v) > DISK_SERIAL_MAX)
		return kite_error("%s: '%s' is longer than %d characters", ctx, v, DISK_SERIAL_MAX);
	snprintf(d->serial, sizeof(d->serial), "%s", v);
	return 0;
}

static const struct disk_key disk_keys[] = {
    {"path", FIELD_STRING, set_path},	  {"format", FIELD_STRING, set_format},
    {"target", FIELD_STRING, set_target}, {"readonly", FIELD_BOOL, set_readonly},
    {"cache", FIELD_STRING, set_cache},	  {"serial", FIELD_STRING, set_serial},
};
#define NKEYS (sizeof(disk_keys) / sizeof(disk_keys[0]))

static const struct disk_key *find_key(const char *key)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (!strcmp(disk_keys[i].key, key))
			return &disk_keys[i];
	return NULL;
}

int disk_config_set(struct disk_config *d, const char *key, const char *value, const char *ctx)
{
	const struct disk_key *k = find_key(key);
	if (!k)
		return kite_error("%s: unknown option '%s' (format=, target=, readonly=, cache=, "
				  "serial=)",
				  ctx, key);
	if (!value && k->type != FIELD_BOOL)
		return kite_error("%s: '%s' needs a value (%s=...)", ctx, key, key);
	return k->set(d, value, ctx);
}

void disk_config_free(struct disk_config *d)
{
	free(d->path);
	memset(d, 0, sizeof(*d));
}

int disk_config_parse(const char *spec, struct disk_config *d, const char *ctx)
{
	memset(d, 0, sizeof(*d));
	char where[600];
	snprintf(where, sizeof(where), "%s %.500s", ctx, spec);
	const char *p = spec;
	char *path = option_next_item(&p);
	if (!path)
		return -1;
	int r = *path ? set_path(d, path, where)
		      : kite_error("%s: expected FILE[,option=value...]", where);
	free(path);
	while (r == 0 && *p) {
		char *item = option_next_item(&p);
		if (!item)
			r = -1;
		if (item) {
			char *eq = strchr(item, '=');
			if (eq)
				*eq = '\0';
			r = disk_config_set(d, item, eq ? eq + 1 : NULL, where);
			free(item);
		}
	}
	if (r < 0)
		disk_config_free(d);
	return r;
}

char *disk_config_format(const struct disk_config *d)
{
	char *s = NULL;
	if (option_append(&s, NULL, d->path) < 0 ||
	    (d->format[0] && option_append(&s, "format", d->format) < 0) ||
	    (d->target[0] && option_append(&s, "target", d->target) < 0) ||
	    (d->readonly && option_append(&s, "readonly", "on") < 0) ||
	    (d->nocache && option_append(&s, "cache", "none") < 0) ||
	    (d->serial[0] && option_append(&s, "serial", d->serial) < 0))
		return NULL;
	return s;
}

int disk_config_from_json(json_t *obj, struct disk_config *d, const char *ctx)
{
	memset(d, 0, sizeof(*d));
	if (!json_is_object(obj))
		return kite_error("%s must be an object (or a --disk string)", ctx);
	const char *key;
	json_t *v;
	int r = 0;
	json_object_foreach(obj, key, v)
	{
		char where[600];
		snprintf(where, sizeof(where), "%s.%s", ctx, key);
		const struct disk_key *k = find_key(key);
		if (!k) {
			r = kite_error("%s: unknown field '%s'", ctx, key);
		} else if (json_is_null(v)) {
			continue;
		} else if (k->type == FIELD_BOOL) {
			if (!json_is_boolean(v))
				r = kite_error("%s must be true or false", where);
			else
				r = k->set(d, json_is_true(v) ? "on" : "off", where);
		} else if (!json_is_string(v) ||
			   strlen(json_string_value(v)) != json_string_length(v)) {
			r = kite_error("%s must be a string", where);
		} else {
			r = k->set(d, json_string_value(v), where);
		}
		if (r < 0)
			break;
	}
	if (r == 0 && !d->path)
		r = kite_error("%s.path is required", ctx);
	if (r < 0)
		disk_config_free(d);
	return r;
}

json_t *disk_config_to_json(const struct disk_config *d)
{
	json_t *o = json_pack("{s:s, s:s}", "path", d->path, "target", d->target);
	if (!o || (d->format[0] && json_object_set_new(o, "format", json_string(d->format))) ||
	    json_object_set_new(o, "readonly", json_boolean(d->readonly)) ||
	    json_object_set_new(o, "cache", json_string(d->nocache ? "none" : "writeback")) ||
	    (d->serial[0] && json_object_set_new(o, "serial", json_string(d->serial)))) {
		json_decref(o);
		return NULL;
	}
	return o;
}
