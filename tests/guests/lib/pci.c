/* PCI bus 0 through configuration mechanism #1; see pci.h. Each access from ring 3 is one
 * request to ring 0 (ureq.h), address and data together. */
#include "pci.h"
#include "libguest.h"

#define CFG_ADDR 0xcf8
#define CFG_DATA 0xcfc

struct pci_dev pci_devs[PCI_MAX_DEVS];
int pci_ndevs;

/* Mechanism #1's address with the offset's low two bits kept (ureq.h). */
static uint32_t cfg_addr(uint8_t bus, uint8_t slot, uint8_t fn, unsigned off)
{
	return 0x80000000u | (uint32_t)bus << 16 | (uint32_t)slot << 11 | (uint32_t)fn << 8 |
	       (off & 0xff);
}

/* The address to 0xCF8, then the data port: in ring 3 both in one request. */
static uint32_t cfg_read32(uint32_t addr)
{
	uint32_t v;
	if (in_user_mode()) {
		__asm__ volatile(UREQ_ASM
				 : "=a"(v), "+d"(addr)
				 : [req] "i"(UREQ_CFG_INL)
				 : "memory");
		return v;
	}
	outl(CFG_ADDR, addr & ~3u);
	return inl(CFG_DATA);
}

static void cfg_write(uint32_t addr, unsigned size, uint32_t v)
{
	if (in_user_mode()) {
		if (size == 1)
			__asm__ volatile(UREQ_ASM
					 : "+d"(addr)
					 : "a"(v), [req] "i"(UREQ_CFG_OUTB)
					 : "memory");
		else if (size == 2)
			__asm__ volatile(UREQ_ASM
					 : "+d"(addr)
					 : "a"(v), [req] "i"(UREQ_CFG_OUTW)
					 : "memory");
		else
			__asm__ volatile(UREQ_ASM
					 : "+d"(addr)
					 : "a"(v), [req] "i"(UREQ_CFG_OUTL)
					 : "memory");
		return;
	}
	outl(CFG_ADDR, addr & ~3u);
	uint16_t port = (uint16_t)(CFG_DATA + (addr & 3));
	if (size == 1)
		outb(port, (uint8_t)v);
	else if (size == 2)
		outw(port, (uint16_t)v);
	else
		outl(port, v);
}

static uint32_t raw_read32(uint8_t bus, uint8_t slot, uint8_t fn, unsigned off)
{
	return cfg_read32(cfg_addr(bus, slot, fn, off & ~3u));
}

uint32_t pci_read32(const struct pci_dev *d, unsigned off)
{
	return raw_read32(d->bus, d->slot, d->fn, off);
}

uint16_t pci_read16(const struct pci_dev *d, unsigned off)
{
	return (uint16_t)(pci_read32(d, off) >> (8 * (off & 2)));
}

uint8_t pci_read8(const struct pci_dev *d, unsigned off)
{
	return (uint8_t)(pci_read32(d, off) >> (8 * (off & 3)));
}

void pci_write32(const struct pci_dev *d, unsigned off, uint32_t v)
{
	cfg_write(cfg_addr(d->bus, d->slot, d->fn, off & ~3u), 4, v);
}

void pci_write16(const struct pci_dev *d, unsigned off, uint16_t v)
{
	cfg_write(cfg_addr(d->bus, d->slot, d->fn, off & ~1u), 2, v);
}

void pci_write8(const struct pci_dev *d, unsigned off, uint8_t v)
{
	cfg_write(cfg_addr(d->bus, d->slot, d->fn, off), 1, v);
}

/* Sizes the BARs of `d` with decoding off (a BAR written with all ones would otherwise
 * decode at a random address for a moment), restoring what was there. */
static void size_bars(struct pci_dev *d)
{
	uint16_t cmd = pci_read16(d, 0x04);
	pci_write16(d, 0x04, cmd & ~(PCI_CMD_IO | PCI_CMD_MEMORY));
	for (int i = 0; i < 6; i++) {
		unsigned off = 0x10 + 4 * i;
		uint32_t orig = pci_read32(d, off);
		if (orig & 1)
			continue; /* I/O BAR: not used by the modern virtio transport */
		bool is64 = ((orig >> 1) & 3) == 2 && i < 5;
		pci_write32(d, off, ~0u);
		uint32_t lo = pci_read32(d, off);
		pci_write32(d, off, orig);
		uint64_t mask = lo & ~0xfull, addr = orig & ~0xfull;
		if (is64) {
			uint32_t orig_hi = pci_read32(d, off + 4);
			pci_write32(d, off + 4, ~0u);
			uint32_t hi = pci_read32(d, off + 4);
			pci_write32(d, off + 4, orig_hi);
			mask |= (uint64_t)hi << 32;
			addr |= (uint64_t)orig_hi << 32;
		} else if (mask) {
			mask |= 0xffffffff00000000ull;
		}
		if (mask) {
			d->bar_size[i] = ~mask + 1;
			d->bar[i] = addr;
			d->bar64[i] = is64;
		}
		if (is64)
			i++; /* the upper half */
	}
	pci_write16(d, 0x04, cmd);
}

static bool usable(const struct pci_dev *d, int i)
{
	uint64_t a = d->bar[i];
	if (pci_force_assign && !d->assigned_here[i])
		return false;
	return a && a < 4 * GiB && d->bar_size[i] <= 4 * GiB - a;
}

/* True when [a, a+size) overlaps an address some function already decodes (or will). */
static const struct pci_dev *overlapping(uint64_t a, uint64_t size, int i_dev, int i_bar,
					 uint64_t *end)
{
	for (int n = 0; n < pci_ndevs; n++) {
		const struct pci_dev *o = &pci_devs[n];
		for (int i = 0; i < 6; i++) {
			if ((n == i_dev && i == i_bar) || !o->bar_size[i] || !usable(o, i))
				continue;
			if (a < o->bar[i] + o->bar_size[i] && o->bar[i] < a + size) {
				*end = o->bar[i] + o->bar_size[i];
				return o;
			}
		}
	}
	return NULL;
}

static void assign_bars(void)
{
	for (int n = 0; n < pci_ndevs; n++) {
		struct pci_dev *d = &pci_devs[n];
		for (int i = 0; i < 6; i++) {
			uint64_t size = d->bar_size[i], end;
			if (!size || usable(d, i))
				continue;
			d->bar[i] = 0;
			uint64_t a = PCI_ASSIGN_BASE;
			for (;;) {
				a = (a + size - 1) & ~(size - 1);
				if (a + size > PCI_ASSIGN_END)
					break;
				if (!overlapping(a, size, n, i, &end))
					break;
				a = end;
			}
			if (a + size > PCI_ASSIGN_END) {
				printf("pci: no room for BAR%d (%#lx bytes) of %02x:%02x.%x\n", i,
				       size, d->bus, d->slot, d->fn);
				continue;
			}
			uint16_t cmd = pci_read16(d, 0x04);
			pci_write16(d, 0x04, cmd & ~PCI_CMD_MEMORY);
			pci_write32(d, 0x10 + 4 * i, (uint32_t)a);
			if (d->bar64[i])
				pci_write32(d, 0x14 + 4 * i, 0);
			pci_write16(d, 0x04, cmd);
			d->bar[i] = a;
			d->assigned_here[i] = true;
			printf("pci: 00:%02x.%x BAR%d assigned at %#lx (%#lx bytes)\n", d->slot,
			       d->fn, i, a, size);
		}
	}
}

bool pci_force_assign;

int pci_scan(void)
{
	char opt[16];
	if (cmdline_get("pci", opt, sizeof(opt)) && strcmp(opt, "assign") == 0)
		pci_force_assign = true;
	pci_ndevs = 0;
	for (int slot = 0; slot < 32; slot++) {
		for (int fn = 0; fn < 8; fn++) {
			uint32_t id = raw_read32(0, (uint8_t)slot, (uint8_t)fn, 0);
			if ((id & 0xffff) == 0xffff) {
				if (fn == 0)
					break;
				continue;
			}
			if (pci_ndevs == PCI_MAX_DEVS)
				break;
			struct pci_dev *d = &pci_devs[pci_ndevs++];
			memset(d, 0, sizeof(*d));
			d->slot = (uint8_t)slot;
			d->fn = (uint8_t)fn;
			d->vendor = (uint16_t)id;
			d->device = (uint16_t)(id >> 16);
			d->class_code = pci_read32(d, 0x08) >> 8;
			d->subsys_id = pci_read16(d, 0x2e);
			uint8_t htype = pci_read8(d, 0x0e);
			if ((htype & 0x7f) == 0)
				size_bars(d);
			if (fn == 0 && !(htype & 0x80))
				break; /* single-function device */
		}
	}
	assign_bars();
	return pci_ndevs;
}

void pci_enable(const struct pci_dev *d)
{
	pci_write16(d, 0x04, pci_read16(d, 0x04) | PCI_CMD_MEMORY | PCI_CMD_MASTER);
}

uint8_t pci_find_cap(const struct pci_dev *d, uint8_t id, uint8_t after)
{
	if (!(pci_read16(d, 0x06) & 0x10))
		return 0; /* no capability list */
	uint8_t p = after ? pci_read8(d, after + 1) : pci_read8(d, 0x34);
	/* Bounded walk: a looping list must not hang the program. */
	for (int n = 0; n < 48 && p >= 0x40; n++) {
		p &= 0xfc;
		if (pci_read8(d, p) == id)
			return p;
		p = pci_read8(d, p + 1);
	}
	return 0;
}
