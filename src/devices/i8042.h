/* i8042 keyboard controller: only what a PC guest uses to reset the machine (command 0xFE
 * pulses the reset line) plus a status port that says "no data, no keyboard busy". */
#ifndef KITE_DEVICES_I8042_H
#define KITE_DEVICES_I8042_H

#include "devices/platform.h"
#include "util/state.h"
#include "kvm/iobus.h"

#include <pthread.h>

#define I8042_DATA_PORT 0x60
#define I8042_CMD_PORT	0x64

struct i8042 {
	pthread_mutex_t lock;
	const struct platform_ops *platform;
	uint8_t command_byte;
	uint8_t pending_cmd; /* a command waiting for its data byte */
	uint8_t output;	     /* a byte for the guest to read at 0x60 */
	bool has_output;
};

/* Registered twice: the data port (0x60) and the command/status port (0x64). */
extern const struct io_ops i8042_data_ops;
extern const struct io_ops i8042_cmd_ops;
/* Command byte, a command waiting for data, the output byte (section "i8042"). */
extern const struct state_ops i8042_state_ops;

void i8042_init(struct i8042 *k, const struct platform_ops *platform);
void i8042_destroy(struct i8042 *k);

#endif
