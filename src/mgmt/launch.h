/* Starting and stopping a machine's VMM process. `kite start` forks a supervisor (detached,
 * its own session) that runs the VMM, records its pid and, when it ends, whether it ended
 * cleanly: that record is how `kite list` tells "shut off" from "crashed" with no daemon.
 *
 * The VMM gets the definition itself: `kite start` writes it to RUNTIME/NAME.json and runs
 * `kite run --definition RUNTIME/NAME.json --control-socket RUNTIME/NAME.sock --detached`.
 * The environment variable KITE_RUNNER replaces "<this kite binary> run" with another command
 * (words separated by spaces), e.g. "kite _fake-run" for tests on hosts without /dev/kvm. */
#ifndef KITE_MGMT_LAUNCH_H
#define KITE_MGMT_LAUNCH_H

#include "mgmt/control_client.h"
#include "config/machine_config.h"
#include "mgmt/paths.h"

/* How long kite start waits for a new VMM to answer on its control socket: 30 s, or
 * $KITE_START_TIMEOUT seconds (a slow host: a software-CPU KVM host, a loaded test machine). */
int start_timeout_ms(void);
#define DESTROY_KILL_MS 400    /* destroy's SIGKILL, counted from its start */
#define SAVE_TIMEOUT_MS 600000 /* writing a large guest's RAM (the save command's own) */

/* The VMM's argv for machine NAME (NULL-terminated; free with argv_free): its definition, or
 * with `restore` the save file it resumes (`--restore FILE`). NULL on error. */
char **machine_runner_argv(const struct mgmt_dirs *d, const char *name, const char *restore);
void argv_free(char **argv);

/* Starts `def` and returns once its control socket answers query-status; with `restore`
 * (a save file of this machine, checked by the caller) the VMM resumes it instead of
 * booting. The caller holds the machine's lock and has checked that it is not running.
 * Returns 0 or -1 (reported, with the reason from the VMM's log when it died). */
int machine_start(const struct mgmt_dirs *d, const struct machine_config *def, const char *restore,
		  int timeout_ms);

/* STATE/NAME.save: the machine's managed save (`kite managedsave`), which `kite start`
 * resumes. Returns 0 or -1. */
int managed_save_path(const struct mgmt_dirs *d, const char *name, char *buf, size_t size);

/* Saves running NAME into `file` (an absolute path) over its socket and waits until its VMM
 * has ended; the supervisor records it shut off for reason "saved". Returns 0 or -1. */
int machine_save(const struct mgmt_dirs *d, const char *name, const char *file);

/* Ends NAME's VMM now: "quit" on the socket, SIGKILL when that has not ended it
 * DESTROY_KILL_MS after the start (connecting included); recorded as shut off, not crashed.
 * Returns 0 or -1. */
int machine_destroy(const struct mgmt_dirs *d, const char *name);

/* Connects to a running machine's socket, printing a clear error when it is not running.
 * Returns 0 or -1. */
int machine_connect(const struct mgmt_dirs *d, const char *name, struct control_client **c);

/* Waits up to timeout_ms for NAME to be shut off (or crashed). Returns 0 once it is, 1 when
 * it still runs. */
int machine_wait_stopped(const struct mgmt_dirs *d, const char *name, int timeout_ms);

#endif
