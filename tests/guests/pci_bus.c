/* pci_bus: bus 0 as the virtio programs see it. Configuration mechanism #1 finds a host
 * bridge at 00:00.0; the ECAM window the ACPI MCFG announces shows the same functions (IDs,
 * class) and sees a write made through 0xCF8/0xCFC (and the reverse); every memory BAR ends up
 * assigned below 4 GiB, naturally aligned, overlapping no other. With pci=assign the program
 * assigns every BAR itself, as under kite. Runs in ring 3. */
#include "libguest.h"
#include "pci.h"

const char guest_name[] = "pci_bus";

struct mcfg_entry {
	uint64_t base;
	uint16_t segment;
	uint8_t start_bus, end_bus;
	uint32_t reserved;
} __attribute__((packed));

static uint64_t ecam_base;

static uint64_t ecam(const struct pci_dev *d, unsigned off)
{
	return ecam_base +
	       ((uint64_t)d->bus << 20 | (uint64_t)d->slot << 15 | (uint64_t)d->fn << 12 | off);
}

static void check_bars(void)
{
	int nbars = 0;
	bool ok = true;
	for (int n = 0; n < pci_ndevs; n++) {
		const struct pci_dev *d = &pci_devs[n];
		for (int i = 0; i < 6; i++) {
			uint64_t a = d->bar[i], size = d->bar_size[i];
			if (!size)
				continue;
			nbars++;
			bool good = a && a < 4 * GiB && size <= 4 * GiB - a && !(a & (size - 1));
			for (int m = 0; m < pci_ndevs && good; m++) {
				const struct pci_dev *o = &pci_devs[m];
				for (int j = 0; j < 6; j++) {
					if ((m == n && j == i) || !o->bar_size[j])
						continue;
					if (a < o->bar[j] + o->bar_size[j] && o->bar[j] < a + size)
						good = false;
				}
			}
			/* The device decodes where we think it does. */
			uint32_t lo = pci_read32(d, 0x10 + 4 * i) & ~0xfu;
			good = good && lo == (uint32_t)a;
			if (!good)
				printf("pci_bus: 00:%02x.%x BAR%d at %#lx, %#lx bytes is wrong\n",
				       d->slot, d->fn, i, a, size);
			ok = ok && good;
		}
	}
	report(ok && nbars > 0,
	       "memory BARs (%d): assigned below 4 GiB, aligned, not overlapping, as programmed",
	       nbars);
}

static void check_ecam(void)
{
	const struct acpi_header *h = acpi_find_table("MCFG", 0);
	if (!h) {
		report_skip("ECAM (no ACPI MCFG)");
		return;
	}
	const struct mcfg_entry *e = (const void *)((const uint8_t *)h + sizeof(*h) + 8);
	bool have = h->length >= sizeof(*h) + 8 + sizeof(*e) && e->segment == 0 &&
		    e->start_bus == 0 && e->base && e->base < 4 * GiB;
	report(have, "MCFG: segment 0 from bus 0, ECAM at %#lx", have ? e->base : 0);
	if (!have)
		return;
	ecam_base = e->base;
	int same = 0;
	for (int n = 0; n < pci_ndevs; n++) {
		const struct pci_dev *d = &pci_devs[n];
		same += mmio_read32(ecam(d, 0)) == pci_read32(d, 0) &&
			mmio_read32(ecam(d, 8)) == pci_read32(d, 8) &&
			mmio_read32(ecam(d, 0x10)) == pci_read32(d, 0x10);
	}
	report(same == pci_ndevs, "ECAM shows the same IDs, class and BAR0 for %d of %d functions",
	       same, pci_ndevs);
	/* An absent function reads all ones there too. */
	struct pci_dev none = {.slot = 31, .fn = 7};
	bool absent = pci_read32(&none, 0) == 0xffffffffu;
	report(!absent || mmio_read32(ecam(&none, 0)) == 0xffffffffu,
	       "ECAM: an absent function (00:1f.7) reads all ones");
	/* The interrupt line register is plain read/write storage on every endpoint. */
	const struct pci_dev *ep = NULL;
	for (int n = 0; n < pci_ndevs && !ep; n++) {
		if ((pci_read8(&pci_devs[n], 0x0e) & 0x7f) == 0 && pci_devs[n].slot != 0)
			ep = &pci_devs[n];
	}
	if (!ep) {
		report_skip("ECAM writes (no endpoint besides the host bridge)");
		return;
	}
	uint8_t orig = pci_read8(ep, 0x3c);
	mmio_write8(ecam(ep, 0x3c), 0x5a);
	uint8_t via_cf8 = pci_read8(ep, 0x3c);
	pci_write8(ep, 0x3c, 0xa5); /* a byte write through 0xCF8/0xCFC */
	uint8_t via_ecam = mmio_read8(ecam(ep, 0x3c));
	pci_write8(ep, 0x3c, orig);
	report(via_cf8 == 0x5a && via_ecam == 0xa5,
	       "interrupt line of 00:%02x.%x: ECAM write seen through 0xCFC (%#x), and back (%#x)",
	       ep->slot, ep->fn, via_cf8, via_ecam);
}

static uint64_t body(uint64_t arg)
{
	int n = pci_scan();
	for (int i = 0; i < n; i++)
		printf("pci_bus: 00:%02x.%x %04x:%04x class %06x\n", pci_devs[i].slot,
		       pci_devs[i].fn, pci_devs[i].vendor, pci_devs[i].device,
		       pci_devs[i].class_code);
	report(n > 0 && pci_devs[0].slot == 0 && pci_devs[0].fn == 0 &&
		   (pci_devs[0].class_code >> 8) == 0x0600,
	       "config mechanism #1: a host bridge at 00:00.0 (%d functions on bus 0)", n);
	uint64_t want = cmdline_u64("functions", 0);
	if (want)
		report((uint64_t)n == want, "%d functions on bus 0 (expected %lu)", n, want);
	check_bars();
	check_ecam();
	return 0;
}

void guest_main(void)
{
	run_user(body, 0);
}
