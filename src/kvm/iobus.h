/* One trap registry for port I/O and MMIO. Devices register address ranges with an ops table;
 * the vCPU exit loop dispatches through iobus_access(). Registration happens before any vCPU
 * runs, so lookups need no lock; devices lock their own state. */
#ifndef KITE_KVM_IOBUS_H
#define KITE_KVM_IOBUS_H

#include <stdbool.h>
#include <stdint.h>

enum iobus_space { IOBUS_PIO, IOBUS_MMIO };

struct io_ops {
	/* `off` is relative to the registered base; `len` is 1, 2, 4 or 8. */
	void (*read)(void *opaque, uint64_t off, uint8_t *data, unsigned len);
	void (*write)(void *opaque, uint64_t off, const uint8_t *data, unsigned len);
};

struct io_range {
	enum iobus_space space;
	uint64_t base, len;
	const struct io_ops *ops;
	void *opaque;
	const char *name;
};

#define IOBUS_MAX_RANGES 64

struct iobus {
	int n;
	struct io_range ranges[IOBUS_MAX_RANGES];
};

/* Returns 0, or -1 with an error printed when the range overlaps another or the bus is full. */
int iobus_register(struct iobus *bus, enum iobus_space space, uint64_t base, uint64_t len,
		   const struct io_ops *ops, void *opaque, const char *name);

/* Dispatches one access. Returns false when no device claims the address: reads then return
 * all ones and writes are dropped, as on a real bus. */
bool iobus_access(const struct iobus *bus, enum iobus_space space, uint64_t addr, uint8_t *data,
		  unsigned len, bool is_write);

#endif
