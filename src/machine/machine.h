/* A machine run in the foreground: boots, reboots on a guest reset, and ends with an exit
 * code (see README "Exit codes"). */
#ifndef KITE_MACHINE_MACHINE_H
#define KITE_MACHINE_MACHINE_H

#include "devices/console.h"
#include "machine/savefile.h"
#include "machine/vm.h"

enum {
	KITE_EXIT_OK = 0,    /* powered off, reset with --no-reboot, quit by the user */
	KITE_EXIT_ERROR = 1, /* bad input or a VMM failure */
	KITE_EXIT_CRASH = 2, /* the guest crashed: triple fault, KVM internal error */
	/* (CODE << 1) | 1: the guest wrote CODE to the test exit device (--exit-device) */
};

/* How to run a machine (its description is config/machine_config.h). */
struct machine_run_options {
	const struct machine_config *machine;
	const char *control_socket; /* serve the control protocol there, or NULL */
	bool detached;		    /* no terminal: the console's host end is the socket only */
	bool no_reboot;		    /* a guest reset ends the run */
	bool stats;
	bool no_pvm_defaults;
	struct savefile *restore; /* the first boot resumes this save file (machine/savefile.h) */
};

/* Boots the machine and runs it until it powers off (or resets with no_reboot), the user
 * quits or it crashes; returns the exit code. */
int machine_run(const struct machine_run_options *opt);

#endif
