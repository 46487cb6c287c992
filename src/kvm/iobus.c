#include "kvm/iobus.h"
#include "util/err.h"

#include <string.h>

int iobus_register(struct iobus *bus, enum iobus_space space, uint64_t base, uint64_t len,
		   const struct io_ops *ops, void *opaque, const char *name)
{
	if (len == 0 || base + len < base)
		return kite_error("device %s: bad address range", name);
	for (int i = 0; i < bus->n; i++) {
		const struct io_range *r = &bus->ranges[i];
		if (r->space == space && base < r->base + r->len && r->base < base + len)
			return kite_error("device %s: address range 0x%llx+0x%llx overlaps %s",
					  name, (unsigned long long)base, (unsigned long long)len,
					  r->name);
	}
	if (bus->n == IOBUS_MAX_RANGES)
		return kite_error("device %s: too many device address ranges", name);
	bus->ranges[bus->n++] = (struct io_range){space, base, len, ops, opaque, name};
	return 0;
}

bool iobus_access(const struct iobus *bus, enum iobus_space space, uint64_t addr, uint8_t *data,
		  unsigned len, bool is_write)
{
	for (int i = 0; i < bus->n; i++) {
		const struct io_range *r = &bus->ranges[i];
		if (r->space != space || addr < r->base || addr - r->base >= r->len)
			continue;
		uint64_t off = addr - r->base;
		if (is_write) {
			if (r->ops->write)
				r->ops->write(r->opaque, off, data, len);
		} else if (r->ops->read) {
			r->ops->read(r->opaque, off, data, len);
		} else {
			memset(data, 0xff, len);
		}
		return true;
	}
	if (!is_write)
		memset(data, 0xff, len);
	return false;
}
