#include "devices/pci.h"
#include "util/err.h"
#include "util/state.h"

#include <errno.h>
#include <string.h>

#define MSIX_BAR_SIZE	 4096
#define MSIX_PBA_OFF	 2048
#define MSIX_CTRL_ENABLE 0x80 /* in the high byte of Message Control */
#define MSIX_CTRL_MASK	 0x40

static void put16(uint8_t *p, uint16_t v)
{
	memcpy(p, &v, 2);
}
static void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}
static uint16_t get16(const uint8_t *p)
{
	uint16_t v;
	memcpy(&v, p, 2);
	return v;
}
static uint32_t get32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

void pci_device_init(struct pci_device *d, const char *name, uint16_t vendor, uint16_t device,
		     uint32_t class_code, uint8_t revision, uint16_t subsys_vendor,
		     uint16_t subsys_id)
{
	memset(d, 0, sizeof(*d));
	d->name = name;
	d->slot = -1;
	d->msix_bar = -1;
	put16(d->cfg + PCI_VENDOR_ID, vendor);
	put16(d->cfg + PCI_DEVICE_ID, device);
	d->cfg[PCI_REVISION] = revision;
	d->cfg[PCI_CLASS_PROG] = class_code & 0xff;
	d->cfg[PCI_CLASS_PROG + 1] = (class_code >> 8) & 0xff;
	d->cfg[PCI_CLASS_PROG + 2] = (class_code >> 16) & 0xff;
	put16(d->cfg + PCI_SUBSYS_VENDOR, subsys_vendor);
	put16(d->cfg + PCI_SUBSYS_ID, subsys_id);
	put16(d->wmask + PCI_COMMAND,
	      PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_INTX_DISABLE);
	d->wmask[PCI_INTERRUPT_LINE] = 0xff;
	d->next_cap = 0x40;
	d->last_cap_next = &d->cfg[PCI_CAP_PTR];
}

int pci_device_set_bar(struct pci_device *d, int bar, uint32_t size, const struct io_ops *ops,
		       void *opaque)
{
	if (bar < 0 || bar > 5 || size < 4096 || (size & (size - 1)))
		return kite_error("pci %s: bad BAR %d of %u bytes", d->name, bar, size);
	d->bars[bar] = (struct pci_bar){size, ops, opaque};
	/* Sizing: the low bits read back as zeros, so all-ones reads back as ~(size-1). The
	 * type bits stay 0: 32-bit, non-prefetchable memory. */
	put32(d->wmask + PCI_BAR0 + 4 * bar, ~(size - 1));
	return 0;
}

uint8_t pci_add_cap(struct pci_device *d, uint8_t id, const void *body, uint8_t len)
{
	uint8_t off = d->next_cap;
	if (len < 2 || (unsigned)off + len > 256)
		return 0;
	memcpy(d->cfg + off, body, len);
	d->cfg[off] = id;
	d->cfg[off + 1] = 0;
	*d->last_cap_next = off;
	d->last_cap_next = &d->cfg[off + 1];
	d->next_cap = (off + len + 3) & ~3u;
	put16(d->cfg + PCI_STATUS, get16(d->cfg + PCI_STATUS) | PCI_STATUS_CAP_LIST);
	return off;
}

static void msix_bar_read(void *opaque, uint64_t off, uint8_t *data, unsigned len);
static void msix_bar_write(void *opaque, uint64_t off, const uint8_t *data, unsigned len);
static const struct io_ops msix_bar_ops = {msix_bar_read, msix_bar_write};

int pci_msix_init(struct pci_device *d, unsigned nvec, int bar)
{
	if (nvec == 0 || nvec > PCI_MSIX_MAX_VECTORS)
		return kite_error("pci %s: %u MSI-X vectors", d->name, nvec);
	if (pci_device_set_bar(d, bar, MSIX_BAR_SIZE, &msix_bar_ops, d) < 0)
		return -1;
	uint8_t cap[12] = {0};
	put16(cap + 2, nvec - 1);	    /* table size - 1; enable and mask clear */
	put32(cap + 4, 0 | bar);	    /* table at offset 0 of the BAR */
	put32(cap + 8, MSIX_PBA_OFF | bar); /* pending bits */
	uint8_t off = pci_add_cap(d, PCI_CAP_ID_MSIX, cap, sizeof(cap));
	if (!off)
		return kite_error("pci %s: config space full", d->name);
	d->wmask[off + 3] = MSIX_CTRL_ENABLE | MSIX_CTRL_MASK;
	d->msix_cap = off;
	d->msix_nvec = nvec;
	d->msix_bar = bar;
	for (unsigned v = 0; v < nvec; v++)
		d->msix_table[v * 16 + 12] = 1; /* vectors start masked */
	return 0;
}

int pci_bus_init(struct pci_bus *bus, const struct pci_bus_ops *ops)
{
	memset(bus, 0, sizeof(*bus));
	int err = pthread_mutex_init(&bus->lock, NULL);
	if (err)
		return kite_error_errno(err, "pci: mutex");
	bus->ops = *ops;
	bus->mmio_next = PCI_MMIO_BASE;
	/* Red Hat's generic PCIe host bridge id: no chipset quirks attached to it in Linux. */
	pci_device_init(&bus->host_bridge, "host-bridge", 0x1b36, 0x0008, 0x060000, 0, 0x1af4,
			0x1100);
	if (pci_bus_add(bus, &bus->host_bridge, 0) != 0) {
		pthread_mutex_destroy(&bus->lock);
		return -1;
	}
	return 0;
}

void pci_bus_destroy(struct pci_bus *bus)
{
	pthread_mutex_destroy(&bus->lock);
}

int pci_bus_add(struct pci_bus *bus, struct pci_device *d, int slot)
{
	if (slot < 0) {
		for (slot = 0; slot < PCI_MAX_SLOTS && bus->slots[slot]; slot++)
			;
	}
	if (slot >= PCI_MAX_SLOTS || bus->slots[slot])
		return kite_error("pci %s: no free slot", d->name);
	for (int i = 0; i < 6; i++) {
		uint32_t size = d->bars[i].size;
		if (!size)
			continue;
		uint64_t addr = (bus->mmio_next + size - 1) & ~(uint64_t)(size - 1);
		if (addr + size > PCI_MMIO_BASE + PCI_MMIO_SIZE)
			return kite_error("pci %s: MMIO window full", d->name);
		/* Pre-assigned as firmware would; the guest enables decoding itself. */
		put32(d->cfg + PCI_BAR0 + 4 * i, (uint32_t)addr);
		bus->mmio_next = addr + size;
	}
	d->bus = bus;
	d->slot = slot;
	if (d != &bus->host_bridge) {
		d->cfg[PCI_INTERRUPT_PIN] = 1; /* INTA */
		d->cfg[PCI_INTERRUPT_LINE] = PCI_INTX_GSI(slot);
	}
	bus->slots[slot] = d;
	return slot;
}

/* ---- config space ---- */

static uint32_t cfg_read_locked(struct pci_device *d, unsigned off, unsigned len)
{
	uint32_t v = 0;
	for (unsigned i = 0; i < len; i++)
		v |= (uint32_t)d->cfg[off + i] << (8 * i);
	return v;
}

static void update_intx_locked(struct pci_bus *bus, unsigned pin_index);

static void msix_deliver_pending_locked(struct pci_device *d);

/* Where BAR `i` decodes now, 0 when it does not. */
static uint64_t decoded_locked(const struct pci_device *d, int i)
{
	if (!d->bars[i].size || !(get16(d->cfg + PCI_COMMAND) & PCI_COMMAND_MEMORY))
		return 0;
	return get32(d->cfg + PCI_BAR0 + 4 * i) & ~0xfu;
}

static void cfg_write_locked(struct pci_device *d, unsigned off, uint32_t val, unsigned len)
{
	uint64_t old_bars[6];
	for (int i = 0; i < 6; i++)
		old_bars[i] = decoded_locked(d, i);
	uint16_t old_cmd = get16(d->cfg + PCI_COMMAND);
	uint8_t old_msix = d->msix_cap ? d->cfg[d->msix_cap + 3] : 0;
	for (unsigned i = 0; i < len; i++) {
		uint8_t m = d->wmask[off + i], b = (val >> (8 * i)) & 0xff;
		d->cfg[off + i] = (d->cfg[off + i] & ~m) | (b & m);
	}
	uint16_t cmd = get16(d->cfg + PCI_COMMAND);
	if ((cmd ^ old_cmd) & PCI_COMMAND_INTX_DISABLE)
		update_intx_locked(d->bus, d->slot & 3);
	if (d->msix_cap && d->cfg[d->msix_cap + 3] != old_msix)
		msix_deliver_pending_locked(d);
	for (int i = 0; i < 6; i++) {
		uint64_t now = decoded_locked(d, i);
		if (now != old_bars[i] && d->bus->ops.bar_moved)
			d->bus->ops.bar_moved(d->bus->ops.opaque, d, i, old_bars[i], now);
	}
}

static bool in_window(const struct pci_device *d, unsigned off, unsigned len)
{
	return d->cfg_window && off < d->window_off + d->window_len && d->window_off < off + len;
}

uint32_t pci_cfg_read(struct pci_bus *bus, unsigned slot, unsigned off, unsigned len)
{
	uint32_t all_ones = len >= 4 ? 0xffffffffu : (1u << (8 * len)) - 1;
	if (slot >= PCI_MAX_SLOTS || len == 0 || len > 4 || off + len > PCI_CFG_SIZE)
		return all_ones;
	pthread_mutex_lock(&bus->lock);
	struct pci_device *d = bus->slots[slot];
	uint32_t v = d ? cfg_read_locked(d, off, len) : all_ones;
	pthread_mutex_unlock(&bus->lock);
	if (d && in_window(d, off, len))
		d->cfg_window(d, off, len, false, &v);
	return v;
}

void pci_cfg_write(struct pci_bus *bus, unsigned slot, unsigned off, uint32_t val, unsigned len)
{
	if (slot >= PCI_MAX_SLOTS || len == 0 || len > 4 || off + len > PCI_CFG_SIZE)
		return;
	pthread_mutex_lock(&bus->lock);
	struct pci_device *d = bus->slots[slot];
	if (d)
		cfg_write_locked(d, off, val, len);
	pthread_mutex_unlock(&bus->lock);
	if (d && in_window(d, off, len))
		d->cfg_window(d, off, len, true, &val);
}

uint64_t pci_bar_addr(struct pci_device *d, int bar)
{
	if (bar < 0 || bar > 5 || !d->bus)
		return 0;
	pthread_mutex_lock(&d->bus->lock);
	uint64_t a = decoded_locked(d, bar);
	pthread_mutex_unlock(&d->bus->lock);
	return a;
}

/* ---- mechanism #1 and ECAM ---- */

static uint32_t load_le(const uint8_t *data, unsigned len)
{
	uint32_t v = 0;
	for (unsigned i = 0; i < len && i < 4; i++)
		v |= (uint32_t)data[i] << (8 * i);
	return v;
}
static void store_le(uint8_t *data, unsigned len, uint64_t v)
{
	for (unsigned i = 0; i < len; i++)
		data[i] = (v >> (8 * i)) & 0xff;
}

static void cf8_read(void *opaque, uint64_t off, uint8_t *data, unsigned len)
{
	struct pci_bus *bus = opaque;
	pthread_mutex_lock(&bus->lock);
	uint32_t v = len == 4 ? bus->config_addr : 0xffffffffu;
	pthread_mutex_unlock(&bus->lock);
	store_le(data, len, v);
}

static void cf8_write(void *opaque, uint64_t off, const uint8_t *data, unsigned len)
{
	struct pci_bus *bus = opaque;
	if (len != 4) /* byte writes to 0xCF8 are not mechanism #1 */
		return;
	pthread_mutex_lock(&bus->lock);
	bus->config_addr = load_le(data, 4) & 0x80fffffcu;
	pthread_mutex_unlock(&bus->lock);
}

/* Decodes the CF8 latch: returns the slot, or -1 when disabled / not bus 0 function 0. */
static int cf8_target(struct pci_bus *bus, unsigned *reg)
{
	pthread_mutex_lock(&bus->lock);
	uint32_t a = bus->config_addr;
	pthread_mutex_unlock(&bus->lock);
	if (!(a & 0x80000000u) || ((a >> 16) & 0xff) != 0 || ((a >> 8) & 7) != 0)
		return -1;
	*reg = a & 0xfc;
	return (a >> 11) & 0x1f;
}

static void cfc_read(void *opaque, uint64_t off, uint8_t *data, unsigned len)
{
	unsigned reg;
	int slot = cf8_target(opaque, &reg);
	if (slot < 0 || off + len > 4) {
		memset(data, 0xff, len);
		return;
	}
	store_le(data, len, pci_cfg_read(opaque, slot, reg + off, len));
}

static void cfc_write(void *opaque, uint64_t off, const uint8_t *data, unsigned len)
{
	unsigned reg;
	int slot = cf8_target(opaque, &reg);
	if (slot >= 0 && off + len <= 4)
		pci_cfg_write(opaque, slot, reg + off, load_le(data, len), len);
}

const struct io_ops pci_cf8_ops = {cf8_read, cf8_write};
const struct io_ops pci_cfc_ops = {cfc_read, cfc_write};

/* ECAM offset: bus << 20 | device << 15 | function << 12 | register. */
static int ecam_target(uint64_t off, unsigned len, unsigned *reg)
{
	*reg = off & 0xfff;
	if ((off >> 20) != 0 || ((off >> 12) & 7) != 0 || len > 4 || *reg + len > PCI_CFG_SIZE)
		return -1;
	return (off >> 15) & 0x1f;
}

static void ecam_read(void *opaque, uint64_t off, uint8_t *data, unsigned len)
{
	unsigned reg;
	int slot = ecam_target(off, len, &reg);
	if (slot < 0) {
		memset(data, 0xff, len);
		return;
	}
	store_le(data, len, pci_cfg_read(opaque, slot, reg, len));
}

static void ecam_write(void *opaque, uint64_t off, const uint8_t *data, unsigned len)
{
	unsigned reg;
	int slot = ecam_target(off, len, &reg);
	if (slot >= 0)
		pci_cfg_write(opaque, slot, reg, load_le(data, len), len);
}

const struct io_ops pci_ecam_ops = {ecam_read, ecam_write};

/* ---- BAR dispatch ---- */

/* Finds the decoding BAR holding `addr` (window-relative). */
static bool mmio_lookup(struct pci_bus *bus, uint64_t addr, unsigned len, const struct io_ops **ops,
			void **opaque, uint64_t *off)
{
	bool found = false;
	pthread_mutex_lock(&bus->lock);
	for (int s = 0; s < PCI_MAX_SLOTS && !found; s++) {
		struct pci_device *d = bus->slots[s];
		if (!d || !(get16(d->cfg + PCI_COMMAND) & PCI_COMMAND_MEMORY))
			continue;
		for (int i = 0; i < 6; i++) {
			uint32_t size = d->bars[i].size;
			uint64_t base = get32(d->cfg + PCI_BAR0 + 4 * i) & ~0xfu;
			if (!size || addr < base || addr - base >= size || addr - base + len > size)
				continue;
			*ops = d->bars[i].ops;
			*opaque = d->bars[i].opaque;
			*off = addr - base;
			found = true;
			break;
		}
	}
	pthread_mutex_unlock(&bus->lock);
	return found;
}

static void mmio_read(void *opaque, uint64_t off, uint8_t *data, unsigned len)
{
	const struct io_ops *ops;
	void *dev;
	uint64_t boff;
	if (mmio_lookup(opaque, PCI_MMIO_BASE + off, len, &ops, &dev, &boff) && ops->read)
		ops->read(dev, boff, data, len);
	else
		memset(data, 0xff, len);
}

static void mmio_write(void *opaque, uint64_t off, const uint8_t *data, unsigned len)
{
	const struct io_ops *ops;
	void *dev;
	uint64_t boff;
	if (mmio_lookup(opaque, PCI_MMIO_BASE + off, len, &ops, &dev, &boff) && ops->write)
		ops->write(dev, boff, data, len);
}

const struct io_ops pci_mmio_ops = {mmio_read, mmio_write};

int pci_bus_register(struct pci_bus *bus, struct iobus *iobus)
{
	if (iobus_register(iobus, IOBUS_PIO, PCI_CONFIG_ADDR_PORT, 1, &pci_cf8_ops, bus,
			   "pci-cf8") < 0 ||
	    iobus_register(iobus, IOBUS_PIO, PCI_CONFIG_DATA_PORT, 4, &pci_cfc_ops, bus,
			   "pci-cfc") < 0 ||
	    iobus_register(iobus, IOBUS_MMIO, PCI_ECAM_BASE, PCI_ECAM_SIZE, &pci_ecam_ops, bus,
			   "pci-ecam") < 0 ||
	    iobus_register(iobus, IOBUS_MMIO, PCI_MMIO_BASE, PCI_MMIO_SIZE, &pci_mmio_ops, bus,
			   "pci-mmio") < 0)
		return -1;
	return 0;
}

/* ---- MSI-X ---- */

static bool msix_masked_locked(struct pci_device *d, unsigned v)
{
	return (d->cfg[d->msix_cap + 3] & MSIX_CTRL_MASK) || (d->msix_table[v * 16 + 12] & 1);
}

static void msix_send_locked(struct pci_device *d, unsigned v)
{
	const uint8_t *e = d->msix_table + v * 16;
	uint64_t addr = get32(e) | (uint64_t)get32(e + 4) << 32;
	if (d->bus->ops.msi_send)
		d->bus->ops.msi_send(d->bus->ops.opaque, d, v, addr, get32(e + 8));
}

static void msix_deliver_pending_locked(struct pci_device *d)
{
	if (!(d->cfg[d->msix_cap + 3] & MSIX_CTRL_ENABLE))
		return;
	for (unsigned v = 0; v < d->msix_nvec; v++) {
		if ((d->msix_pending >> v & 1) && !msix_masked_locked(d, v)) {
			d->msix_pending &= ~(1ull << v);
			msix_send_locked(d, v);
		}
	}
}

bool pci_msix_enabled(struct pci_device *d)
{
	if (!d->msix_cap || !d->bus)
		return false;
	pthread_mutex_lock(&d->bus->lock);
	bool on = d->cfg[d->msix_cap + 3] & MSIX_CTRL_ENABLE;
	pthread_mutex_unlock(&d->bus->lock);
	return on;
}

void pci_msix_notify(struct pci_device *d, unsigned vector)
{
	if (vector >= d->msix_nvec || !d->bus)
		return;
	pthread_mutex_lock(&d->bus->lock);
	if (d->cfg[d->msix_cap + 3] & MSIX_CTRL_ENABLE) {
		if (msix_masked_locked(d, vector))
			d->msix_pending |= 1ull << vector;
		else
			msix_send_locked(d, vector);
	}
	pthread_mutex_unlock(&d->bus->lock);
}

static void msix_bar_read(void *opaque, uint64_t off, uint8_t *data, unsigned len)
{
	struct pci_device *d = opaque;
	pthread_mutex_lock(&d->bus->lock);
	for (unsigned i = 0; i < len; i++) {
		uint64_t o = off + i;
		if (o < d->msix_nvec * 16u)
			data[i] = d->msix_table[o];
		else if (o >= MSIX_PBA_OFF && o < MSIX_PBA_OFF + 8)
			data[i] = d->msix_pending >> (8 * (o - MSIX_PBA_OFF));
		else
			data[i] = 0;
	}
	pthread_mutex_unlock(&d->bus->lock);
}

static void msix_bar_write(void *opaque, uint64_t off, const uint8_t *data, unsigned len)
{
	struct pci_device *d = opaque;
	pthread_mutex_lock(&d->bus->lock);
	for (unsigned i = 0; i < len; i++) {
		uint64_t o = off + i;
		if (o >= d->msix_nvec * 16u)
			continue; /* the PBA is read-only */
		if (o % 16 == 12)
			d->msix_table[o] = data[i] & 1; /* vector control: only the mask bit */
		else if (o % 16 < 12)
			d->msix_table[o] = data[i];
	}
	msix_deliver_pending_locked(d);
	pthread_mutex_unlock(&d->bus->lock);
}

/* ---- INTx ---- */

static void update_intx_locked(struct pci_bus *bus, unsigned pin_index)
{
	int level = 0;
	for (int s = 0; s < PCI_MAX_SLOTS; s++) {
		struct pci_device *d = bus->slots[s];
		if (!d || (unsigned)(s & 3) != pin_index)
			continue;
		uint16_t status = get16(d->cfg + PCI_STATUS) & ~PCI_STATUS_INTERRUPT;
		if (d->intx_level)
			status |= PCI_STATUS_INTERRUPT;
		put16(d->cfg + PCI_STATUS, status);
		if (d->intx_level && !(get16(d->cfg + PCI_COMMAND) & PCI_COMMAND_INTX_DISABLE))
			level = 1;
	}
	if (level != bus->gsi_level[pin_index]) {
		bus->gsi_level[pin_index] = level;
		if (bus->ops.set_irq)
			bus->ops.set_irq(bus->ops.opaque, PCI_INTX_GSI(pin_index), level);
	}
}

void pci_set_intx(struct pci_device *d, int level)
{
	if (!d->bus)
		return;
	pthread_mutex_lock(&d->bus->lock);
	d->intx_level = level != 0;
	update_intx_locked(d->bus, d->slot & 3);
	pthread_mutex_unlock(&d->bus->lock);
}

/* ---- state (util/state.h) ---- */

int pci_bus_save(struct pci_bus *bus, struct state_buf *out)
{
	struct state_writer w;
	pthread_mutex_lock(&bus->lock);
	state_begin(&w, out, "pci-bus", 1);
	state_put_u32(&w, "config_addr", bus->config_addr);
	state_end(&w);
	pthread_mutex_unlock(&bus->lock);
	return state_buf_check(out);
}

int pci_bus_load(struct pci_bus *bus, const struct state_reader *r)
{
	uint32_t addr;
	if (state_get_u32(r, "config_addr", &addr) < 0)
		return -1;
	pthread_mutex_lock(&bus->lock);
	bus->config_addr = addr & 0x80fffffcu;
	pthread_mutex_unlock(&bus->lock);
	return 0;
}

void pci_bus_load_done(struct pci_bus *bus)
{
	pthread_mutex_lock(&bus->lock);
	for (unsigned pin = 0; pin < 4; pin++) {
		bus->gsi_level[pin] = 0; /* raised again where a device holds it */
		update_intx_locked(bus, pin);
	}
	pthread_mutex_unlock(&bus->lock);
}

int pci_device_save(struct pci_device *d, struct state_buf *out)
{
	struct state_writer w;
	pthread_mutex_lock(&d->bus->lock);
	state_begin(&w, out, "pci-dev", 1);
	state_put_u8(&w, "slot", (uint8_t)d->slot);
	state_put_bytes(&w, "config", d->cfg, PCI_CFG_SIZE);
	state_put_bytes(&w, "msix_table", d->msix_table, d->msix_nvec * 16u);
	state_put_u64(&w, "msix_pending", d->msix_pending);
	state_put_bool(&w, "intx", d->intx_level);
	state_end(&w);
	pthread_mutex_unlock(&d->bus->lock);
	return state_buf_check(out);
}

/* The bytes that say what the function is: they must match the function being loaded. */
static bool same_identity(const uint8_t *a, const uint8_t *b)
{
	static const unsigned offs[] = {PCI_VENDOR_ID,	    PCI_VENDOR_ID + 1,	PCI_DEVICE_ID,
					PCI_DEVICE_ID + 1,  PCI_REVISION,	PCI_CLASS_PROG,
					PCI_CLASS_PROG + 1, PCI_CLASS_PROG + 2, PCI_HEADER_TYPE,
					PCI_SUBSYS_ID,	    PCI_SUBSYS_ID + 1,	PCI_CAP_PTR};
	for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++)
		if (a[offs[i]] != b[offs[i]])
			return false;
	return true;
}

int pci_device_load(struct pci_device *d, const struct state_reader *r)
{
	uint8_t slot;
	bool intx;
	uint64_t pending;
	const uint8_t *cfg, *table;
	size_t cfg_len, table_len;
	if (state_get_u8(r, "slot", &slot) < 0 || state_get_blob(r, "config", &cfg, &cfg_len) < 0 ||
	    state_get_blob(r, "msix_table", &table, &table_len) < 0 ||
	    state_get_u64(r, "msix_pending", &pending) < 0 || state_get_bool(r, "intx", &intx) < 0)
		return -1;
	if (slot != d->slot)
		return kite_error("device state: pci %s: saved in slot %u, this machine has it in "
				  "slot %d",
				  d->name, slot, d->slot);
	if (cfg_len != PCI_CFG_SIZE || !same_identity(cfg, d->cfg))
		return kite_error("device state: pci %s (slot %u): the saved function is another "
				  "device",
				  d->name, slot);
	if (table_len != d->msix_nvec * 16u || (d->msix_nvec < 64 && pending >> d->msix_nvec))
		return kite_error("device state: pci %s: %zu bytes of MSI-X table for %u vectors",
				  d->name, table_len, d->msix_nvec);
	pthread_mutex_lock(&d->bus->lock);
	uint64_t old_bars[6];
	for (int i = 0; i < 6; i++)
		old_bars[i] = decoded_locked(d, i);
	/* What the guest cannot write stays as this build made it; the rest is the guest's. */
	for (unsigned i = 0; i < PCI_CFG_SIZE; i++)
		d->cfg[i] = (uint8_t)((d->cfg[i] & ~d->wmask[i]) | (cfg[i] & d->wmask[i]));
	memcpy(d->msix_table, table, table_len);
	d->msix_pending = pending;
	d->intx_level = intx;
	for (int i = 0; i < 6; i++) {
		uint64_t now = decoded_locked(d, i);
		if (now != old_bars[i] && d->bus->ops.bar_moved)
			d->bus->ops.bar_moved(d->bus->ops.opaque, d, i, old_bars[i], now);
	}
	pthread_mutex_unlock(&d->bus->lock);
	return 0;
}
