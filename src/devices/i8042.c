#include "devices/i8042.h"

#include <string.h>

#define STATUS_OBF	0x01 /* output buffer full */
#define STATUS_SYS	0x04 /* self test passed */
#define STATUS_CMD	0x08 /* last write was a command */
#define CMD_READ_CMD	0x20
#define CMD_WRITE_CMD	0x60
#define CMD_SELF_TEST	0xAA
#define CMD_WRITE_OUT	0xD1
#define CMD_PULSE_RESET 0xFE

static void set_output(struct i8042 *k, uint8_t v)
{
	k->output = v;
	k->has_output = true;
}

static void cmd_read(void *opaque, uint64_t off, uint8_t *data, unsigned len)
{
	struct i8042 *k = opaque;
	memset(data, 0, len);
	pthread_mutex_lock(&k->lock);
	data[0] = STATUS_SYS | (k->has_output ? STATUS_OBF : 0);
	pthread_mutex_unlock(&k->lock);
}

static void cmd_write(void *opaque, uint64_t off, const uint8_t *data, unsigned len)
{
	struct i8042 *k = opaque;
	bool reset = false;
	pthread_mutex_lock(&k->lock);
	k->pending_cmd = 0;
	switch (data[0]) {
	case CMD_READ_CMD:
		set_output(k, k->command_byte);
		break;
	case CMD_WRITE_CMD:
	case CMD_WRITE_OUT:
		k->pending_cmd = data[0];
		break;
	case CMD_SELF_TEST:
		set_output(k, 0x55);
		break;
	default:
		/* Commands 0xF0-0xFF pulse output lines; bit 0 low pulses the reset line. */
		if ((data[0] & 0xF0) == 0xF0 && !(data[0] & 1))
			reset = true;
		break;
	}
	pthread_mutex_unlock(&k->lock);
	if (reset && k->platform && k->platform->event)
		k->platform->event(k->platform->opaque, MACHINE_RESET);
}

static void data_read(void *opaque, uint64_t off, uint8_t *data, unsigned len)
{
	struct i8042 *k = opaque;
	memset(data, 0, len);
	pthread_mutex_lock(&k->lock);
	data[0] = k->output;
	k->has_output = false;
	pthread_mutex_unlock(&k->lock);
}

static void data_write(void *opaque, uint64_t off, const uint8_t *data, unsigned len)
{
	struct i8042 *k = opaque;
	bool reset = false;
	pthread_mutex_lock(&k->lock);
	if (k->pending_cmd == CMD_WRITE_CMD)
		k->command_byte = data[0];
	else if (k->pending_cmd == CMD_WRITE_OUT && !(data[0] & 1))
		reset = true; /* output port bit 0 is the reset line */
	k->pending_cmd = 0;
	pthread_mutex_unlock(&k->lock);
	if (reset && k->platform && k->platform->event)
		k->platform->event(k->platform->opaque, MACHINE_RESET);
}

const struct io_ops i8042_data_ops = {.read = data_read, .write = data_write};
const struct io_ops i8042_cmd_ops = {.read = cmd_read, .write = cmd_write};

void i8042_init(struct i8042 *k, const struct platform_ops *platform)
{
	memset(k, 0, sizeof(*k));
	pthread_mutex_init(&k->lock, NULL);
	k->platform = platform;
	k->command_byte = 0x45;
}

void i8042_destroy(struct i8042 *k)
{
	pthread_mutex_destroy(&k->lock);
}
