#include "mgmt/def_store.h"
#include "block/block.h"
#include "mgmt/fileutil.h"
#include "util/err.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int def_from_json(json_t *root, const char *where, struct machine_config *m)
{
	if (machine_config_from_json(root, where, m) < 0)
		return -1;
	if (!m->name[0]) {
		machine_config_free(m);
		return kite_error("%s: name is required", where);
	}
	return 0;
}

int def_check_disks(const struct machine_config *m)
{
	if (machine_config_check_files(m) < 0)
		return -1;
	for (int i = 0; i < m->ndisks; i++) {
		const struct disk_config *d = &m->disks[i];
		/* Shared and read-only: another VM may use the image now, and this one only later.
		 */
		unsigned flags = BLK_O_RDONLY | BLK_O_SHARE | BLK_O_NO_PROBE_WARN |
				 (d->nocache ? BLK_O_NOCACHE : 0);
		struct blk *b = blk_open(d->path, d->format[0] ? d->format : NULL, flags);
		if (!b)
			return kite_error("disk %s (%s) does not open as the VMM would open it",
					  d->path, d->target);
		blk_close(b);
	}
	return 0;
}

int def_prepare(struct machine_config *m, const char *where)
{
	if (machine_config_absolute_paths(m) < 0 || def_check_disks(m) < 0 ||
	    machine_config_fill_ids(m) < 0)
		return -1;
	return machine_config_validate(m, where);
}

/* A stored definition has everything kite start needs: absolute paths, a UUID, MACs. */
static int check_storable(const struct machine_config *m, const char *where)
{
	if (machine_config_validate(m, where) < 0 || machine_config_check_absolute(m, where) < 0)
		return -1;
	if (!m->name[0] || !uuid_valid(m->uuid))
		return kite_error("%s: a stored definition needs a name and a UUID", where);
	for (int i = 0; i < m->nnics; i++)
		if (!m->nics[i].mac_set)
			return kite_error("%s: a stored definition gives each NIC a MAC", where);
	return 0;
}

int def_path(const struct mgmt_dirs *d, const char *name, char *buf, size_t size)
{
	return mgmt_path(buf, size, d->state, name, ".json");
}

int def_lock(const struct mgmt_dirs *d, const char *name)
{
	char path[PATH_MAX];
	if (machine_name_check(name) < 0 || mgmt_path(path, sizeof(path), d->state, name, ".lock"))
		return -1;
	return lock_file(path);
}

/* A one-line reason why a definition file does not parse, for list and dominfo. */
static char *jansson_reason(const json_error_t *je, size_t len)
{
	char *out = NULL;
	int r;
	if (len == 0)
		r = asprintf(&out, "the file is empty");
	else if (strstr(je->text, "premature end of input") ||
		 strstr(je->text, "unexpected newline") || strstr(je->text, "end of file"))
		r = asprintf(&out, "truncated: JSON ends early at line %d (%s)", je->line,
			     je->text);
	else
		r = asprintf(&out, "not valid JSON: %s at line %d column %d", je->text, je->line,
			     je->column);
	return r < 0 ? NULL : out;
}

enum def_load_result def_load(const struct mgmt_dirs *d, const char *name, bool quiet,
			      struct machine_config *def, char **why)
{
	char path[PATH_MAX];
	if (why)
		*why = NULL;
	if (machine_name_check(name) < 0 || def_path(d, name, path, sizeof(path)) < 0)
		return DEF_ERROR;
	char *data;
	size_t len;
	if (read_file_all(path, DEF_FILE_MAX, &data, &len) < 0) {
		if (errno == ENOENT) {
			if (!quiet)
				kite_error("no machine named '%s' (kite list --all shows them)",
					   name);
			return DEF_MISSING;
		}
		if (errno == EFBIG) {
			if (why)
				*why = strdup("the file is larger than 1 MiB");
			if (!quiet)
				kite_error("definition %s is corrupt: larger than 1 MiB", path);
			return DEF_CORRUPT;
		}
		kite_error_errno(errno, "cannot read definition %s", path);
		return DEF_ERROR;
	}
	json_error_t je;
	json_t *root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &je);
	if (!root) {
		char *reason = jansson_reason(&je, len);
		if (!quiet)
			kite_error("definition %s is corrupt: %s", path, reason ? reason : "?");
		if (why)
			*why = reason;
		else
			free(reason);
		free(data);
		return DEF_CORRUPT;
	}
	free(data);
	/* The parser prints what is wrong; when quiet, that message is captured (stderr
	 * briefly points at a temp file) to become the reason list and autostart show. */
	int saved = -1;
	FILE *cap = NULL;
	if (quiet) {
		fflush(stderr);
		cap = tmpfile();
		saved = cap ? dup(STDERR_FILENO) : -1;
		if (saved >= 0 && dup2(fileno(cap), STDERR_FILENO) < 0) {
			close(saved);
			saved = -1;
		}
	}
	int r = def_from_json(root, path, def);
	char reason[300] = "";
	if (saved >= 0) {
		fflush(stderr);
		dup2(saved, STDERR_FILENO);
		close(saved);
		rewind(cap);
		if (fgets(reason, sizeof(reason), cap)) {
			reason[strcspn(reason, "\n")] = '\0';
			/* "kite: error: PATH: why" -> "why" */
			const char *p = reason, *prefix = "kite: error: ";
			if (!strncmp(p, prefix, strlen(prefix)))
				p += strlen(prefix);
			if (!strncmp(p, path, strlen(path)) && !strncmp(p + strlen(path), ": ", 2))
				p += strlen(path) + 2;
			memmove(reason, p, strlen(p) + 1);
		}
	}
	if (cap)
		fclose(cap);
	json_decref(root);
	if (r < 0) {
		if (why)
			*why = strdup(reason[0] ? reason : "invalid definition");
		if (!quiet)
			kite_error("definition %s is invalid", path);
		return DEF_CORRUPT;
	}
	if (strcmp(def->name, name)) {
		if (why && asprintf(why, "the file names machine '%s'", def->name) < 0)
			*why = NULL;
		if (!quiet)
			kite_error("definition %s names machine '%s', not '%s'", path, def->name,
				   name);
		machine_config_free(def);
		return DEF_CORRUPT;
	}
	return DEF_OK;
}

int def_save(const struct mgmt_dirs *d, const struct machine_config *def)
{
	char path[PATH_MAX];
	if (check_storable(def, def->name) < 0 || def_path(d, def->name, path, sizeof(path)))
		return -1;
	json_t *root = machine_config_to_json(def);
	if (!root)
		return -1;
	char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(root);
	if (!text)
		return kite_error("out of memory");
	size_t len = strlen(text);
	char *withnl = realloc(text, len + 2);
	if (!withnl) {
		free(text);
		return kite_error("out of memory");
	}
	withnl[len] = '\n';
	withnl[len + 1] = '\0';
	int r = write_file_atomic(path, withnl, len + 1, 0644);
	free(withnl);
	return r;
}

int def_remove(const struct mgmt_dirs *d, const char *name)
{
	char path[PATH_MAX];
	if (def_path(d, name, path, sizeof(path)) < 0)
		return -1;
	if (unlink(path) < 0)
		return kite_error_errno(errno, "cannot remove %s", path);
	return fsync_parent_dir(path);
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int def_list_names(const struct mgmt_dirs *d, char ***names)
{
	DIR *dir = opendir(d->state);
	if (!dir)
		return kite_error_errno(errno, "cannot list %s", d->state);
	char **out = NULL;
	int n = 0, cap = 0;
	struct dirent *e;
	errno = 0;
	while ((e = readdir(dir))) {
		size_t len = strlen(e->d_name);
		if (len <= 5 || strcmp(e->d_name + len - 5, ".json") || e->d_name[0] == '.')
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			char **nb = realloc(out, (size_t)cap * sizeof(*out));
			if (!nb)
				goto oom;
			out = nb;
		}
		if (!(out[n] = strndup(e->d_name, len - 5)))
			goto oom;
		n++;
	}
	closedir(dir);
	if (n > 1)
		qsort(out, (size_t)n, sizeof(*out), cmp_names);
	*names = out;
	return n;
oom:
	closedir(dir);
	def_free_names(out, n);
	return kite_error("out of memory");
}

void def_free_names(char **names, int n)
{
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
}
