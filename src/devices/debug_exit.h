/* The test exit device, QEMU's isa-debug-exit: a guest write of CODE to its port ends the VM,
 * and kite exits with (CODE << 1) | 1, as QEMU does (the shell sees the low 8 bits). Off unless
 * the machine asks for it (--exit-device port=N, config/machine_config.h); registered over
 * DEBUG_EXIT_LEN ports from N, as QEMU's -device isa-debug-exit,iobase=N,iosize=4. A write of
 * any width ends the VM with its value zero-extended; reads return zeros. */
#ifndef KITE_DEVICES_DEBUG_EXIT_H
#define KITE_DEVICES_DEBUG_EXIT_H

#include "devices/platform.h"
#include "kvm/iobus.h"

#define DEBUG_EXIT_LEN 4

struct debug_exit {
	const struct platform_ops *platform;
};

extern const struct io_ops debug_exit_ops;

void debug_exit_init(struct debug_exit *d, const struct platform_ops *platform);

#endif
