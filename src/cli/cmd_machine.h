/* Shared plumbing of the machine verbs (kite define, list, start, ...: virsh's verbs with
 * no daemon). Every verb takes --state-dir DIR and --runtime-dir DIR (see mgmt/paths.h). */
#ifndef KITE_CLI_CMD_MACHINE_H
#define KITE_CLI_CMD_MACHINE_H

#include "mgmt/def_store.h"
#include "config/machine_config.h"
#include "mgmt/control_commands.h"
#include "mgmt/paths.h"

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>

enum {
	OPT_STATE_DIR = 1000,
	OPT_RUNTIME_DIR,
	OPT_HELP,
};

#define MACHINE_COMMON_OPTIONS                                                                     \
	{"state-dir", required_argument, NULL, OPT_STATE_DIR},                                     \
	    {"runtime-dir", required_argument, NULL, OPT_RUNTIME_DIR},                             \
	    {"help", no_argument, NULL, OPT_HELP},

#define MACHINE_COMMON_HELP                                                                        \
	"  --state-dir DIR      definitions (default /var/lib/kite as root, else\n"                \
	"                       $XDG_DATA_HOME/kite; env KITE_STATE_DIR)\n"                        \
	"  --runtime-dir DIR    sockets, pid files, logs (default /run/kite as root, else\n"       \
	"                       $XDG_RUNTIME_DIR/kite, or STATE/run with --state-dir; env\n"       \
	"                       KITE_RUNTIME_DIR)\n"

struct machine_cli {
	const char *verb;
	const char *usage; /* the full help text */
	const char *state_opt, *run_opt;
	struct mgmt_dirs dirs;
	char resolved[MACHINE_NAME_MAX + 1];
};

/* getopt_long over argv with `longopts` (which include MACHINE_COMMON_OPTIONS). Returns the
 * option like getopt_long; handles the common ones itself (returns 'H' after printing help,
 * '?' after reporting an unknown option). */
int machine_getopt(struct machine_cli *cli, int argc, char **argv, const char *shortopts,
		   const struct option *longopts);

/* What machine_parse does with an option: sets *flag, or points *value at its argument. */
struct machine_flag {
	int code;
	bool *flag;
	const char **value;
};

/* The whole command line of a verb: options (common ones, then `flags`, a list ended by
 * code 0), then between `min` and `max` positional arguments (named in `what` for the usage
 * error; they are argv[optind...]), then the directories. Returns -1 when the verb should go
 * on, else the exit code (0 after --help, 1 after an error). */
int machine_parse(struct machine_cli *cli, int argc, char **argv, const struct option *opts,
		  const struct machine_flag *flags, int min, int max, const char *what);

/* After option parsing: resolves the directories. Returns 0 or -1. */
int machine_cli_dirs(struct machine_cli *cli);

/* Takes exactly `n` positional arguments starting at optind (their names for the usage
 * error in `what`, e.g. "NAME SIZE"). Returns 0 or -1 (reported). */
int machine_positional(struct machine_cli *cli, int argc, char **argv, int n, const char *what);

/* As virsh, a machine may be named by its name, its Id (the VMM's pid while it runs) or its
 * UUID: returns the name (in cli->resolved when looked up), or `arg` itself when nothing
 * matches, so that the caller's error names what the user typed. */
const char *machine_resolve(struct machine_cli *cli, const char *arg);

/* Loads a definition, printing an error (corrupt files named as such). Returns 0 or -1. */
int machine_load(struct machine_cli *cli, const char *name, struct machine_config *def);

/* virsh's table: header row, dashed rule, rows; every column left-aligned and padded. */
struct table;
struct table *table_new(int ncols, const char *const *header);
int table_add(struct table *t, const char *const *cells);
void table_print(struct table *t, FILE *out);
void table_free(struct table *t);

int cmd_define(int argc, char **argv);
int cmd_create(int argc, char **argv);
int cmd_undefine(int argc, char **argv);
int cmd_dumpjson(int argc, char **argv);
int cmd_edit(int argc, char **argv);
int cmd_autostart(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_dominfo(int argc, char **argv);
int cmd_domstate(int argc, char **argv);
int cmd_domblklist(int argc, char **argv);
int cmd_domiflist(int argc, char **argv);
int cmd_domid(int argc, char **argv);
int cmd_domuuid(int argc, char **argv);
int cmd_domname(int argc, char **argv);
int cmd_setmem(int argc, char **argv);
int cmd_setmaxmem(int argc, char **argv);
int cmd_setvcpus(int argc, char **argv);
int cmd_attach_disk(int argc, char **argv);
int cmd_detach_disk(int argc, char **argv);
int cmd_attach_interface(int argc, char **argv);
int cmd_detach_interface(int argc, char **argv);
int cmd_start(int argc, char **argv);
int cmd_save(int argc, char **argv);
int cmd_restore(int argc, char **argv);
int cmd_managedsave(int argc, char **argv);
int cmd_managedsave_remove(int argc, char **argv);
int cmd_snapshot_create_as(int argc, char **argv);
int cmd_snapshot_list(int argc, char **argv);
int cmd_snapshot_current(int argc, char **argv);
int cmd_snapshot_info(int argc, char **argv);
int cmd_snapshot_dumpjson(int argc, char **argv);
int cmd_snapshot_delete(int argc, char **argv);
int cmd_snapshot_revert(int argc, char **argv);
int cmd_suspend(int argc, char **argv);
int cmd_resume(int argc, char **argv);
int cmd_reboot(int argc, char **argv);
int cmd_shutdown(int argc, char **argv);
int cmd_destroy(int argc, char **argv);
int cmd_console(int argc, char **argv);
int cmd_event(int argc, char **argv);
int cmd_monitor(int argc, char **argv);
int cmd_fake_run(int argc, char **argv);
int cmd_net_define(int argc, char **argv);
int cmd_net_list(int argc, char **argv);
int cmd_net_info(int argc, char **argv);
int cmd_net_dumpjson(int argc, char **argv);
int cmd_net_start(int argc, char **argv);
int cmd_net_destroy(int argc, char **argv);
int cmd_net_undefine(int argc, char **argv);
int cmd_net_autostart(int argc, char **argv);
int cmd_net_dhcp_leases(int argc, char **argv);
/* The stand-in VMM's handler of each control command. */
extern const control_handler_fn fake_run_handlers[CONTROL_VMM_COMMANDS];

#endif
