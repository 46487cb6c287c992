/* PCI bus: enumeration through 0xCF8/0xCFC and ECAM, BAR sizing and dispatch, MSI-X, INTx. */
#include "unit.h"
#include "devices/pci.h"

#include <string.h>

struct fx {
	struct iobus io;
	struct pci_bus bus;
	struct pci_device dev;
	uint8_t bar_mem[4096];
	int msis;
	uint64_t msi_addr;
	uint32_t msi_data;
	struct pci_device *msi_dev;
	unsigned msi_vector;
	unsigned irq_gsi;
	int moves;
	uint64_t moved_old, moved_new;
	int irq_level, irq_calls;
};

static struct fx F;

static void msi_send(void *opaque, struct pci_device *d, unsigned vector, uint64_t addr,
		     uint32_t data)
{
	struct fx *f = opaque;
	f->msis++;
	f->msi_addr = addr;
	f->msi_data = data;
	f->msi_dev = d;
	f->msi_vector = vector;
}

static void set_irq(void *opaque, unsigned gsi, int level)
{
	struct fx *f = opaque;
	f->irq_gsi = gsi;
	f->irq_level = level;
	f->irq_calls++;
}

static void bar_moved(void *opaque, struct pci_device *d, int bar, uint64_t old_addr,
		      uint64_t new_addr)
{
	struct fx *f = opaque;
	if (bar != 0)
		return;
	f->moves++;
	f->moved_old = old_addr;
	f->moved_new = new_addr;
}

static void bar_read(void *opaque, uint64_t off, uint8_t *data, unsigned len)
{
	memcpy(data, (uint8_t *)opaque + off, len);
}
static void bar_write(void *opaque, uint64_t off, const uint8_t *data, unsigned len)
{
	memcpy((uint8_t *)opaque + off, data, len);
}
static const struct io_ops bar_ops = {bar_read, bar_write};

static uint32_t pio_in(uint16_t port, unsigned len)
{
	uint8_t b[4] = {0};
	assert_true(iobus_access(&F.io, IOBUS_PIO, port, b, len, false));
	uint32_t v = 0;
	memcpy(&v, b, len);
	return v;
}
static void pio_out(uint16_t port, uint32_t v, unsigned len)
{
	assert_true(iobus_access(&F.io, IOBUS_PIO, port, (uint8_t *)&v, len, true));
}
static uint32_t mmio_rd(uint64_t addr, unsigned len)
{
	uint32_t v = 0;
	iobus_access(&F.io, IOBUS_MMIO, addr, (uint8_t *)&v, len, false);
	return v;
}
static void mmio_wr(uint64_t addr, uint32_t v, unsigned len)
{
	iobus_access(&F.io, IOBUS_MMIO, addr, (uint8_t *)&v, len, true);
}

/* Config mechanism #1, as Linux's pci_conf1_read does it. */
static uint32_t conf1_read(unsigned slot, unsigned reg, unsigned len)
{
	pio_out(0xCF8, 0x80000000u | slot << 11 | (reg & 0xfc), 4);
	return pio_in(0xCFC + (reg & 3), len);
}
static void conf1_write(unsigned slot, unsigned reg, uint32_t v, unsigned len)
{
	pio_out(0xCF8, 0x80000000u | slot << 11 | (reg & 0xfc), 4);
	pio_out(0xCFC + (reg & 3), v, len);
}

static int setup(void **state)
{
	memset(&F, 0, sizeof(F));
	struct pci_bus_ops ops = {msi_send, set_irq, &F, bar_moved};
	assert_int_equal(pci_bus_init(&F.bus, &ops), 0);
	assert_int_equal(pci_bus_register(&F.bus, &F.io), 0);
	pci_device_init(&F.dev, "test", 0x1af4, 0x1042, 0x010000, 1, 0x1af4, 0x40);
	assert_int_equal(pci_device_set_bar(&F.dev, 0, 16384, &bar_ops, F.bar_mem), 0);
	assert_int_equal(pci_msix_init(&F.dev, 4, 1), 0);
	assert_int_equal(pci_bus_add(&F.bus, &F.dev, -1), 1);
	return 0;
}

static int teardown(void **state)
{
	pci_bus_destroy(&F.bus);
	return 0;
}

static void test_enumerate(void **state)
{
	assert_int_equal(conf1_read(0, 0, 4), 0x00081b36); /* host bridge */
	assert_int_equal(conf1_read(0, 0x0a, 2), 0x0600);
	assert_int_equal(conf1_read(1, 0, 2), 0x1af4);
	assert_int_equal(conf1_read(1, 2, 2), 0x1042);
	assert_int_equal(conf1_read(1, 0x08, 4), 0x01000001); /* class 010000, revision 1 */
	assert_int_equal(conf1_read(2, 0, 4), 0xffffffff);    /* empty slot */
	/* ECAM sees the same space: bus 0, device 1 at offset 1 << 15. */
	assert_int_equal(mmio_rd(PCI_ECAM_BASE + (1 << 15), 4), 0x10421af4);
	assert_int_equal(mmio_rd(PCI_ECAM_BASE + (1 << 20), 4), 0xffffffff); /* bus 1 */
	/* Interrupt pin A, line from the swizzle. */
	assert_int_equal(conf1_read(1, PCI_INTERRUPT_PIN, 1), 1);
	assert_int_equal(conf1_read(1, PCI_INTERRUPT_LINE, 1), PCI_INTX_GSI(1));
	/* Disabled mechanism #1 reads all ones. */
	pio_out(0xCF8, 1 << 11, 4);
	assert_int_equal(pio_in(0xCFC, 4), 0xffffffff);
}

static void test_capabilities(void **state)
{
	assert_true(conf1_read(1, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
	unsigned cap = conf1_read(1, PCI_CAP_PTR, 1), found = 0;
	for (int n = 0; cap && n < 48; n++) {
		if (conf1_read(1, cap, 1) == PCI_CAP_ID_MSIX) {
			found = cap;
			assert_int_equal(conf1_read(1, cap + 2, 2) & 0x7ff, 3); /* 4 vectors */
			assert_int_equal(conf1_read(1, cap + 4, 4), 1);		/* BAR1 + 0 */
			assert_int_equal(conf1_read(1, cap + 8, 4), 2048 | 1);
		}
		cap = conf1_read(1, cap + 1, 1);
	}
	assert_true(found);
}

static void test_bar_sizing_and_dispatch(void **state)
{
	uint32_t bar0 = conf1_read(1, PCI_BAR0, 4);
	assert_true(bar0 >= PCI_MMIO_BASE && bar0 < PCI_MMIO_BASE + PCI_MMIO_SIZE);
	conf1_write(1, PCI_BAR0, 0xffffffff, 4);
	assert_int_equal(conf1_read(1, PCI_BAR0, 4), ~(16384u - 1));
	conf1_write(1, PCI_BAR0 + 8, 0xffffffff, 4); /* unused BAR2 */
	assert_int_equal(conf1_read(1, PCI_BAR0 + 8, 4), 0);
	/* Program BAR0 elsewhere in the window, enable memory decoding. */
	uint32_t where = PCI_MMIO_BASE + 0x100000;
	conf1_write(1, PCI_BAR0, where, 4);
	mmio_wr(where + 8, 0x12345678, 4);
	assert_int_equal(F.bar_mem[8], 0); /* decoding still off */
	assert_int_equal(F.moves, 0);	   /* not decoding: nothing moved */
	conf1_write(1, PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
	assert_int_equal(F.moves, 1);
	assert_int_equal(F.moved_old, 0);
	assert_int_equal(F.moved_new, where);
	assert_int_equal(pci_bar_addr(&F.dev, 0), where);
	mmio_wr(where + 8, 0x12345678, 4);
	assert_int_equal(F.bar_mem[8], 0x78);
	assert_int_equal(mmio_rd(where + 8, 4), 0x12345678);
	assert_int_equal(mmio_rd(where + 16384, 4), 0xffffffff); /* past the BAR */
	conf1_write(1, PCI_BAR0, where + 0x10000, 4);		 /* moved while decoding */
	assert_int_equal(F.moves, 2);
	assert_int_equal(F.moved_old, where);
	assert_int_equal(F.moved_new, where + 0x10000);
	assert_int_equal(mmio_rd(where + 0x10000 + 8, 4), 0x12345678);
	/* Read-only fields ignore writes. */
	conf1_write(1, 0, 0xdeadbeef, 4);
	assert_int_equal(conf1_read(1, 0, 4), 0x10421af4);
}

static void test_msix(void **state)
{
	unsigned cap = conf1_read(1, PCI_CAP_PTR, 1);
	uint32_t bar1 = conf1_read(1, PCI_BAR0 + 4, 4);
	conf1_write(1, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 2);
	pci_msix_notify(&F.dev, 2); /* MSI-X disabled: nothing */
	assert_int_equal(F.msis, 0);
	conf1_write(1, cap + 2, 0x8000, 2); /* enable */
	mmio_wr(bar1 + 2 * 16, 0xfee00000, 4);
	mmio_wr(bar1 + 2 * 16 + 4, 0, 4);
	mmio_wr(bar1 + 2 * 16 + 8, 0x4041, 4);
	pci_msix_notify(&F.dev, 2); /* still masked (vectors start masked) */
	assert_int_equal(F.msis, 0);
	assert_int_equal(mmio_rd(bar1 + 2048, 4), 1u << 2); /* pending bit */
	mmio_wr(bar1 + 2 * 16 + 12, 0, 4);		    /* unmask: pending one goes out */
	assert_int_equal(F.msis, 1);
	assert_int_equal(F.msi_addr, 0xfee00000);
	assert_int_equal(F.msi_data, 0x4041);
	assert_ptr_equal(F.msi_dev, &F.dev); /* which vector: the machine's irqfd for it */
	assert_int_equal(F.msi_vector, 2);
	assert_int_equal(mmio_rd(bar1 + 2048, 4), 0);
	pci_msix_notify(&F.dev, 2);
	assert_int_equal(F.msis, 2);
	pci_msix_notify(&F.dev, 99); /* out of range: ignored */
	assert_int_equal(F.msis, 2);
	conf1_write(1, cap + 2, 0xc000, 2); /* function mask */
	pci_msix_notify(&F.dev, 2);
	assert_int_equal(F.msis, 2);
	conf1_write(1, cap + 2, 0x8000, 2);
	assert_int_equal(F.msis, 3);
}

static void test_intx(void **state)
{
	pci_set_intx(&F.dev, 1);
	assert_int_equal(F.irq_gsi, PCI_INTX_GSI(1));
	assert_int_equal(F.irq_level, 1);
	assert_true(conf1_read(1, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
	conf1_write(1, PCI_COMMAND, PCI_COMMAND_INTX_DISABLE, 2);
	assert_int_equal(F.irq_level, 0);
	conf1_write(1, PCI_COMMAND, 0, 2);
	assert_int_equal(F.irq_level, 1);
	pci_set_intx(&F.dev, 0);
	assert_int_equal(F.irq_level, 0);
	assert_int_equal(F.irq_calls, 4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_enumerate, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_capabilities, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bar_sizing_and_dispatch, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_msix, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_intx, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
