/* The run state of a machine, read from the files its supervisor keeps in the runtime
 * directory (no daemon holds it in memory):
 *   NAME.pid        "RUNNER_PID RUNNER_START SUPERVISOR_PID SUPERVISOR_START" while it runs
 *                   (START: process start time from /proc, so a reused pid is not mistaken)
 *   NAME.status     {"state": "crashed"|"shut off", "reason": ...} after the VMM ended
 *                   (shut off: "shutdown" or "destroyed", as virsh's domstate --reason)
 *   NAME.log        the VMM's stdout/stderr and the supervisor's notes
 *   NAME.console    everything the guest wrote to its serial console
 *   NAME.sock       the control socket
 *   NAME.destroying present while `kite destroy` kills it (so the kill is not a crash) */
#ifndef KITE_MGMT_RUNSTATE_H
#define KITE_MGMT_RUNSTATE_H

#include "mgmt/paths.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

enum machine_state {
	MACHINE_SHUTOFF,
	MACHINE_RUNNING,
	MACHINE_PAUSED,
	MACHINE_CRASHED,
};

struct machine_status {
	enum machine_state state;
	pid_t pid;	      /* the VMM process while running */
	pid_t supervisor_pid; /* its supervisor */
	char reason[512];     /* crashed: why; shut off: shutdown/destroyed (or empty); running:
			       * a note when the socket did not answer */
};

/* virsh's words: "running", "paused", "shut off", "crashed". */
const char *machine_state_name(enum machine_state s);

/* Reads NAME's state. With `query`, a live machine is asked over its socket whether it is
 * paused (short timeout); without, a live machine reads as running. Returns 0 or -1. */
int machine_status_get(const struct mgmt_dirs *d, const char *name, bool query,
		       struct machine_status *st);

/* Paths of NAME's runtime files ("sock", "pid", "status", "log", "console", "destroying"). */
int runtime_path(const struct mgmt_dirs *d, const char *name, const char *what, char *buf,
		 size_t size);

/* Process start time (field 22 of /proc/PID/stat), 0 when the process does not exist. */
uint64_t process_start_time(pid_t pid);

/* True when `pid` exists and started at `start`. */
bool process_alive(pid_t pid, uint64_t start);

/* Pid file contents. Returns 0, or -1 when absent or unreadable (errno ENOENT when absent). */
int pidfile_read(const char *path, pid_t *runner, uint64_t *runner_start, pid_t *sup,
		 uint64_t *sup_start);

/* The last "error"/"crash" line of NAME's log (or its last line), for crash reasons. */
void log_last_error(const char *log_path, char *out, size_t size);

#endif
