/* A machine run in the foreground: boots, reboots on a guest reset, and ends with an exit
 * code (see README "Exit codes"). */
#ifndef KITE_VMM_MACHINE_H
#define KITE_VMM_MACHINE_H

#include "devices/console.h"
#include "vmm/vm.h"

enum {
	KITE_EXIT_OK = 0,    /* powered off, reset with --no-reboot, quit by the user */
	KITE_EXIT_ERROR = 1, /* bad input or a VMM failure */
	KITE_EXIT_CRASH = 2, /* the guest crashed: triple fault, KVM internal error */
};

struct machine_options {
	struct vm_config vm;
	enum console_kind console;
	const char *console_path;
	const char *control_socket; /* --control-socket PATH, or NULL */
};

int machine_run(const struct machine_options *opt);

#endif
