#include "mgmt/machine_def.h"
#include "net/net.h"
#include "util/err.h"
#include "util/size.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* Typed field getters: each reports "<where>: <field>: must be ..." on a wrong type. */
static int get_string(json_t *obj, const char *key, const char *where, const char *ctx,
		      bool required, char **out)
{
	json_t *v = json_object_get(obj, key);
	*out = NULL;
	if (!v || json_is_null(v)) {
		if (required)
			return kite_error("%s: %s%s is required", where, ctx, key);
		return 0;
	}
	if (!json_is_string(v))
		return kite_error("%s: %s%s must be a string", where, ctx, key);
	if (strlen(json_string_value(v)) != json_string_length(v))
		return kite_error("%s: %s%s contains a NUL byte", where, ctx, key);
	*out = strdup(json_string_value(v));
	if (!*out)
		return kite_error("out of memory");
	return 0;
}

static int get_bool(json_t *obj, const char *key, const char *where, const char *ctx, bool *out)
{
	json_t *v = json_object_get(obj, key);
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_boolean(v))
		return kite_error("%s: %s%s must be true or false", where, ctx, key);
	*out = json_is_true(v);
	return 0;
}

/* Sizes: an integer number of bytes, or a string such as "512M" (a bare number in a string
 * means MiB, as `kite run -m`). */
static int get_size(json_t *obj, const char *key, const char *where, bool *present, uint64_t *out)
{
	json_t *v = json_object_get(obj, key);
	*present = false;
	if (!v || json_is_null(v))
		return 0;
	if (json_is_integer(v)) {
		json_int_t n = json_integer_value(v);
		if (n <= 0)
			return kite_error("%s: %s must be a positive number of bytes", where, key);
		*out = (uint64_t)n;
	} else if (json_is_string(v)) {
		if (parse_size(json_string_value(v), 1ULL << 20, out) < 0)
			return kite_error("%s: %s: '%s' is not a size (examples: 512M, 2G)", where,
					  key, json_string_value(v));
	} else {
		return kite_error("%s: %s must be a number of bytes or a size string like \"512M\"",
				  where, key);
	}
	*present = true;
	return 0;
}

static int check_keys(json_t *obj, const char *const *allowed, const char *where, const char *ctx)
{
	const char *key;
	json_t *v;
	json_object_foreach(obj, key, v)
	{
		(void)v;
		bool ok = false;
		for (const char *const *a = allowed; *a; a++)
			if (!strcmp(*a, key))
				ok = true;
		if (!ok)
			return kite_error("%s: %sunknown field '%s'", where, ctx, key);
	}
	return 0;
}

static json_t *get_array(json_t *root, const char *key, const char *where, int *err)
{
	json_t *a = json_object_get(root, key);
	*err = 0;
	if (!a || json_is_null(a))
		return NULL;
	if (!json_is_array(a)) {
		*err = kite_error("%s: %s must be a list", where, key);
		return NULL;
	}
	if (json_array_size(a) > MACHINE_MAX_DEVICES) {
		*err = kite_error("%s: %s: more than %d entries", where, key, MACHINE_MAX_DEVICES);
		return NULL;
	}
	return a;
}

static int parse_disks(json_t *root, const char *where, struct machine_def *def)
{
	static const char *const keys[] = {"path", "format", "target", "readonly", NULL};
	int err;
	json_t *arr = get_array(root, "disks", where, &err);
	if (!arr)
		return err;
	size_t i;
	json_t *e;
	json_array_foreach(arr, i, e)
	{
		char ctx[48];
		snprintf(ctx, sizeof(ctx), "disks[%zu].", i);
		if (!json_is_object(e))
			return kite_error("%s: disks[%zu] must be an object", where, i);
		if (check_keys(e, keys, where, ctx) < 0)
			return -1;
		char *path = NULL, *format = NULL, *target = NULL;
		bool ro = false;
		int r = -1;
		if (get_string(e, "path", where, ctx, true, &path) == 0 &&
		    get_string(e, "format", where, ctx, false, &format) == 0 &&
		    get_string(e, "target", where, ctx, false, &target) == 0 &&
		    get_bool(e, "readonly", where, ctx, &ro) == 0) {
			r = machine_def_add_disk(def, path, target, format, ro);
			if (r < 0)
				kite_error("%s: %s is invalid", where, ctx);
		}
		free(path);
		free(format);
		free(target);
		if (r < 0)
			return -1;
	}
	return 0;
}

static int parse_nics(json_t *root, const char *where, struct machine_def *def)
{
	static const char *const keys[] = {"type", "ifname", "mac", "model", "hostfwd", NULL};
	int err;
	json_t *arr = get_array(root, "nics", where, &err);
	if (!arr)
		return err;
	size_t i;
	json_t *e;
	json_array_foreach(arr, i, e)
	{
		char ctx[48];
		snprintf(ctx, sizeof(ctx), "nics[%zu].", i);
		if (!json_is_object(e))
			return kite_error("%s: nics[%zu] must be an object", where, i);
		if (check_keys(e, keys, where, ctx) < 0)
			return -1;
		char *type = NULL, *ifname = NULL, *mac = NULL, *model = NULL;
		int r = -1;
		if (get_string(e, "type", where, ctx, false, &type) == 0 &&
		    get_string(e, "ifname", where, ctx, false, &ifname) == 0 &&
		    get_string(e, "mac", where, ctx, false, &mac) == 0 &&
		    get_string(e, "model", where, ctx, false, &model) == 0) {
			r = machine_def_add_nic(def, type ? type : "user", ifname, mac, model);
			json_t *fwd = json_object_get(e, "hostfwd");
			if (r == 0 && fwd && !json_is_array(fwd))
				r = kite_error("%s: %shostfwd must be a list of strings", where,
					       ctx);
			size_t k;
			json_t *rule;
			if (r == 0 && fwd)
				json_array_foreach(fwd, k, rule)
				{
					if (r == 0 && !json_is_string(rule))
						r = kite_error(
						    "%s: %shostfwd[%zu] must be a string", where,
						    ctx, k);
					if (r == 0)
						r = machine_nic_add_hostfwd(
						    &def->nics[def->nnics - 1],
						    json_string_value(rule));
				}
			if (r < 0)
				kite_error("%s: %s is invalid", where, ctx);
		}
		free(type);
		free(ifname);
		free(mac);
		free(model);
		if (r < 0)
			return -1;
	}
	return 0;
}

static int parse_shares(json_t *root, const char *where, struct machine_def *def)
{
	static const char *const keys[] = {"path", "tag", "readonly", NULL};
	int err;
	json_t *arr = get_array(root, "shares", where, &err);
	if (!arr)
		return err;
	size_t n = json_array_size(arr);
	if (n == 0)
		return 0;
	def->shares = calloc(n, sizeof(*def->shares));
	if (!def->shares)
		return kite_error("out of memory");
	size_t i;
	json_t *e;
	json_array_foreach(arr, i, e)
	{
		char ctx[48];
		snprintf(ctx, sizeof(ctx), "shares[%zu].", i);
		if (!json_is_object(e))
			return kite_error("%s: shares[%zu] must be an object", where, i);
		if (check_keys(e, keys, where, ctx) < 0)
			return -1;
		struct machine_share *s = &def->shares[def->nshares++];
		if (get_string(e, "path", where, ctx, true, &s->path) < 0 ||
		    get_string(e, "tag", where, ctx, true, &s->tag) < 0 ||
		    get_bool(e, "readonly", where, ctx, &s->readonly) < 0)
			return -1;
	}
	return 0;
}

int machine_def_from_json(json_t *root, const char *where, struct machine_def *def)
{
	static const char *const keys[] = {
	    "name",   "uuid",  "memory", "current_memory", "vcpus",   "kernel",	   "initrd",
	    "append", "disks", "nics",	 "shares",	   "console", "autostart", NULL};
	memset(def, 0, sizeof(*def));
	if (!json_is_object(root))
		return kite_error("%s: a definition must be a JSON object", where);
	if (check_keys(root, keys, where, "") < 0)
		goto fail;
	if (get_string(root, "name", where, "", true, &def->name) < 0)
		goto fail;
	if (machine_name_check(def->name) < 0)
		goto fail;
	char *uuid;
	if (get_string(root, "uuid", where, "", false, &uuid) < 0)
		goto fail;
	if (uuid) {
		bool ok = uuid_valid(uuid);
		if (ok)
			snprintf(def->uuid, sizeof(def->uuid), "%s", uuid);
		free(uuid);
		if (!ok) {
			kite_error("%s: uuid is not of the form "
				   "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx",
				   where);
			goto fail;
		}
	} else if (uuid_generate_str(def->uuid) < 0) {
		goto fail;
	}
	bool have_mem, have_cur;
	def->memory = 512ULL << 20;
	if (get_size(root, "memory", where, &have_mem, &def->memory) < 0 ||
	    get_size(root, "current_memory", where, &have_cur, &def->current_memory) < 0)
		goto fail;
	if (!have_cur)
		def->current_memory = def->memory;
	def->vcpus = 1;
	json_t *v = json_object_get(root, "vcpus");
	if (v && !json_is_null(v)) {
		if (!json_is_integer(v) || json_integer_value(v) < 1 ||
		    json_integer_value(v) > 255) {
			kite_error("%s: vcpus must be a number from 1 to 255", where);
			goto fail;
		}
		def->vcpus = (unsigned)json_integer_value(v);
	}
	if (get_string(root, "kernel", where, "", true, &def->kernel) < 0 ||
	    get_string(root, "initrd", where, "", false, &def->initrd) < 0 ||
	    get_string(root, "append", where, "", false, &def->append) < 0 ||
	    get_string(root, "console", where, "", false, &def->console) < 0 ||
	    get_bool(root, "autostart", where, "", &def->autostart) < 0)
		goto fail;
	if (!def->console && !(def->console = strdup("serial"))) {
		kite_error("out of memory");
		goto fail;
	}
	if (parse_disks(root, where, def) < 0 || parse_nics(root, where, def) < 0 ||
	    parse_shares(root, where, def) < 0)
		goto fail;
	if (machine_def_validate(def, where) < 0)
		goto fail;
	return 0;
fail:
	machine_def_free(def);
	return -1;
}

int machine_def_validate(const struct machine_def *def, const char *where)
{
	if (machine_name_check(def->name) < 0)
		return -1;
	if (def->memory < (1ULL << 20))
		return kite_error("%s: memory must be at least 1M", where);
	if (def->memory > (1ULL << 40))
		return kite_error("%s: memory must be at most 1T", where);
	if (def->current_memory > def->memory)
		return kite_error(
		    "%s: current_memory (%llu bytes) is more than memory (%llu bytes)", where,
		    (unsigned long long)def->current_memory, (unsigned long long)def->memory);
	if (def->current_memory < (1ULL << 20))
		return kite_error("%s: current_memory must be at least 1M", where);
	if (def->vcpus < 1 || def->vcpus > 255)
		return kite_error("%s: vcpus must be a number from 1 to 255", where);
	if (!def->kernel || !*def->kernel)
		return kite_error("%s: kernel is required", where);
	if (strcmp(def->console, "serial") && strcmp(def->console, "none"))
		return kite_error("%s: console must be \"serial\" or \"none\"", where);
	for (size_t i = 0; i < def->ndisks; i++) {
		for (size_t j = 0; j < i; j++)
			if (!strcmp(def->disks[i].target, def->disks[j].target))
				return kite_error("%s: two disks use target %s", where,
						  def->disks[i].target);
	}
	for (size_t i = 0; i < def->nnics; i++) {
		for (size_t j = 0; j < i; j++)
			if (!strcasecmp(def->nics[i].mac, def->nics[j].mac))
				return kite_error("%s: two NICs use MAC %s", where,
						  def->nics[i].mac);
	}
	for (size_t i = 0; i < def->nshares; i++) {
		const struct machine_share *s = &def->shares[i];
		if (!*s->path)
			return kite_error("%s: shares[%zu].path is empty", where, i);
		if (!*s->tag || strlen(s->tag) > 36)
			return kite_error("%s: shares[%zu].tag must be 1 to 36 characters", where,
					  i);
		for (size_t j = 0; j < i; j++)
			if (!strcmp(s->tag, def->shares[j].tag))
				return kite_error("%s: two shares use tag %s", where, s->tag);
	}
	return 0;
}

static int target_valid(const char *t)
{
	/* vd[a-z] and vd[a-z][a-z]: the names Linux gives virtio disks. */
	size_t n = strlen(t);
	if (n < 3 || n > 4 || strncmp(t, "vd", 2))
		return 0;
	for (size_t i = 2; i < n; i++)
		if (t[i] < 'a' || t[i] > 'z')
			return 0;
	return 1;
}

int machine_def_add_disk(struct machine_def *def, const char *path, const char *target,
			 const char *format, bool readonly)
{
	if (!path || !*path)
		return kite_error("a disk needs a path");
	if (def->ndisks >= MACHINE_MAX_DEVICES)
		return kite_error("too many disks (at most %d)", MACHINE_MAX_DEVICES);
	if (format && strcmp(format, "raw") && strcmp(format, "qcow2") && strcmp(format, "vmdk"))
		return kite_error("disk format '%s' is not one of raw, qcow2, vmdk", format);
	char auto_target[8];
	if (!target) {
		/* First free vdX. */
		for (int c = 'a'; c <= 'z' && !target; c++) {
			snprintf(auto_target, sizeof(auto_target), "vd%c", c);
			bool used = false;
			for (size_t i = 0; i < def->ndisks; i++)
				if (!strcmp(def->disks[i].target, auto_target))
					used = true;
			if (!used)
				target = auto_target;
		}
		if (!target)
			return kite_error("no free disk target vda..vdz: name one");
	}
	if (!target_valid(target))
		return kite_error("disk target '%s' is not of the form vda, vdb, ... vdzz", target);
	for (size_t i = 0; i < def->ndisks; i++)
		if (!strcmp(def->disks[i].target, target))
			return kite_error("disk target %s is already used by %s", target,
					  def->disks[i].path);
	struct machine_disk *d = realloc(def->disks, (def->ndisks + 1) * sizeof(*d));
	if (!d)
		return kite_error("out of memory");
	def->disks = d;
	d = &def->disks[def->ndisks];
	d->path = strdup(path);
	d->target = strdup(target);
	d->format = dup_or_null(format);
	d->readonly = readonly;
	if (!d->path || !d->target || (format && !d->format)) {
		free(d->path);
		free(d->target);
		free(d->format);
		return kite_error("out of memory");
	}
	def->ndisks++;
	return 0;
}

int machine_def_remove_disk(struct machine_def *def, const char *target_or_path)
{
	for (size_t i = 0; i < def->ndisks; i++) {
		if (strcmp(def->disks[i].target, target_or_path) &&
		    strcmp(def->disks[i].path, target_or_path))
			continue;
		free(def->disks[i].path);
		free(def->disks[i].target);
		free(def->disks[i].format);
		memmove(&def->disks[i], &def->disks[i + 1],
			(def->ndisks - i - 1) * sizeof(def->disks[0]));
		def->ndisks--;
		return 0;
	}
	return kite_error("no disk with target or path '%s'", target_or_path);
}

int machine_def_add_nic(struct machine_def *def, const char *type, const char *ifname,
			const char *mac, const char *model)
{
	if (strcmp(type, "user") && strcmp(type, "tap"))
		return kite_error("interface type '%s' is not user or tap", type);
	if (!strcmp(type, "tap") && (!ifname || !*ifname))
		return kite_error("a tap interface needs ifname (the host's tap device)");
	if (!strcmp(type, "user") && ifname)
		return kite_error("ifname is only for tap interfaces");
	if (ifname && strlen(ifname) >= 16)
		return kite_error("ifname '%s' is longer than 15 characters", ifname);
	if (mac && !mac_valid(mac))
		return kite_error("MAC '%s' is not a unicast address like 52:54:00:12:34:56", mac);
	if (model && strcmp(model, "virtio"))
		return kite_error("interface model '%s' is not supported (only virtio)", model);
	if (def->nnics >= MACHINE_MAX_DEVICES)
		return kite_error("too many interfaces (at most %d)", MACHINE_MAX_DEVICES);
	struct machine_nic *n = realloc(def->nics, (def->nnics + 1) * sizeof(*n));
	if (!n)
		return kite_error("out of memory");
	def->nics = n;
	n = &def->nics[def->nnics];
	memset(n, 0, sizeof(*n));
	if (mac)
		snprintf(n->mac, sizeof(n->mac), "%s", mac);
	else if (mac_generate_str(n->mac) < 0)
		return -1;
	n->type = strdup(type);
	n->ifname = dup_or_null(ifname);
	n->model = strdup("virtio");
	if (!n->type || !n->model || (ifname && !n->ifname)) {
		free(n->type);
		free(n->ifname);
		free(n->model);
		return kite_error("out of memory");
	}
	def->nnics++;
	return 0;
}

int machine_nic_add_hostfwd(struct machine_nic *nic, const char *rule)
{
	struct net_hostfwd check;
	if (strcmp(nic->type, "user"))
		return kite_error("hostfwd needs a user (NAT) interface");
	if (strchr(rule, ','))
		return kite_error("hostfwd rule '%s' contains a comma", rule);
	if (net_hostfwd_parse(rule, &check, "hostfwd") < 0)
		return -1;
	if (nic->nhostfwd >= MACHINE_MAX_DEVICES)
		return kite_error("too many hostfwd rules (at most %d)", MACHINE_MAX_DEVICES);
	char **n = realloc(nic->hostfwd, (nic->nhostfwd + 1) * sizeof(*n));
	if (!n)
		return kite_error("out of memory");
	nic->hostfwd = n;
	if (!(n[nic->nhostfwd] = strdup(rule)))
		return kite_error("out of memory");
	nic->nhostfwd++;
	return 0;
}

static void nic_free(struct machine_nic *n)
{
	free(n->type);
	free(n->ifname);
	free(n->model);
	for (size_t i = 0; i < n->nhostfwd; i++)
		free(n->hostfwd[i]);
	free(n->hostfwd);
}

int machine_def_remove_nic(struct machine_def *def, const char *mac_or_type)
{
	size_t match = def->nnics, count = 0;
	for (size_t i = 0; i < def->nnics; i++) {
		if (!strcasecmp(def->nics[i].mac, mac_or_type)) {
			match = i;
			count = 1;
			break;
		}
		if (!strcmp(def->nics[i].type, mac_or_type) ||
		    (def->nics[i].ifname && !strcmp(def->nics[i].ifname, mac_or_type))) {
			match = i;
			count++;
		}
	}
	if (count == 0)
		return kite_error("no interface with MAC, type or ifname '%s'", mac_or_type);
	if (count > 1)
		return kite_error("%zu interfaces match '%s': name one by its MAC", count,
				  mac_or_type);
	nic_free(&def->nics[match]);
	memmove(&def->nics[match], &def->nics[match + 1],
		(def->nnics - match - 1) * sizeof(def->nics[0]));
	def->nnics--;
	return 0;
}

json_t *machine_def_to_json(const struct machine_def *def)
{
	json_t *disks = json_array(), *nics = json_array(), *shares = json_array();
	json_t *root = json_object();
	if (!disks || !nics || !shares || !root)
		goto fail;
	for (size_t i = 0; i < def->ndisks; i++) {
		const struct machine_disk *d = &def->disks[i];
		json_t *o = json_pack("{s:s, s:s, s:b}", "path", d->path, "target", d->target,
				      "readonly", d->readonly);
		if (!o || (d->format && json_object_set_new(o, "format", json_string(d->format))) ||
		    json_array_append_new(disks, o))
			goto fail;
	}
	for (size_t i = 0; i < def->nnics; i++) {
		const struct machine_nic *n = &def->nics[i];
		json_t *o =
		    json_pack("{s:s, s:s, s:s}", "type", n->type, "mac", n->mac, "model", n->model);
		json_t *fwd = n->nhostfwd ? json_array() : NULL;
		for (size_t k = 0; fwd && k < n->nhostfwd; k++)
			json_array_append_new(fwd, json_string(n->hostfwd[k]));
		if (!o || (n->ifname && json_object_set_new(o, "ifname", json_string(n->ifname))) ||
		    (n->nhostfwd && json_object_set_new(o, "hostfwd", fwd)) ||
		    json_array_append_new(nics, o))
			goto fail;
	}
	for (size_t i = 0; i < def->nshares; i++) {
		const struct machine_share *s = &def->shares[i];
		if (json_array_append_new(shares,
					  json_pack("{s:s, s:s, s:b}", "path", s->path, "tag",
						    s->tag, "readonly", s->readonly)))
			goto fail;
	}
	if (json_object_set_new(root, "name", json_string(def->name)) ||
	    json_object_set_new(root, "uuid", json_string(def->uuid)) ||
	    json_object_set_new(root, "memory", json_integer((json_int_t)def->memory)) ||
	    json_object_set_new(root, "current_memory",
				json_integer((json_int_t)def->current_memory)) ||
	    json_object_set_new(root, "vcpus", json_integer(def->vcpus)) ||
	    json_object_set_new(root, "kernel", json_string(def->kernel)) ||
	    (def->initrd && json_object_set_new(root, "initrd", json_string(def->initrd))) ||
	    (def->append && json_object_set_new(root, "append", json_string(def->append))) ||
	    json_object_set_new(root, "disks", disks) || json_object_set_new(root, "nics", nics) ||
	    json_object_set_new(root, "shares", shares) ||
	    json_object_set_new(root, "console", json_string(def->console)) ||
	    json_object_set_new(root, "autostart", json_boolean(def->autostart)))
		goto fail_root;
	return root;
fail:
	json_decref(disks);
	json_decref(nics);
	json_decref(shares);
fail_root:
	json_decref(root);
	kite_error("out of memory");
	return NULL;
}

void machine_def_free(struct machine_def *def)
{
	free(def->name);
	free(def->kernel);
	free(def->initrd);
	free(def->append);
	free(def->console);
	for (size_t i = 0; i < def->ndisks; i++) {
		free(def->disks[i].path);
		free(def->disks[i].target);
		free(def->disks[i].format);
	}
	free(def->disks);
	for (size_t i = 0; i < def->nnics; i++)
		nic_free(&def->nics[i]);
	free(def->nics);
	for (size_t i = 0; i < def->nshares; i++) {
		free(def->shares[i].path);
		free(def->shares[i].tag);
	}
	free(def->shares);
	memset(def, 0, sizeof(*def));
}
