/* NAME.console: everything the guest writes on its serial console, kept on disk by the
 * machine's supervisor (not by the VMM), so it outlives the VM for crash post-mortems
 * whatever VMM runs. */
#ifndef KITE_MGMT_CONSOLE_LOG_H
#define KITE_MGMT_CONSOLE_LOG_H

#include <stdint.h>
#include <sys/types.h>

/* Past this size NAME.console is renamed NAME.console.old and a new one begun. */
#define CONSOLE_LOG_MAX (8u << 20)

/* Starts a detached thread that waits (while VM process `pid`, started at `start`, lives)
 * for the control socket at `sockpath`, attaches to the console with a full replay and
 * appends what arrives to `logpath` until the VM closes the connection. 0 or -1. */
int console_log_start(const char *sockpath, const char *logpath, pid_t pid, uint64_t start);

#endif
