#include "mgmt/paths.h"
#include "util/err.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int mkdir_parents(const char *path, unsigned mode)
{
	char buf[PATH_MAX];
	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return kite_error("%s: path too long", path);
	for (char *p = buf + 1;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char saved = *p;
		*p = '\0';
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return kite_error_errno(errno, "cannot create directory %s", buf);
		*p = saved;
		if (saved == '\0')
			break;
	}
	struct stat st;
	if (stat(path, &st) < 0)
		return kite_error_errno(errno, "%s", path);
	if (!S_ISDIR(st.st_mode))
		return kite_error("%s: not a directory", path);
	return 0;
}

static int set_dir(char *dst, const char *base, const char *sub)
{
	int n = snprintf(dst, PATH_MAX, "%s%s", base, sub);
	if (n < 0 || n >= PATH_MAX)
		return kite_error("%s%s: path too long", base, sub);
	return 0;
}

int mgmt_dirs_init(const char *state_opt, const char *run_opt, struct mgmt_dirs *d)
{
	bool root = geteuid() == 0;
	const char *env;
	bool state_overridden = true;
	if (state_opt && *state_opt) {
		if (set_dir(d->state, state_opt, "") < 0)
			return -1;
	} else if ((env = getenv("KITE_STATE_DIR")) && *env) {
		if (set_dir(d->state, env, "") < 0)
			return -1;
	} else {
		state_overridden = false;
		if (root) {
			if (set_dir(d->state, "/var/lib/kite", "") < 0)
				return -1;
		} else if ((env = getenv("XDG_DATA_HOME")) && *env) {
			if (set_dir(d->state, env, "/kite") < 0)
				return -1;
		} else if ((env = getenv("HOME")) && *env) {
			if (set_dir(d->state, env, "/.local/share/kite") < 0)
				return -1;
		} else {
			return kite_error("no state directory: set HOME, XDG_DATA_HOME or "
					  "KITE_STATE_DIR, or pass --state-dir");
		}
	}
	if (run_opt && *run_opt) {
		if (set_dir(d->run, run_opt, "") < 0)
			return -1;
	} else if ((env = getenv("KITE_RUNTIME_DIR")) && *env) {
		if (set_dir(d->run, env, "") < 0)
			return -1;
	} else if (state_overridden) {
		if (set_dir(d->run, d->state, "/run") < 0)
			return -1;
	} else if (root) {
		if (set_dir(d->run, "/run/kite", "") < 0)
			return -1;
	} else if ((env = getenv("XDG_RUNTIME_DIR")) && *env) {
		if (set_dir(d->run, env, "/kite") < 0)
			return -1;
	} else {
		char tmp[64];
		snprintf(tmp, sizeof(tmp), "/tmp/kite-%u", (unsigned)geteuid());
		if (set_dir(d->run, tmp, "") < 0)
			return -1;
	}
	if (mkdir_parents(d->state, 0755) < 0 || mkdir_parents(d->run, root ? 0755 : 0700) < 0)
		return -1;
	return 0;
}

int mgmt_path(char *buf, size_t size, const char *dir, const char *name, const char *suffix)
{
	int n = snprintf(buf, size, "%s/%s%s", dir, name, suffix);
	if (n < 0 || (size_t)n >= size)
		return kite_error("%s/%s%s: path too long", dir, name, suffix);
	return 0;
}
