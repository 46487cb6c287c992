/* The control socket of a running `kite run` (--control-socket): the VMM side of the
 * protocol in docs/control-protocol.md. It outlives guest reboots; every handler acts on
 * the boot in progress. */
#ifndef KITE_MACHINE_MACHINE_CONTROL_H
#define KITE_MACHINE_MACHINE_CONTROL_H

#include "devices/console.h"
#include "mgmt/control_commands.h"
#include "machine/vm.h"

struct control_server;

/* The VMM's handler of each control command (the server takes them from here). */
extern const control_handler_fn machine_control_handlers[CONTROL_VMM_COMMANDS];

/* Starts the server at `path`; its handlers find the running boot through `current`
 * (guarded by `lock`) and end the run through `quit`. Returns 0 or -1. */
int machine_control_start(const char *path, const char *name, struct console *console,
			  pthread_mutex_t *lock, struct vm **current, void (*quit)(int sig),
			  struct control_server **out);
/* Hooks a boot's devices to the socket (BALLOON_CHANGE); before its vCPUs run. */
void machine_control_boot_started(struct control_server *s, struct vm *vm);
/* Reports how a boot ended (RESET, SHUTDOWN events). */
void machine_control_boot_ended(struct control_server *s, enum vm_exit why);
void machine_control_stop(struct control_server *s);

#endif
