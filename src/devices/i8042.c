#include "devices/i8042.h"
#include "util/err.h"

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

/* ---- state (util/state.h) ---- */

static int i8042_save(void *dev, struct state_buf *out)
{
	struct i8042 *k = dev;
	struct state_writer w;
	pthread_mutex_lock(&k->lock);
	state_begin(&w, out, "i8042", 1);
	state_put_u8(&w, "command_byte", k->command_byte);
	state_put_u8(&w, "pending_cmd", k->pending_cmd);
	state_put_u8(&w, "output", k->output);
	state_put_bool(&w, "has_output", k->has_output);
	state_end(&w);
	pthread_mutex_unlock(&k->lock);
	return state_buf_check(out);
}

static int i8042_load(void *dev, const struct state_reader *r)
{
	struct i8042 *k = dev;
	uint8_t cb, pending, output;
	bool has;
	if (state_get_u8(r, "command_byte", &cb) < 0 ||
	    state_get_u8(r, "pending_cmd", &pending) < 0 ||
	    state_get_u8(r, "output", &output) < 0 || state_get_bool(r, "has_output", &has) < 0)
		return -1;
	if (pending && pending != CMD_WRITE_CMD && pending != CMD_WRITE_OUT)
		return kite_error("device state: i8042: pending command 0x%02x is not one that "
				  "waits for data",
				  pending);
	pthread_mutex_lock(&k->lock);
	k->command_byte = cb;
	k->pending_cmd = pending;
	k->output = output;
	k->has_output = has;
	pthread_mutex_unlock(&k->lock);
	return 0;
}

const struct state_ops i8042_state_ops = {"i8042", 1, i8042_save, i8042_load};
