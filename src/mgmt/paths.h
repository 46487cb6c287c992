/* Where machines live. The state directory holds definitions (NAME.json) and their lock
 * files; the runtime directory holds what exists only while a machine runs: its control
 * socket, pid file, log and exit status. */
#ifndef KITE_MGMT_PATHS_H
#define KITE_MGMT_PATHS_H

#include <limits.h>
#include <stddef.h>

struct mgmt_dirs {
	char state[PATH_MAX];
	char run[PATH_MAX];
};

/* Picks the directories: `state_opt` (--state-dir), else $KITE_STATE_DIR, else /var/lib/kite
 * as root and $XDG_DATA_HOME/kite (~/.local/share/kite) otherwise. `run_opt`
 * (--runtime-dir), else $KITE_RUNTIME_DIR, else STATE/run when the state directory was
 * overridden (so that two state directories never share sockets), else /run/kite as root and
 * $XDG_RUNTIME_DIR/kite otherwise. Creates both directories. Returns 0 or -1. */
int mgmt_dirs_init(const char *state_opt, const char *run_opt, struct mgmt_dirs *d);

/* Writes DIR/NAME<suffix> into buf. Returns 0, or -1 with an error when it does not fit. */
int mgmt_path(char *buf, size_t size, const char *dir, const char *name, const char *suffix);

/* Creates `path` and its missing parents with `mode`. Returns 0 or -1 (reported). */
int mkdir_parents(const char *path, unsigned mode);

#endif
