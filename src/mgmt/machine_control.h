/* The control socket of a running `kite run` (--control-socket): the VMM side of the
 * protocol in docs/control-protocol.md. It watches the run as its monitor (struct
 * machine_monitor, machine/machine.h), so the machine layer knows nothing of the socket or its
 * wire format. It outlives guest reboots; every handler acts on the boot in progress
 * (machine_with_current). */
#ifndef KITE_MGMT_MACHINE_CONTROL_H
#define KITE_MGMT_MACHINE_CONTROL_H

#include "machine/machine.h"
#include "mgmt/control_commands.h"

/* The VMM's handler of each control command (the server takes them from here). */
extern const control_handler_fn machine_control_handlers[CONTROL_VMM_COMMANDS];

/* Fills `mon` with the hooks that serve the control protocol at `path` for the run: the
 * server starts once the console is open, each boot's devices are hooked to the socket
 * (BALLOON_CHANGE), each boot's end is reported (RESET, SHUTDOWN events), and the server stops
 * with the run. `name` is the machine name of the greeting (NULL: none). The strings must
 * outlive the run. */
void machine_control_monitor(struct machine_monitor *mon, const char *path, const char *name);

#endif
