/* The files a machine names: absolute paths for stored definitions, and the checks that find
 * before any VMM runs what opening them would find. */
#include "config/initrd_list.h"
#include "config/machine_config.h"
#include "util/err.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* cwd/path with "." components and doubled slashes dropped (".." is kept: with symbolic links
 * it is not the parent of what precedes it). */
static char *absolute(const char *path)
{
	char cwd[PATH_MAX];
	if (path[0] != '/' && !getcwd(cwd, sizeof(cwd))) {
		kite_error_errno(errno, "cannot find the current directory");
		return NULL;
	}
	char *joined;
	if (asprintf(&joined, "%s/%s", path[0] == '/' ? "" : cwd, path) < 0) {
		kite_error("out of memory");
		return NULL;
	}
	char *o = joined;
	for (const char *p = joined; *p;) {
		if (*p == '/' && (p[1] == '/' || (p[1] == '.' && (p[2] == '/' || !p[2])))) {
			p += p[1] == '/' ? 1 : 2;
			continue;
		}
		*o++ = *p++;
	}
	if (o == joined)
		*o++ = '/';
	*o = '\0';
	return joined;
}

static int make_absolute(char **slot)
{
	if (!*slot || (*slot)[0] == '/')
		return 0;
	char *abs = absolute(*slot);
	if (!abs)
		return -1;
	free(*slot);
	*slot = abs;
	return 0;
}

/* The initrd names a file, or a multiboot kernel's module list (config/initrd_list.h), which
 * only a value that is not itself a file can be. */
static bool initrd_is_list(const char *initrd)
{
	return initrd && initrd_list_is_list(initrd) && access(initrd, F_OK) < 0;
}

/* Each module's file made absolute, its arguments kept. */
static int make_modules_absolute(char **slot)
{
	struct initrd_module l[INITRD_MAX_MODULES];
	int n = initrd_list_parse(*slot, l, INITRD_MAX_MODULES, "initrd");
	if (n < 0)
		return -1;
	int r = 0;
	for (int i = 0; i < n && r == 0; i++) {
		char *abs = l[i].path[0] == '/' ? NULL : absolute(l[i].path);
		char *s = NULL;
		if (abs && asprintf(&s, "%s%s", abs, l[i].string + strlen(l[i].path)) < 0)
			s = NULL;
		if (abs && !s)
			r = kite_error("out of memory");
		if (s) {
			free(l[i].string);
			l[i].string = s;
		}
		free(abs);
	}
	char *joined = r == 0 ? initrd_list_format(l, n) : NULL;
	initrd_list_free(l, n);
	if (!joined)
		return r < 0 ? -1 : kite_error("out of memory");
	free(*slot);
	*slot = joined;
	return 0;
}

int machine_config_absolute_paths(struct machine_config *m)
{
	int r = initrd_is_list(m->initrd) ? make_modules_absolute(&m->initrd)
					  : make_absolute(&m->initrd);
	if (r < 0 || make_absolute(&m->kernel) < 0 || make_absolute(&m->console_path) < 0)
		return -1;
	for (int i = 0; i < m->ndisks; i++)
		if (make_absolute(&m->disks[i].path) < 0)
			return -1;
	for (int i = 0; i < m->nfw_cfg; i++)
		if (make_absolute(&m->fw_cfg[i].file) < 0)
			return -1;
	return 0;
}

static int require_absolute(const char *what, const char *path, const char *where)
{
	if (path && path[0] != '/')
		return kite_error("%s: %s '%s' is a relative path: a definition names files by "
				  "absolute paths (kite edit fixes it)",
				  where, what, path);
	return 0;
}

static int require_absolute_modules(const char *initrd, const char *where)
{
	struct initrd_module l[INITRD_MAX_MODULES];
	int n = initrd_list_parse(initrd, l, INITRD_MAX_MODULES, where);
	int r = n < 0 ? -1 : 0;
	for (int i = 0; i < n && r == 0; i++)
		r = require_absolute("initrd module", l[i].path, where);
	initrd_list_free(l, n < 0 ? 0 : n);
	return r;
}

int machine_config_check_absolute(const struct machine_config *m, const char *where)
{
	int r = initrd_is_list(m->initrd) ? require_absolute_modules(m->initrd, where)
					  : require_absolute("initrd", m->initrd, where);
	if (r < 0 || require_absolute("kernel", m->kernel, where) < 0 ||
	    require_absolute("console file", m->console_path, where) < 0)
		return -1;
	for (int i = 0; i < m->ndisks; i++)
		if (require_absolute("disk", m->disks[i].path, where) < 0)
			return -1;
	for (int i = 0; i < m->nfw_cfg; i++)
		if (require_absolute("fw_cfg file", m->fw_cfg[i].file, where) < 0)
			return -1;
	return 0;
}

static int check_readable(const char *what, const char *path)
{
	if (path && access(path, R_OK) < 0)
		return kite_error("%s %s: cannot read it: %m", what, path);
	return 0;
}

/* Every module's file is readable. */
static int check_modules(const char *initrd)
{
	struct initrd_module l[INITRD_MAX_MODULES];
	int n = initrd_list_parse(initrd, l, INITRD_MAX_MODULES, "initrd");
	if (n < 0)
		return -1;
	int r = 0;
	for (int i = 0; i < n && r == 0; i++)
		r = check_readable("initrd module", l[i].path);
	initrd_list_free(l, n);
	return r;
}

int machine_config_check_files(const struct machine_config *m)
{
	if (check_readable("kernel", m->kernel) < 0)
		return -1;
	if (initrd_is_list(m->initrd) ? check_modules(m->initrd) < 0
				      : check_readable("initrd", m->initrd) < 0)
		return -1;
	for (int i = 0; i < m->nfw_cfg; i++)
		if (check_readable("fw_cfg file", m->fw_cfg[i].file) < 0)
			return -1;
	struct stat st[MACHINE_MAX_DISKS];
	for (int i = 0; i < m->ndisks; i++) {
		const struct disk_config *d = &m->disks[i];
		if (stat(d->path, &st[i]) < 0)
			return kite_error_errno(errno, "disk %s", d->path);
		if (!S_ISREG(st[i].st_mode) && !S_ISBLK(st[i].st_mode))
			return kite_error("disk %s: not a file or a block device", d->path);
		if (access(d->path, d->readonly ? R_OK : R_OK | W_OK) < 0)
			return kite_error_errno(errno, "disk %s: cannot %s it%s", d->path,
						d->readonly ? "read" : "read and write",
						d->readonly ? ""
							    : " (readonly=on attaches it "
							      "read-only)");
		for (int j = 0; j < i; j++)
			if (st[j].st_dev == st[i].st_dev && st[j].st_ino == st[i].st_ino)
				return kite_error("disks %s (%s) and %s (%s) are the same file: a "
						  "disk can be attached once",
						  m->disks[j].path, m->disks[j].target, d->path,
						  d->target);
	}
	return 0;
}

int machine_config_fill_ids(struct machine_config *m)
{
	if (!m->uuid[0] && uuid_generate_str(m->uuid) < 0)
		return -1;
	for (int i = 0; i < m->nnics; i++) {
		struct nic_config *n = &m->nics[i];
		while (!n->mac_set) {
			if (mac_generate(n->mac) < 0)
				return -1;
			n->mac_set = true;
			for (int j = 0; j < m->nnics; j++)
				if (j != i && m->nics[j].mac_set &&
				    !memcmp(m->nics[j].mac, n->mac, 6))
					n->mac_set = false; /* drawn twice: draw again */
		}
	}
	return 0;
}
