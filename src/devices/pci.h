/* PCI host bridge and bus 0 (conventional config header type 0, PCIe-sized 4 KiB config
 * space). The guest reaches config space through configuration mechanism #1 (ports 0xCF8 and
 * 0xCFC) or through the ECAM window; device BARs live in one 32-bit MMIO window and are
 * dispatched here, so the machine registers three fixed ranges with its iobus and nothing
 * moves when the guest reprograms a BAR.
 *
 * Interrupts leave through callbacks: MSI-X messages through msi_send(d, vector, addr, data)
 * (an irqfd per vector, or KVM_SIGNAL_MSI, on the machine side), INTx through set_irq(gsi, level)
 * with the lines of one GSI ORed here. INTA of slot s is wired to GSI PCI_INTX_GSI(s): the ACPI
 * _PRT must say the same. */
#ifndef KITE_DEVICES_PCI_H
#define KITE_DEVICES_PCI_H

#include "util/state.h"
#include "kvm/iobus.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

/* ECAM: bus 0..255, 4 KiB per function. Announced in ACPI MCFG (segment 0, buses 0-255). */
#define PCI_ECAM_BASE 0xE0000000ULL
#define PCI_ECAM_SIZE 0x10000000ULL /* 256 MiB, up to 0xEFFFFFFF */
/* BARs below 4 GiB, inside the PCI hole of kvm/memory.h. The DSDT's PCI0 _CRS covers it. */
#define PCI_MMIO_BASE 0xC0000000ULL
#define PCI_MMIO_SIZE 0x20000000ULL /* 512 MiB, up to 0xDFFFFFFF */
/* Config mechanism #1. 0xCF9 between them is the reset port, so CF8 is registered with
 * length 1 (a dword access at 0xCF8 still lands here) and CFC with length 4. */
#define PCI_CONFIG_ADDR_PORT 0xCF8
#define PCI_CONFIG_DATA_PORT 0xCFC

#define PCI_MAX_SLOTS	     32
#define PCI_INTX_GSI(slot)   (16u + ((slot)&3u)) /* IOAPIC pins 16-19, swizzled by slot */
#define PCI_CFG_SIZE	     4096
#define PCI_MSIX_MAX_VECTORS 64

/* Config header offsets and bits used by devices. */
#define PCI_VENDOR_ID	   0x00
#define PCI_DEVICE_ID	   0x02
#define PCI_COMMAND	   0x04
#define PCI_STATUS	   0x06
#define PCI_REVISION	   0x08
#define PCI_CLASS_PROG	   0x09
#define PCI_HEADER_TYPE	   0x0E
#define PCI_BAR0	   0x10
#define PCI_SUBSYS_VENDOR  0x2C
#define PCI_SUBSYS_ID	   0x2E
#define PCI_CAP_PTR	   0x34
#define PCI_INTERRUPT_LINE 0x3C
#define PCI_INTERRUPT_PIN  0x3D

#define PCI_COMMAND_IO		 0x0001
#define PCI_COMMAND_MEMORY	 0x0002
#define PCI_COMMAND_MASTER	 0x0004
#define PCI_COMMAND_INTX_DISABLE 0x0400
#define PCI_STATUS_INTERRUPT	 0x0008
#define PCI_STATUS_CAP_LIST	 0x0010

#define PCI_CAP_ID_MSIX	  0x11
#define PCI_CAP_ID_VENDOR 0x09

struct pci_bus;

struct pci_bar {
	uint32_t size; /* power of two >= 4 KiB; 0 = unused */
	const struct io_ops *ops;
	void *opaque;
};

struct pci_device {
	struct pci_bus *bus;
	const char *name;
	int slot;
	uint8_t cfg[PCI_CFG_SIZE];
	uint8_t wmask[PCI_CFG_SIZE]; /* bits the guest may change */
	uint8_t next_cap;	     /* where pci_add_cap puts the next capability */
	uint8_t *last_cap_next;	     /* the "next" byte to link the next capability from */
	struct pci_bar bars[6];
	int intx_level;

	/* MSI-X (pci_msix_init): table and PBA in a BAR of their own. */
	unsigned msix_nvec;
	uint8_t msix_cap;
	int msix_bar;
	uint8_t msix_table[PCI_MSIX_MAX_VECTORS * 16];
	uint64_t msix_pending; /* one bit per vector, mirrored into the PBA */

	/* Optional: config accesses overlapping [window_off, window_off + window_len) also go
	 * here, without the bus lock: after a write was stored in cfg[], before a read returns
	 * (the hook may replace *val). virtio's PCI configuration access capability uses it. */
	void (*cfg_window)(struct pci_device *d, unsigned off, unsigned len, bool is_write,
			   uint32_t *val);
	uint16_t window_off, window_len;
};

struct pci_bus_ops {
	/* MSI-X `vector` of `d` fires with message addr/data (called with the bus locked; it
	 * must not call back into the bus). The vector lets the machine keep one irqfd per
	 * vector (machine/irqfd.h). */
	void (*msi_send)(void *opaque, struct pci_device *d, unsigned vector, uint64_t addr,
			 uint32_t data);
	void (*set_irq)(void *opaque, unsigned gsi, int level);
	void *opaque;
	/* Optional: the guest moved BAR `bar` of `d` or switched its decoding; an address of
	 * 0 means "not decoded". For ioeventfds on notify addresses (virtio_pci_of(),
	 * virtio_pci_notify_addr()). Called on the vCPU thread with the bus locked: it must not
	 * call back into the bus. */
	void (*bar_moved)(void *opaque, struct pci_device *d, int bar, uint64_t old_addr,
			  uint64_t new_addr);
};

struct pci_bus {
	pthread_mutex_t lock; /* config space, BAR addresses, MSI-X state, INTx levels */
	uint32_t config_addr; /* 0xCF8 latch */
	struct pci_device *slots[PCI_MAX_SLOTS];
	struct pci_device host_bridge;
	uint64_t mmio_next; /* BAR allocator */
	struct pci_bus_ops ops;
	int gsi_level[4];
};

/* Creates bus 0 with the host bridge at 00:00.0. Returns 0 or -1 with an error printed. */
int pci_bus_init(struct pci_bus *bus, const struct pci_bus_ops *ops);
void pci_bus_destroy(struct pci_bus *bus);

/* The three ranges the machine registers with its iobus:
 *   IOBUS_PIO  PCI_CONFIG_ADDR_PORT, length 1: pci_cf8_ops
 *   IOBUS_PIO  PCI_CONFIG_DATA_PORT, length 4: pci_cfc_ops
 *   IOBUS_MMIO PCI_ECAM_BASE, PCI_ECAM_SIZE:   pci_ecam_ops
 *   IOBUS_MMIO PCI_MMIO_BASE, PCI_MMIO_SIZE:   pci_mmio_ops
 * all with the struct pci_bus as opaque. pci_bus_register() does exactly that. */
extern const struct io_ops pci_cf8_ops, pci_cfc_ops, pci_ecam_ops, pci_mmio_ops;
int pci_bus_register(struct pci_bus *bus, struct iobus *iobus);

/* Fills the identity of a new function (zeroes the rest). */
void pci_device_init(struct pci_device *d, const char *name, uint16_t vendor, uint16_t device,
		     uint32_t class_code, uint8_t revision, uint16_t subsys_vendor,
		     uint16_t subsys_id);
/* Declares a 32-bit memory BAR of `size` bytes (power of two, >= 4 KiB) served by `ops`
 * (offsets relative to the BAR). Call before pci_bus_add(). */
int pci_device_set_bar(struct pci_device *d, int bar, uint32_t size, const struct io_ops *ops,
		       void *opaque);
/* Appends a capability of `len` bytes (id, next, then `body`) and returns its config
 * offset, or 0 when config space is full. */
uint8_t pci_add_cap(struct pci_device *d, uint8_t id, const void *body, uint8_t len);
/* Adds an MSI-X capability with `nvec` vectors whose table (offset 0) and PBA (offset 2048)
 * live in BAR `bar` (4 KiB). Returns 0 or -1. */
int pci_msix_init(struct pci_device *d, unsigned nvec, int bar);

/* Plugs the function into the first free slot (or `slot` >= 0), assigns its BARs from the
 * MMIO window and its INTA line. Returns the slot or -1 with an error printed. */
int pci_bus_add(struct pci_bus *bus, struct pci_device *d, int slot);

/* Interrupts, callable from any thread. */
bool pci_msix_enabled(struct pci_device *d);
/* Sends MSI-X `vector` (or marks it pending when masked). No-op if out of range. */
void pci_msix_notify(struct pci_device *d, unsigned vector);
/* Drives INTA (level). Ignored while the command register disables INTx. */
void pci_set_intx(struct pci_device *d, int level);

/* Config space access as the guest sees it (tests and the ECAM/CF8 paths). `len` 1, 2, 4. */
uint32_t pci_cfg_read(struct pci_bus *bus, unsigned slot, unsigned off, unsigned len);
void pci_cfg_write(struct pci_bus *bus, unsigned slot, unsigned off, uint32_t val, unsigned len);
/* Current guest-programmed address of a BAR (0 when memory decoding is off). */
uint64_t pci_bar_addr(struct pci_device *d, int bar);

/* State (util/state.h). The bus: its 0xCF8 latch (section "pci-bus"). A function: config
 * space (the guest's bits: BAR placement, command, capabilities' registers), MSI-X table and
 * pending bits, INTx level (section "pci-dev"); loading one checks that the saved function is
 * the same device in the same slot and tells bar_moved where its BARs decode now. After the
 * last function, pci_bus_load_done() raises the INTx lines the functions hold. */
int pci_bus_save(struct pci_bus *bus, struct state_buf *out);
int pci_bus_load(struct pci_bus *bus, const struct state_reader *r);
void pci_bus_load_done(struct pci_bus *bus);
int pci_device_save(struct pci_device *d, struct state_buf *out);
int pci_device_load(struct pci_device *d, const struct state_reader *r);

#endif
