/* ACPI table walking: RSDP (start_info, EBDA, 0xE0000-0xFFFFF), XSDT/RSDT, FADT, MADT, the
 * DSDT's \_S5_ package, and S5 power-off. Every table is checksummed and bounded; a VMM's
 * tables are data we test, not data we trust. */
#include "libguest.h"

struct rsdp {
	char sig[8];
	uint8_t checksum;
	char oem_id[6];
	uint8_t revision;
	uint32_t rsdt;
	uint32_t length; /* revision >= 2 from here */
	uint64_t xsdt;
	uint8_t xchecksum;
	uint8_t reserved[3];
} __attribute__((packed));

#define MAX_TABLE_LEN (1u << 20)

static bool rsdp_from_start_info;

static uint8_t sum(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint8_t s = 0;
	for (size_t i = 0; i < n; i++)
		s += b[i];
	return s;
}

static bool rsdp_valid(uint64_t addr)
{
	if (!addr || addr > 4 * GiB - sizeof(struct rsdp))
		return false;
	const struct rsdp *r = (const void *)addr;
	if (memcmp(r->sig, "RSD PTR ", 8) != 0 || sum(r, 20) != 0)
		return false;
	if (r->revision >= 2 && (r->length < sizeof(*r) || r->length > 4096 ||
				 addr > 4 * GiB - r->length || sum(r, r->length) != 0))
		return false;
	return true;
}

static uint64_t scan(uint64_t lo, uint64_t hi)
{
	for (uint64_t a = lo; a + sizeof(struct rsdp) <= hi; a += 16) {
		if (rsdp_valid(a))
			return a;
	}
	return 0;
}

uint64_t acpi_rsdp(void)
{
	if (rsdp_valid(boot_rsdp_paddr)) {
		rsdp_from_start_info = true;
		return boot_rsdp_paddr;
	}
	return acpi_rsdp_scan();
}

uint64_t acpi_rsdp_scan(void)
{
	uint64_t ebda = (uint64_t)(*(volatile uint16_t *)0x40e) << 4;
	uint64_t r = 0;
	if (ebda >= 0x80000 && ebda < 0xa0000)
		r = scan(ebda, ebda + 1024);
	if (!r)
		r = scan(0xe0000, 0x100000);
	return r;
}

bool acpi_rsdp_from_start_info(void)
{
	acpi_rsdp();
	return rsdp_from_start_info;
}

static const struct acpi_header *table_at(uint64_t addr)
{
	if (!addr || addr > 4 * GiB - sizeof(struct acpi_header))
		return NULL;
	const struct acpi_header *h = (const void *)addr;
	if (h->length < sizeof(*h) || h->length > MAX_TABLE_LEN || addr > 4 * GiB - h->length ||
	    sum(h, h->length) != 0)
		return NULL;
	return h;
}

const struct acpi_header *acpi_find_table(const char sig[4], int index)
{
	uint64_t ra = acpi_rsdp();
	if (!ra)
		return NULL;
	const struct rsdp *r = (const void *)ra;
	const struct acpi_header *root = NULL;
	size_t esize = 4;
	if (r->revision >= 2 && r->xsdt) {
		root = table_at(r->xsdt);
		esize = 8;
	}
	if (!root) {
		root = table_at(r->rsdt);
		esize = 4;
	}
	if (!root)
		return NULL;
	size_t n = (root->length - sizeof(*root)) / esize;
	const uint8_t *e = (const uint8_t *)(root + 1);
	for (size_t i = 0; i < n; i++) {
		uint64_t a = 0;
		memcpy(&a, e + i * esize, esize);
		const struct acpi_header *t = table_at(a);
		if (t && memcmp(t->sig, sig, 4) == 0 && index-- == 0)
			return t;
	}
	return NULL;
}

/* FADT field offsets (ACPI 6.x, table 5.9). */
#define FADT_DSDT	 40
#define FADT_SCI_INT	 46
#define FADT_SMI_CMD	 48
#define FADT_ACPI_EN	 52
#define FADT_PM1A_EVT	 56
#define FADT_PM1_EVT_LEN 88
#define FADT_PM1A_CNT	 64
#define FADT_PM1B_CNT	 68
#define FADT_FLAGS	 112
#define FADT_X_DSDT	 140
#define FADT_SLEEP_CTL	 244
#define FADT_HW_REDUCED	 (1u << 20)

static uint32_t get32(const void *t, size_t off)
{
	uint32_t v;
	memcpy(&v, (const uint8_t *)t + off, 4);
	return v;
}

bool acpi_fadt(struct fadt_info *out)
{
	const struct acpi_header *f = acpi_find_table("FACP", 0);
	memset(out, 0, sizeof(*out));
	if (!f || f->length < FADT_FLAGS + 4)
		return false;
	out->dsdt = get32(f, FADT_DSDT);
	if (f->length >= FADT_X_DSDT + 8) {
		uint64_t x;
		memcpy(&x, (const uint8_t *)f + FADT_X_DSDT, 8);
		if (x)
			out->dsdt = x;
	}
	const uint8_t *b = (const uint8_t *)f;
	out->sci_int = (uint16_t)(b[FADT_SCI_INT] | b[FADT_SCI_INT + 1] << 8);
	out->smi_cmd = get32(f, FADT_SMI_CMD);
	out->acpi_enable = b[FADT_ACPI_EN];
	out->pm1a_evt = get32(f, FADT_PM1A_EVT);
	out->pm1_evt_len = b[FADT_PM1_EVT_LEN];
	out->pm1a_cnt = get32(f, FADT_PM1A_CNT);
	out->pm1b_cnt = get32(f, FADT_PM1B_CNT);
	out->flags = get32(f, FADT_FLAGS);
	out->hw_reduced = out->flags & FADT_HW_REDUCED;
	if (f->length >= FADT_SLEEP_CTL + 12) {
		const uint8_t *g = (const uint8_t *)f + FADT_SLEEP_CTL;
		out->sleep_ctl_space = g[0];
		memcpy(&out->sleep_ctl_addr, g + 4, 8);
	}
	return true;
}

/* Finds `Name(_S5_, Package(){ SLP_TYPa, ... })` in the AML and decodes the first element. */
static int s5_in(const struct acpi_header *t)
{
	const uint8_t *b = (const uint8_t *)t;
	size_t n = t->length;
	for (size_t i = sizeof(*t) + 1; i + 4 < n; i++) {
		if (memcmp(b + i, "_S5_", 4) != 0)
			continue;
		if (b[i - 1] != 0x08 && !(b[i - 1] == '\\' && b[i - 2] == 0x08))
			continue; /* not a NameOp */
		size_t p = i + 4;
		if (p >= n || b[p] != 0x12) /* PackageOp */
			continue;
		p++;
		if (p >= n)
			break;
		p += 1 + (b[p] >> 6); /* PkgLength: lead byte plus 0-3 more */
		p++;		      /* NumElements */
		if (p >= n)
			break;
		switch (b[p]) {
		case 0x00: /* ZeroOp */
			return 0;
		case 0x01: /* OneOp */
			return 1;
		case 0x0a: /* BytePrefix */
			return p + 1 < n ? b[p + 1] : -1;
		case 0x0b: /* WordPrefix */
			return p + 1 < n ? b[p + 1] & 7 : -1;
		default:
			return -1;
		}
	}
	return -1;
}

int acpi_s5_slp_typ(void)
{
	struct fadt_info f;
	if (!acpi_fadt(&f))
		return -1;
	const struct acpi_header *dsdt = table_at(f.dsdt);
	if (dsdt && memcmp(dsdt->sig, "DSDT", 4) == 0) {
		int v = s5_in(dsdt);
		if (v >= 0)
			return v;
	}
	for (int i = 0;; i++) {
		const struct acpi_header *ssdt = acpi_find_table("SSDT", i);
		if (!ssdt)
			return -1;
		int v = s5_in(ssdt);
		if (v >= 0)
			return v;
	}
}

bool acpi_madt(struct madt_info *out)
{
	const struct acpi_header *m = acpi_find_table("APIC", 0);
	memset(out, 0, sizeof(*out));
	if (!m || m->length < sizeof(*m) + 8)
		return false;
	const uint8_t *b = (const uint8_t *)m;
	out->lapic_addr = get32(b, sizeof(*m));
	for (size_t p = sizeof(*m) + 8; p + 2 <= m->length;) {
		uint8_t type = b[p], len = b[p + 1];
		if (len < 2 || p + len > m->length)
			break;
		const uint8_t *e = b + p;
		if (type == 0 && len >= 8 && (get32(e, 4) & 1) && out->ncpus < MAX_CPUS)
			out->apic_ids[out->ncpus++] = e[3];
		else if (type == 9 && len >= 16 && (get32(e, 8) & 1) && out->ncpus < MAX_CPUS)
			out->apic_ids[out->ncpus++] = get32(e, 4);
		else if (type == 1 && len >= 12) {
			if (out->nioapic++ == 0) {
				out->ioapic_addr = get32(e, 4);
				out->ioapic_gsi_base = get32(e, 8);
			}
		} else if (type == 2 && len >= 10 && out->niso < MAX_ISO) {
			out->iso[out->niso].source = e[3];
			out->iso[out->niso].gsi = get32(e, 4);
			memcpy(&out->iso[out->niso].flags, e + 8, 2);
			out->niso++;
		}
		p += len;
	}
	return true;
}

uint32_t acpi_isa_gsi(const struct madt_info *m, int irq, uint16_t *flags)
{
	for (int i = 0; i < m->niso; i++) {
		if (m->iso[i].source == irq) {
			*flags = m->iso[i].flags;
			return m->iso[i].gsi;
		}
	}
	*flags = 0;
	return (uint32_t)irq;
}

void acpi_poweroff(bool verbose)
{
	struct fadt_info f;
	int typ = acpi_s5_slp_typ();
	if (!acpi_fadt(&f) || typ < 0) {
		printf("guest: no ACPI FADT or \\_S5_ for power-off\n");
		return;
	}
	if (f.hw_reduced && f.sleep_ctl_addr) {
		/* HW-reduced ACPI (QEMU microvm): SLP_TYP in bits 2-4, SLP_EN bit 5. */
		uint8_t v = (uint8_t)(((typ & 7) << 2) | (1 << 5));
		if (verbose)
			printf("guest: power-off: %#x to sleep control %s %#lx\n", v,
			       f.sleep_ctl_space ? "port" : "mmio", f.sleep_ctl_addr);
		if (f.sleep_ctl_space == 1)
			outb((uint16_t)f.sleep_ctl_addr, v);
		else if (f.sleep_ctl_space == 0 && f.sleep_ctl_addr < 4 * GiB)
			mmio_write8(f.sleep_ctl_addr, v);
	} else if (f.pm1a_cnt && f.pm1a_cnt <= 0xffff) {
		uint16_t v = (uint16_t)(((typ & 7) << 10) | (1 << 13));
		if (verbose)
			printf("guest: power-off: %#x to PM1a_CNT port %#x\n", v, f.pm1a_cnt);
		outw((uint16_t)f.pm1a_cnt, v);
	} else {
		printf("guest: FADT has neither PM1a_CNT nor a sleep control register\n");
		return;
	}
	/* The VMM stops the CPU on that write; give a slow one (QEMU-TCG on a loaded host stops
	 * asynchronously) a few seconds before falling back. */
	for (int i = 0; i < 5000; i++)
		udelay(1000);
}
