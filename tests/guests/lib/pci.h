/* PCI for guest programs: bus 0 through configuration mechanism #1 (ports 0xCF8/0xCFC),
 * BAR sizing, and BAR assignment for what firmware left unassigned (kite runs no firmware;
 * QEMU's SeaBIOS usually assigns everything). Usable in ring 3: configuration accesses there
 * are requests to ring 0 (ureq.h), one each. */
#pragma once
#include <stdbool.h>
#include <stdint.h>

#define PCI_MAX_DEVS 32

/* Where this library puts BARs nobody assigned: the e820 hole below the LAPIC/IOAPIC area
 * (kite's window is 0xC0000000-0xDFFFFFFF, ECAM above it at 0xE0000000). */
#define PCI_ASSIGN_BASE 0xC0000000ull
#define PCI_ASSIGN_END	0xE0000000ull

#define PCI_CMD_IO     0x1
#define PCI_CMD_MEMORY 0x2
#define PCI_CMD_MASTER 0x4

#define PCI_CAP_MSIX   0x11
#define PCI_CAP_VENDOR 0x09

struct pci_dev {
	uint8_t bus, slot, fn;
	uint16_t vendor, device, subsys_id;
	uint32_t class_code; /* class, subclass, prog-if */
	uint64_t bar[6]; /* memory BAR addresses (0: none, I/O, or upper half of a 64-bit BAR) */
	uint64_t bar_size[6];
	bool bar64[6];
	bool assigned_here[6]; /* this library chose the address */
};

uint32_t pci_read32(const struct pci_dev *d, unsigned off);
uint16_t pci_read16(const struct pci_dev *d, unsigned off);
uint8_t pci_read8(const struct pci_dev *d, unsigned off);
void pci_write32(const struct pci_dev *d, unsigned off, uint32_t v);
void pci_write16(const struct pci_dev *d, unsigned off, uint16_t v);
void pci_write8(const struct pci_dev *d, unsigned off, uint8_t v);

/* Enumerates bus 0 (every function of multi-function devices), sizes each memory BAR and
 * assigns those without a usable address below 4 GiB (0, or above 4 GiB where the guest's
 * identity map ends), avoiding the ones already assigned. Returns the number found. */
int pci_scan(void);
/* Set by "pci=assign" on the command line: treat every memory BAR as unassigned, so that
 * under QEMU (whose firmware assigns them) the assignment path runs as it does under kite. */
extern bool pci_force_assign;
extern struct pci_dev pci_devs[PCI_MAX_DEVS];
extern int pci_ndevs;
/* Turns on memory decoding and bus mastering. */
void pci_enable(const struct pci_dev *d);
/* Config offset of the first capability with ID after offset `after` (0: from the start),
 * or 0. */
uint8_t pci_find_cap(const struct pci_dev *d, uint8_t id, uint8_t after);
