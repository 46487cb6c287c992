/* Subcommands of the kite binary: one file per command under src/cli/, each exporting one
 * entry point that receives argv with argv[0] set to the command name. A command returns the
 * process exit code. */
#ifndef KITE_CLI_COMMANDS_H
#define KITE_CLI_COMMANDS_H

struct kite_command {
	const char *name;
	int (*main)(int argc, char **argv);
	const char *summary;
};

int cmd_run(int argc, char **argv);
int cmd_img(int argc, char **argv);
int cmd_guest(int argc, char **argv);
/* Machine verbs (virsh's, no daemon): declared with their helpers in cli/cmd_machine.h. */
#include "cli/cmd_machine.h"

#endif
