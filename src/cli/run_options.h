/* kite run's command line, shared with its test stand-in `kite _fake-run`, so that the
 * stand-in takes exactly what the real VMM takes: the machine options (machine_options.h) or
 * --definition FILE (a definition, as `kite start` passes it), plus how to run it. */
#ifndef KITE_CLI_RUN_OPTIONS_H
#define KITE_CLI_RUN_OPTIONS_H

#include "config/machine_config.h"
#include "machine/machine.h"
#include "machine/savefile.h"

#include <stdio.h>

struct run_options {
	struct machine_config machine;
	struct machine_run_options run; /* run.machine points at `machine` */
	const char *control_socket;	/* --control-socket PATH, or NULL */
	const char *definition;		/* --definition FILE, or NULL */
	const char *restore_path;	/* --restore FILE, or NULL */
	struct savefile restore;	/* --restore: opened and checked; run.restore points here */
};

#define RUN_OPTIONS_HELP                                                                           \
	"      --definition FILE    the machine from a definition (JSON, as `kite dumpjson`\n"     \
	"                           prints it) instead of the options above\n"                     \
	"      --restore FILE       resume the machine a save file holds (`kite save`): its\n"     \
	"                           definition, devices and RAM, instead of booting\n"             \
	"      --name NAME          machine name (shown in messages)\n"                            \
	"      --control-socket PATH  serve the control protocol (docs/control-protocol.md)\n"     \
	"      --detached           no terminal: the console is only on the control socket\n"      \
	"      --no-reboot          exit instead of rebooting when the guest resets\n"             \
	"      --stats              print KVM exit counts, ioeventfd and irqfd use when the\n"     \
	"                           VM ends\n"                                                     \
	"      --no-pvm-defaults    on a KVM-PVM host, do not add the kernel parameters that\n"    \
	"                           avoid what its emulator lacks (see README)\n"                  \
	"  -h, --help               this help\n"

/* Parses argv into o: the machine is complete, valid, and its files are there (kernel
 * readable, disks present and distinct). Returns 0, 1 after --help (`usage` printed it), or -1
 * after an error (reported). run_options_free either way. */
int run_options_parse(int argc, char **argv, const char *verb, void (*usage)(FILE *out),
		      struct run_options *o);
void run_options_free(struct run_options *o);

#endif
