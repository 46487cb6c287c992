#include "devices/debug_exit.h"

#include <string.h>

static void debug_exit_read(void *opaque, uint64_t off, uint8_t *data, unsigned len)
{
	memset(data, 0, len);
}

static void debug_exit_write(void *opaque, uint64_t off, const uint8_t *data, unsigned len)
{
	struct debug_exit *d = opaque;
	uint32_t code = 0;
	for (unsigned i = 0; i < len && i < sizeof(code); i++)
		code |= (uint32_t)data[i] << (8 * i);
	d->platform->guest_exit(d->platform->opaque, code);
}

const struct io_ops debug_exit_ops = {.read = debug_exit_read, .write = debug_exit_write};

void debug_exit_init(struct debug_exit *d, const struct platform_ops *platform)
{
	d->platform = platform;
}
