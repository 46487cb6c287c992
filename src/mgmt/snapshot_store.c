#include "mgmt/snapshot_store.h"
#include "mgmt/fileutil.h"
#include "util/err.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define META_MAX (16 << 20)

static int meta_path(const struct mgmt_dirs *d, const char *name, char *buf, size_t size)
{
	return mgmt_path(buf, size, d->state, name, ".snapshots");
}

static bool str_or_null(json_t *v)
{
	return v && (json_is_string(v) || json_is_null(v));
}

/* Every field a reader uses, with its type: a hand-edited or corrupt file is refused. */
static int check_shape(json_t *meta, const char *path)
{
	json_t *list = json_object_get(meta, "snapshots"), *s;
	size_t i;
	if (!json_is_object(meta) || !str_or_null(json_object_get(meta, "current")) ||
	    !json_is_array(list))
		return kite_error("%s: not a snapshot list", path);
	json_array_foreach(list, i, s)
	{
		json_t *disks = json_object_get(s, "disks");
		if (!json_is_object(s) || !json_is_string(json_object_get(s, "name")) ||
		    !json_is_string(json_object_get(s, "description")) ||
		    !str_or_null(json_object_get(s, "parent")) ||
		    !json_is_integer(json_object_get(s, "creation_time")) ||
		    !json_is_string(json_object_get(s, "state")) ||
		    !json_is_boolean(json_object_get(s, "memory")) ||
		    !str_or_null(json_object_get(s, "vmstate_disk")) ||
		    !json_is_integer(json_object_get(s, "vm_state_size")) || !json_is_array(disks))
			return kite_error("%s: snapshot %zu is incomplete or corrupt", path, i + 1);
		json_t *d;
		size_t k;
		json_array_foreach(disks, k, d)
		{
			if (!json_is_object(d) || !json_is_string(json_object_get(d, "target")) ||
			    !json_is_string(json_object_get(d, "snapshot")))
				return kite_error("%s: snapshot %zu: disk %zu is corrupt", path,
						  i + 1, k + 1);
		}
	}
	return 0;
}

json_t *snapshot_store_load(const struct mgmt_dirs *d, const char *name)
{
	char path[PATH_MAX];
	if (meta_path(d, name, path, sizeof(path)) < 0)
		return NULL;
	char *text;
	size_t len;
	if (read_file_all(path, META_MAX, &text, &len) < 0) {
		if (errno == ENOENT)
			return json_pack("{s:n, s:[]}", "current", "snapshots");
		kite_error_errno(errno, "%s", path);
		return NULL;
	}
	json_error_t je;
	json_t *meta = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	free(text);
	if (!meta) {
		kite_error("%s: not valid JSON: %s", path, je.text);
		return NULL;
	}
	if (check_shape(meta, path) < 0) {
		json_decref(meta);
		return NULL;
	}
	return meta;
}

int snapshot_store_save(const struct mgmt_dirs *d, const char *name, json_t *meta)
{
	char path[PATH_MAX];
	if (meta_path(d, name, path, sizeof(path)) < 0 || check_shape(meta, path) < 0)
		return -1;
	char *text = json_dumps(meta, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	if (!text)
		return kite_error("out of memory");
	size_t n = strlen(text);
	text[n] = '\n'; /* json_dumps ends with the NUL we overwrite; length n + 1 */
	int r = write_file_atomic(path, text, n + 1, 0644);
	free(text);
	return r;
}

int snapshot_store_revert_path(const struct mgmt_dirs *d, const char *name, char *buf, size_t size)
{
	return mgmt_path(buf, size, d->state, name, ".revert-save");
}

int snapshot_store_remove(const struct mgmt_dirs *d, const char *name)
{
	char path[PATH_MAX], save[PATH_MAX];
	if (meta_path(d, name, path, sizeof(path)) < 0 ||
	    snapshot_store_revert_path(d, name, save, sizeof(save)) < 0)
		return -1;
	if (unlink(path) < 0 && errno != ENOENT)
		return kite_error_errno(errno, "cannot remove %s", path);
	if (unlink(save) < 0 && errno != ENOENT)
		return kite_error_errno(errno, "cannot remove %s", save);
	return 0;
}

int snapshot_store_count(const struct mgmt_dirs *d, const char *name)
{
	json_t *meta = snapshot_store_load(d, name);
	if (!meta)
		return -1;
	int n = (int)json_array_size(json_object_get(meta, "snapshots"));
	json_decref(meta);
	return n;
}

json_t *snapshot_find(json_t *meta, const char *snap)
{
	json_t *s;
	size_t i;
	json_array_foreach(json_object_get(meta, "snapshots"), i, s)
	{
		if (!strcmp(json_string_value(json_object_get(s, "name")), snap))
			return s;
	}
	return NULL;
}

static const char *parent_of(json_t *s)
{
	return json_string_value(json_object_get(s, "parent"));
}

void snapshot_count_children(json_t *meta, const char *snap, int *children, int *descendants)
{
	json_t *s;
	size_t i;
	*children = *descendants = 0;
	json_array_foreach(json_object_get(meta, "snapshots"), i, s)
	{
		const char *p = parent_of(s);
		if (p && !strcmp(p, snap))
			(*children)++;
		/* an ancestor chain is at most as long as the list */
		for (size_t hops = 0;
		     p && hops <= json_array_size(json_object_get(meta, "snapshots")); hops++) {
			if (!strcmp(p, snap)) {
				(*descendants)++;
				break;
			}
			json_t *up = snapshot_find(meta, p);
			p = up ? parent_of(up) : NULL;
		}
	}
}

void snapshot_forget(json_t *meta, const char *snap)
{
	json_t *list = json_object_get(meta, "snapshots"), *gone = snapshot_find(meta, snap), *s;
	if (!gone)
		return;
	json_t *parent = json_incref(json_object_get(gone, "parent"));
	size_t i, at = 0;
	json_array_foreach(list, i, s)
	{
		const char *p = parent_of(s);
		if (p && !strcmp(p, snap))
			json_object_set(s, "parent", parent);
		if (s == gone)
			at = i;
	}
	const char *cur = json_string_value(json_object_get(meta, "current"));
	if (cur && !strcmp(cur, snap))
		json_object_set(meta, "current", parent);
	json_array_remove(list, at);
	json_decref(parent);
}
