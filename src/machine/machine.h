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

/* Something that watches and drives a run from outside, e.g. the control socket
 * (mgmt/machine_control.h): the machine calls these hooks (each may be NULL) on the run's
 * thread, and the monitor acts on the run through machine_with_current() and
 * machine_request_quit() from any thread. */
struct machine_monitor {
	/* The console is open, before the first boot: 0, or -1 (printed) to end the run. */
	int (*start)(void *opaque, struct console *console);
	/* A boot's devices exist; its vCPUs have not run yet. */
	void (*boot_started)(void *opaque, struct vm *vm);
	/* A boot ended (its vm is gone). */
	void (*boot_ended)(void *opaque, enum vm_exit why);
	/* The run ends: after the last boot, before the console closes. */
	void (*stop)(void *opaque);
	void *opaque;
};

/* How to run a machine (its description is config/machine_config.h). */
struct machine_run_options {
	const struct machine_config *machine;
	const struct machine_monitor *monitor; /* or NULL */
	bool detached;	/* no terminal: the console's host end is the socket only */
	bool no_reboot; /* a guest reset ends the run */
	bool stats;
	bool no_pvm_defaults;
	struct savefile *restore; /* the first boot resumes this save file (machine/savefile.h) */
};

/* Boots the machine and runs it until it powers off (or resets with no_reboot), the user
 * quits or it crashes; returns the exit code. */
int machine_run(const struct machine_run_options *opt);

/* machine_with_current(): no boot is in progress (between a reset and the next boot). */
#define MACHINE_BETWEEN_BOOTS (-2)
/* Runs fn on the boot in progress, holding the lock that keeps it from going away, and returns
 * what fn returns; or MACHINE_BETWEEN_BOOTS without calling it. Any thread. */
int machine_with_current(int (*fn)(struct vm *vm, void *arg), void *arg);
/* Ends the run as the user quitting it does (exit code 0). Any thread. */
void machine_request_quit(void);

#endif
